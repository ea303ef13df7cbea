"""Token usage and estimated cost of one config entry, kept across restarts.

Every Realtime response of the entry (the Assist agent and the paired devices), and every
input transcription, is recorded here; the entry's usage sensors listen for changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
import math
from typing import Any, Final

from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers.storage import Store
from homeassistant.util import dt as dt_util

from .const import (
    CONF_MODEL,
    CONF_PRICES,
    CONF_TRANSCRIPTION_MODEL,
    DOMAIN,
    LOGGER,
    RECOMMENDED_MODEL,
)
from .realtime import (
    TRANSCRIPTION_PRICES,
    ModelPrices,
    TranscriptionPrices,
    Usage,
    prices_for,
)

STORAGE_VERSION: Final = 1
SAVE_DELAY: Final = 30.0
"""Seconds to gather responses before writing the totals (a busy turn writes once)."""

PRICE_FIELDS: Final = tuple(f.name for f in fields(ModelPrices))
"""The price names a user may override: USD per one million tokens."""

REQUIRED_PRICE_FIELDS: Final = tuple(
    f.name for f in fields(ModelPrices) if not f.name.startswith("image_")
)
"""The prices a model without list prices needs before it is priced (images cost 0 unless given)."""

_TOTALS: Final = tuple(f.name for f in fields(Usage))
"""The stored totals: `responses`, then the token counters, in `Usage`'s order."""


def month_of(moment: Any = None) -> str:
    """The calendar month ("2026-12") of a moment in Home Assistant's time zone (default now)."""
    return str((moment or dt_util.now()).strftime("%Y-%m"))


class InvalidPricesError(ValueError):
    """The price override text is not a list of known `name=value` pairs."""


def parse_prices(text: str | None) -> dict[str, float]:
    """Parse `text_in=4, audio_out=64` (commas or new lines) into known non-negative prices."""
    prices: dict[str, float] = {}
    for part in (text or "").replace("\n", ",").split(","):
        if not (part := part.strip()):
            continue
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or name not in PRICE_FIELDS or name in prices:
            raise InvalidPricesError(part)
        try:
            number = float(value)
        except ValueError as err:
            raise InvalidPricesError(part) from err
        if not math.isfinite(number) or number < 0:
            raise InvalidPricesError(part)
        prices[name] = number
    return prices


def effective_prices(model: str, overrides: Mapping[str, float]) -> ModelPrices | None:
    """The model's list prices with the user's overrides on top; None when not all are known.

    A model without list prices (an Azure deployment name, a local server) is priced only when
    the user gives the six text and audio prices (image prices default to 0).
    """
    base = prices_for(model)
    if base is not None:
        return replace(base, **overrides)
    if set(overrides) >= set(REQUIRED_PRICE_FIELDS):
        return ModelPrices(**overrides)
    return None


@dataclass(frozen=True, kw_only=True)
class Pricing:
    """What one agent's responses cost: its model's prices and its transcription model's."""

    model: ModelPrices | None
    """None: the model has no list prices and the user gave none (not estimated)."""
    transcription: TranscriptionPrices | None = None


def pricing_for(settings: Mapping[str, Any]) -> Pricing:
    """The pricing of an agent's settings: its model, price overrides and transcription model.

    The flow validated the overrides, so a bad value is only logged.
    """
    try:
        overrides = parse_prices(settings.get(CONF_PRICES))
    except InvalidPricesError:
        LOGGER.warning("Ignoring invalid price overrides %r", settings.get(CONF_PRICES))
        overrides = {}
    return Pricing(
        model=effective_prices(str(settings.get(CONF_MODEL) or RECOMMENDED_MODEL), overrides),
        transcription=TRANSCRIPTION_PRICES.get(str(settings.get(CONF_TRANSCRIPTION_MODEL) or "")),
    )


