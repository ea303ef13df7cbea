"""Whether an entry's Realtime service answers, and what the user is told while it does not.

An outage is no reason to keep the entry from loading: the devices are served by the Assist
pipeline meanwhile (the firmware alerts and backs off on every refused boot check and gives
up after ten, `Application::CheckNewVersion`). While the service is unavailable the monitor
checks it again every `RECHECK_INTERVAL`; after `UNREACHABLE_AFTER` without an answer it
raises a repair issue, which goes as soon as the service answers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, Final

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import CALLBACK_TYPE, HassJob, HomeAssistant, callback
from homeassistant.helpers.event import async_call_later
from homeassistant.util import dt as dt_util

from .const import LOGGER
from .realtime import RealtimeAuthError, RealtimeConnectionError, RealtimeError, RealtimeQuotaError
from .repairs import AvailabilityLog, async_quota_issue, async_unreachable_issue

RECHECK_INTERVAL: Final = timedelta(minutes=1)
"""How often an unavailable service is checked again (a probe opens and closes a session)."""

UNREACHABLE_AFTER: Final = timedelta(minutes=3)
"""How long the service must have been unreachable before a repair issue says so."""


class ServiceMonitor(AvailabilityLog):
    """The availability of one entry's Realtime service: log lines, checks, repair issues.

    Anything that talks to the service reports here (`failed` / `succeeded`); while it is
    unavailable the monitor probes it itself, so it notices the service coming back even
    when no device and no conversation tries it.
    """

    def __init__(
        self,
        hass: HomeAssistant,
        entry: ConfigEntry[Any],
        probe: Callable[[], Awaitable[None]],
    ) -> None:
        """Watch the service of `entry`; `probe` raises a RealtimeError unless it answers."""
        super().__init__(f"Realtime service of {entry.title}")
        self._hass = hass
        self._entry = entry
        self._probe = probe
        self._down_since: datetime | None = None
        self._unsub_check: CALLBACK_TYPE | None = None
        self._closed = False

    def failed(self, error: object, *, logged: bool = False) -> None:
        """Record a failure; start checking again until the service answers."""
        super().failed(error, logged=logged)
        if self._closed:
            return
        if self._down_since is None:
            self._down_since = dt_util.utcnow()
        if isinstance(error, RealtimeQuotaError):
            async_quota_issue(self._hass, self._entry, active=True)
        if self._unsub_check is None:
            self._unsub_check = async_call_later(
                self._hass,
                RECHECK_INTERVAL,
                HassJob(self._async_on_check_due, cancel_on_shutdown=True),
            )
        if (
            isinstance(error, RealtimeConnectionError)
            and dt_util.utcnow() - self._down_since >= UNREACHABLE_AFTER
        ):
            async_unreachable_issue(self._hass, self._entry, str(error))

    def succeeded(self) -> None:
        """Record a success: stop checking, clear the issues the outage raised."""
        was_down = not self.available
        super().succeeded()
        self._down_since = None
        self._cancel_check()
        if was_down:
            async_quota_issue(self._hass, self._entry, active=False)
        async_unreachable_issue(self._hass, self._entry, None)

    @callback
    def async_close(self) -> None:
        """The entry unloads: no more checks, and no issue about a service nobody uses."""
        self._closed = True
        self._cancel_check()
        async_unreachable_issue(self._hass, self._entry, None)

    @callback
    def _async_on_check_due(self, _: datetime) -> None:
        self._unsub_check = None
        if self._closed or self.available:
            return
        self._entry.async_create_background_task(
            self._hass, self._async_check(), f"{self.what} check"
        )

    async def _async_check(self) -> None:
        try:
            await self._probe()
        except RealtimeAuthError as err:
            # Not an outage: the key was revoked. The user is asked for a new one.
            LOGGER.warning("%s rejected the API key: %s", self.what, err)
            self.async_close()
            self._entry.async_start_reauth(self._hass)
        except RealtimeError as err:
            self.failed(err)
        else:
            self.succeeded()

    def _cancel_check(self) -> None:
        if self._unsub_check is not None:
            self._unsub_check()
            self._unsub_check = None
