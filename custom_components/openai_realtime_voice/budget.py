"""A monthly budget for an entry's estimated Realtime cost, and what happens when it runs out.

The estimate is the entry's usage record (`EntryUsage.month_cost_usd`: every response of each of
its agents and devices, text, audio, image and transcription tokens at that agent's prices).
At `BUDGET_WARNING_SHARE` of the budget a repair issue warns; at 100 % the configured action
applies until the calendar month ends (Home Assistant's time zone):
- `assist_pipeline`: no new Realtime session opens. Devices are served by the Assist pipeline
  (the path that serves during outages) and their open sessions are closed; typed requests
  get a translated answer that says why.
- `cheaper_model`: new sessions use the budget model, priced at its own list prices.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, Final

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers import event, issue_registry as ir
from homeassistant.util import dt as dt_util

from .const import (
    BUDGET_ACTION_CHEAPER_MODEL,
    BUDGET_ACTION_PIPELINE,
    BUDGET_WARNING_SHARE,
    CONF_BUDGET_ACTION,
    CONF_BUDGET_MODEL,
    CONF_MONTHLY_BUDGET,
    DEFAULT_BUDGET_ACTION,
    DEFAULT_BUDGET_MODEL,
    DOMAIN,
    LOGGER,
)
from .realtime import RealtimeEndpoint, RealtimeError, prices_for
from .usage import EntryUsage

LEVEL_OK: Final = "ok"
LEVEL_WARNING: Final = "warning"
LEVEL_EXHAUSTED: Final = "exhausted"


class BudgetExhaustedError(RealtimeError):
    """This month's budget is used up: no Realtime session opens until the month ends."""


def budget_limit(options: Mapping[str, Any]) -> float | None:
    """The monthly budget the options set, or None for no budget."""
    value = options.get(CONF_MONTHLY_BUDGET)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return float(value)
    return None


def next_month_start(now: datetime) -> datetime:
    """Midnight at the start of the calendar month after `now`, in `now`'s time zone."""
    first = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return dt_util.start_of_local_day((first + timedelta(days=32)).replace(day=1))


def warning_issue_id(entry: ConfigEntry[Any]) -> str:
    """The issue id of an entry's budget warning."""
    return f"budget_warning_{entry.entry_id}"


def exhausted_issue_id(entry: ConfigEntry[Any]) -> str:
    """The issue id of an entry's used-up budget."""
    return f"budget_exhausted_{entry.entry_id}"