class EntryUsage:
    """Cumulative token counts and estimated USD cost of a config entry's responses."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry_id: str,
        model: str,
        overrides: Mapping[str, float] | None = None,
    ) -> None:
        """Start at zero; `async_load` restores the stored totals."""
        self.hass = hass
        self.model = model
        self.own_prices = effective_prices(model, overrides or {})
        """The prices of responses recorded without a `Pricing` of their own."""
        self.override: ModelPrices | None = None
        """Prices that replace every agent's while set (a cheaper model answers them)."""
        self.all_priced = self.own_prices is not None
        """Whether every agent's model is priced: else the estimate leaves some responses out."""
        self.totals = Usage()
        self.cost_usd = 0.0
        self.month = month_of()
        """The calendar month `month_cost_usd` counts (Home Assistant's time zone)."""
        self.month_cost_usd = 0.0
        """The estimated cost of this month's responses (what a monthly budget is held to)."""
        self.transcription_model: str | None = None
        """The input transcription model, whose list prices the estimate adds (None: not priced)."""
        self._store: Store[dict[str, Any]] = Store(
            hass, STORAGE_VERSION, f"{DOMAIN}.usage.{entry_id}"
        )
        self._listeners: list[CALLBACK_TYPE] = []

    @property
    def prices(self) -> ModelPrices | None:
        """The prices in use for responses without a `Pricing` (the override while set)."""
        return self.override or self.own_prices

    @property
    def text_input_tokens(self) -> int:
        """Text input tokens, cached ones included."""
        return self.totals.text_in

    @property
    def audio_input_tokens(self) -> int:
        """Audio input tokens, cached ones included."""
        return self.totals.audio_in

    @property
    def image_input_tokens(self) -> int:
        """Image input tokens (camera pictures), cached ones included."""
        return self.totals.image_in

    @property
    def cached_input_tokens(self) -> int:
        """Input tokens (text, audio, images) served from the prompt cache at the cheaper rate."""
        return self.totals.text_cached + self.totals.audio_cached + self.totals.image_cached

    @property
    def text_output_tokens(self) -> int:
        """Text output tokens (text replies and audio transcripts)."""
        return self.totals.text_out

    @property
    def audio_output_tokens(self) -> int:
        """Audio output tokens (spoken replies)."""
        return self.totals.audio_out

    @property
    def transcription_tokens(self) -> int:
        """Tokens of input transcription (audio in, text in and out), billed apart."""
        totals = self.totals
        return (
            totals.transcription_audio_in
            + totals.transcription_text_in
            + totals.transcription_text_out
        )

    @property
    def responses(self) -> int:
        """Responses recorded."""
        return self.totals.responses

    @callback
    def record(self, usage: Mapping[str, Any] | None, pricing: Pricing | None = None) -> None:
        """Add one `response.done` usage object, priced as the agent that asked for it
        (`pricing`; default: the entry's); None is ignored, malformed ones logged."""
        if usage is None:
            return
        if not isinstance(usage, Mapping) or not any(
            isinstance(usage.get(key), Mapping)
            for key in ("input_token_details", "output_token_details")
        ):
            LOGGER.debug("Ignoring a response usage without token details: %.200r", usage)
            return
        one = Usage()
        one.add(_plain(usage))
        self._add(one, pricing)

    @callback
    def record_transcription(
        self, usage: Mapping[str, Any] | None, pricing: Pricing | None = None
    ) -> None:
        """Add one input transcription's usage (billed apart); None is ignored."""
        if usage is None:
            return
        one = Usage()
        if not one.add_transcription(_plain(usage)):
            LOGGER.debug("Ignoring a malformed transcription usage: %.200r", usage)
            return
        self._add(one, pricing)

    @callback
    def _add(self, one: Usage, pricing: Pricing | None) -> None:
        for name in _TOTALS:
            setattr(self.totals, name, getattr(self.totals, name) + getattr(one, name))
        self.roll_month()
        prices = self.override or (self.own_prices if pricing is None else pricing.model)
        if prices is not None:
            cost = one.cost(prices)
            transcription = (
                self.transcription_prices() if pricing is None else pricing.transcription
            )
            if transcription is not None:
                cost += one.transcription_cost(transcription)
            self.cost_usd += cost
            self.month_cost_usd += cost
        self._store.async_delay_save(self._data, SAVE_DELAY)
        self._notify()

    def transcription_prices(self) -> TranscriptionPrices | None:
        """The list prices of the entry's input transcription model; None when unknown."""
        return TRANSCRIPTION_PRICES.get(self.transcription_model or "")

    @callback
    def roll_month(self) -> bool:
        """Start counting a new month when the calendar moved on; True when it did."""
        if (month := month_of()) == self.month:
            return False
        self.month, self.month_cost_usd = month, 0.0
        self._store.async_delay_save(self._data, SAVE_DELAY)
        self._notify()
        return True

    @property
    def estimated(self) -> bool:
        """Whether `cost_usd` is an estimate of every response (every agent is priced)."""
        return self.all_priced or self.override is not None

    @callback
    def set_agents(self, pricings: list[Pricing]) -> None:
        """The pricing of each of the entry's agents (they were added or removed)."""
        all_priced = all(pricing.model is not None for pricing in pricings)
        if all_priced != self.all_priced:
            self.all_priced = all_priced
            self._notify()

    @callback
    def use_prices(self, prices: ModelPrices | None) -> None:
        """Price the next responses of every agent at `prices` (another model answers them);
        None: at their own prices again."""
        self.override = prices

    @callback
    def async_add_listener(self, update: CALLBACK_TYPE) -> CALLBACK_TYPE:
        """Call `update` after every recorded response; returns the remover."""
        self._listeners.append(update)
        return lambda: self._listeners.remove(update)

    @callback
    def _notify(self) -> None:
        for update in list(self._listeners):
            update()

    async def async_load(self) -> None:
        """Restore the stored totals; a damaged store starts from zero."""
        data = await self._store.async_load()
        if not isinstance(data, dict):
            return
        for name in _TOTALS:
            value = data.get(name)
            if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                setattr(self.totals, name, value)
        if (cost := _cost(data.get("cost_usd"))) is not None:
            self.cost_usd = cost
        # A store from before monthly counting, or from an earlier month, starts the month at 0.
        if data.get("month") == self.month and (cost := _cost(data.get("month_cost_usd"))):
            self.month_cost_usd = cost

    async def async_save(self) -> None:
        """Write the totals now (on unload), instead of after the save delay."""
        await self._store.async_save(self._data())

    async def async_remove(self) -> None:
        """Delete the stored totals (the entry was removed)."""
        await self._store.async_remove()

    def _data(self) -> dict[str, Any]:
        return {
            **{name: getattr(self.totals, name) for name in _TOTALS},
            "cost_usd": self.cost_usd,
            "month": self.month,
            "month_cost_usd": self.month_cost_usd,
        }

    def as_dict(self) -> dict[str, Any]:
        """The totals, the model and the prices in use (for diagnostics)."""
        return {
            "model": self.model,
            "prices": asdict(self.prices) if self.prices is not None else None,
            **self._data(),
        }


def _cost(value: Any) -> float | None:
    """A stored cost, or None when it is not a non-negative number."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        return float(value)
    return None


def _plain(value: Any) -> Any:
    """Mappings as dicts all the way down (`Usage.add` reads plain dicts)."""
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    return value
