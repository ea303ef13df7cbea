"""The hass-wide device hub: pairing, failed logins and photo tokens; and a device's state.

Home Assistant registers an HTTP view once per instance, not per config entry: the OTA,
activation, device WebSocket and photo upload views (and the pairing flows) share one
`DeviceHub`, the integration's only entry in `hass.data` (`DATA_HUB`). It holds what exists
before a device is paired to an entry or across entries: pending pairings and token hand-overs
(`pairing.py`), failed-login counts (`logins.py`) and photo tokens and parked snapshots
(`vision.py`). A paired device's own state lives in its entry's `DeviceHome`
(`entry.runtime_data.devices`), which the WebSocket view reaches through the entry it
authenticated the device against; the paired devices themselves are config subentries of type
`device`, the single source of truth.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
import time
from typing import Any, Final, Protocol

from homeassistant.config_entries import ConfigEntry, ConfigSubentry
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers import device_registry as dr
from homeassistant.util.hass_dict import HassKey

from ..const import CONF_FIRMWARE, DOMAIN
from ..rate_limit import TokenBucket
from ..repairs import async_firmware_issue
from ..vision import VisionHub
from ..xiaozhi import McpTool
from .logins import LoginAttempts
from .pairing import DevicePairing, display_text, find_paired

LATENCY_HISTORY: Final = 50
"""Response latencies kept per device for diagnostics."""

DATA_HUB: HassKey[DeviceHub] = HassKey(DOMAIN)
"""The one hass-wide object: the views are registered once per Home Assistant (see above)."""


class LiveConnection(Protocol):
    """What a device's state needs from its WebSocket connection."""

    mac: str

    async def async_close(self, reason: str) -> None:
        """Close the connection, telling the device why."""


@dataclass(slots=True)
class UplinkBudget:
    """Frames and bytes a device may send, kept across its connections (reconnecting refills
    nothing); the numbers are the connection's (`connection.py`)."""

    frames: TokenBucket
    data: TokenBucket
    warned: float | None = None
    """When going over the budget was last logged as a warning."""


@dataclass(slots=True)
class DeviceState:
    """What Home Assistant knows about a paired device right now (entities read this)."""

    mac: str
    last_seen: datetime | None = None
    connection: LiveConnection | None = None
    tools: list[McpTool] = field(default_factory=list)
    volume: int | None = None
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_HISTORY))
    """Recent response latencies in ms (end of the user's speech to the first reply audio)."""
    last_latency_ms: float | None = None
    errors: Counter[str] = field(default_factory=Counter)
    """Failures on this device's conversations, by kind (for diagnostics)."""
    uplink: UplinkBudget | None = None
    """What the device may still send; made by its first connection."""
    _listeners: list[CALLBACK_TYPE] = field(default_factory=list)

    @property
    def connected(self) -> bool:
        """Whether the device has a live WebSocket."""
        return self.connection is not None

    def has_tool(self, name: str) -> bool:
        """Whether the device listed this MCP tool on its current connection."""
        return any(tool.name == name for tool in self.tools)

    @callback
    def async_add_listener(self, update: CALLBACK_TYPE) -> CALLBACK_TYPE:
        """Call `update` whenever the state changes; returns the remover."""
        self._listeners.append(update)
        return lambda: self._listeners.remove(update)

    @callback
    def async_notify(self) -> None:
        """Tell every listener that the state changed."""
        for update in list(self._listeners):
            update()


class DeviceHub:
    """Hass-wide device state: pairing, failed logins and photo tokens (see the module)."""

    def __init__(self, hass: HomeAssistant, clock: Callable[[], float] = time.monotonic) -> None:
        """Start empty; `clock` drives pairing expiry and rate limits (injectable for tests)."""
        self.hass = hass
        self.pairing = DevicePairing(hass, clock)
        self.logins = LoginAttempts(hass, self._now)
        """Which refused requests count as failed logins (WebSocket and photo uploads)."""
        self.vision = VisionHub()
        """Camera boards' photo tokens and uploads, and snapshots parked for the model."""

    def _now(self) -> float:
        """The pairing clock, read late so that tests may replace it."""
        return self.pairing.clock()

    # --- paired devices -----------------------------------------------------------------------

    def find_paired(self, mac: str) -> tuple[ConfigEntry[Any], ConfigSubentry] | None:
        """The loaded entry and subentry a device is paired to, if any."""
        return find_paired(self.hass, mac)

    @callback
    def async_report_firmware(
        self, mac: str, version: str | None = None, *, mcp: bool | None = None
    ) -> None:
        """What a device said about its firmware over its authenticated connection.

        Raises or clears its "firmware too old" issue and keeps the reported version (the
        OTA request is unauthenticated, so what it reports changes nothing).
        """
        if (found := self.find_paired(mac)) is None:
            return
        entry, subentry = found
        version = display_text(version, 32) or None
        async_firmware_issue(self.hass, mac, subentry.title, version, mcp=mcp)
        if version is None or version == subentry.data.get(CONF_FIRMWARE):
            return
        self.hass.config_entries.async_update_subentry(
            entry, subentry, data={**subentry.data, CONF_FIRMWARE: version}
        )
        devices = dr.async_get(self.hass)
        if device := devices.async_get_device_by_identifier((DOMAIN, mac), entry.entry_id):
            devices.async_update_device(device.id, sw_version=version)