class Budget:
    """Holds an entry's estimated monthly cost to its budget and applies the action."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry: ConfigEntry[Any],
        usage: EntryUsage,
        endpoint: RealtimeEndpoint,
    ) -> None:
        """Read the budget settings; `async_start` begins watching the usage."""
        options = entry.options
        self.hass = hass
        self.limit = budget_limit(options)
        self.action = str(options.get(CONF_BUDGET_ACTION) or DEFAULT_BUDGET_ACTION)
        self.level = LEVEL_OK
        self._entry = entry
        self._usage = usage
        self._endpoint = endpoint
        model = str(options.get(CONF_BUDGET_MODEL) or DEFAULT_BUDGET_MODEL).strip()
        self._cheaper = replace(endpoint, model=model or DEFAULT_BUDGET_MODEL)
        self._listeners: list[CALLBACK_TYPE] = []

    @property
    def spent(self) -> float:
        """This month's estimated cost."""
        return self._usage.month_cost_usd

    @property
    def left(self) -> float | None:
        """What is left of this month's budget (negative once overspent); None without one."""
        return None if self.limit is None else self.limit - self.spent

    @property
    def exhausted(self) -> bool:
        """Whether this month's budget is used up."""
        return self.level == LEVEL_EXHAUSTED

    @property
    def resets(self) -> datetime:
        """When the budget starts over."""
        return next_month_start(dt_util.now())

    def endpoint(self, model: str | None = None) -> RealtimeEndpoint:
        """Where a new session of an agent using `model` connects: the cheaper model once a
        `cheaper_model` budget ran out (the entry's endpoint, with `model` when given)."""
        if self.exhausted and self.action == BUDGET_ACTION_CHEAPER_MODEL:
            return self._cheaper
        return replace(self._endpoint, model=model) if model else self._endpoint

    def check(self) -> None:
        """Raise `BudgetExhaustedError` when no Realtime session may open now."""
        if self.blocks_realtime:
            raise BudgetExhaustedError(
                f"this month's budget of {self.limit:.2f} USD is used up "
                f"({self.spent:.2f} USD); Realtime is paused until "
                f"{self.resets.date().isoformat()}"
            )

    @property
    def blocks_realtime(self) -> bool:
        """Whether the action keeps Realtime sessions closed now."""
        return self.exhausted and self.action == BUDGET_ACTION_PIPELINE

    @callback
    def async_add_listener(self, update: CALLBACK_TYPE) -> CALLBACK_TYPE:
        """Call `update` whenever the budget's level changes; returns the remover."""
        self._listeners.append(update)
        return lambda: self._listeners.remove(update)

    @callback
    def async_start(self) -> CALLBACK_TYPE:
        """Watch the usage and the calendar; returns the callback that stops both."""
        self._usage.roll_month()
        self._evaluate()
        unsubs = [self._usage.async_add_listener(self._evaluate)]

        @callback
        def _new_month(now: datetime) -> None:
            self._usage.roll_month()
            self._evaluate()
            unsubs[1] = event.async_track_point_in_time(
                self.hass, _new_month, next_month_start(now)
            )

        unsubs.append(
            event.async_track_point_in_time(self.hass, _new_month, next_month_start(dt_util.now()))
        )

        @callback
        def _stop() -> None:
            for unsub in unsubs:
                unsub()

        return _stop

    @callback
    def _evaluate(self) -> None:
        """Compare this month's cost with the budget; act on a change of level."""
        level = LEVEL_OK
        if self.limit is not None:
            if self.spent >= self.limit:
                level = LEVEL_EXHAUSTED
            elif self.spent >= BUDGET_WARNING_SHARE * self.limit:
                level = LEVEL_WARNING
        if level == self.level:
            return
        self.level = level
        self._update_issues()
        if self.action == BUDGET_ACTION_CHEAPER_MODEL:
            cheaper = level == LEVEL_EXHAUSTED
            # Every agent's responses are priced as the budget model's (or at their own
            # prices, when it has no list prices).
            self._usage.use_prices(prices_for(self._cheaper.model) if cheaper else None)
        if level == LEVEL_EXHAUSTED:
            LOGGER.warning(
                "%s used up this month's budget (%.2f of %.2f USD): %s until %s",
                self._entry.title,
                self.spent,
                self.limit,
                "the Assist pipeline serves devices and typed requests are refused"
                if self.action == BUDGET_ACTION_PIPELINE
                else f"new sessions use {self._cheaper.model}",
                self.resets.date().isoformat(),
            )
        for update in list(self._listeners):
            update()

    @callback
    def _update_issues(self) -> None:
        warning, exhausted = warning_issue_id(self._entry), exhausted_issue_id(self._entry)
        if self.level == LEVEL_OK:
            ir.async_delete_issue(self.hass, DOMAIN, warning)
            ir.async_delete_issue(self.hass, DOMAIN, exhausted)
            return
        issue_id, other = (
            (warning, exhausted) if self.level == LEVEL_WARNING else (exhausted, warning)
        )
        ir.async_delete_issue(self.hass, DOMAIN, other)
        kind = "pipeline" if self.action == BUDGET_ACTION_PIPELINE else "model"
        ir.async_create_issue(
            self.hass,
            DOMAIN,
            issue_id,
            is_fixable=False,
            is_persistent=False,
            severity=(
                ir.IssueSeverity.WARNING if self.level == LEVEL_WARNING else ir.IssueSeverity.ERROR
            ),
            translation_key=f"budget_{self.level}_{kind}",
            translation_placeholders={
                "title": self._entry.title,
                "spent": f"{self.spent:.2f}",
                "limit": f"{self.limit:.2f}",
                "model": self._cheaper.model,
                "resets": self.resets.date().isoformat(),
            },
        )
