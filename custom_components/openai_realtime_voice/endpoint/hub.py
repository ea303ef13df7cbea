"""The hub of paired xiaozhi devices: their live state and connections, and pairing.

One `DeviceHub` per Home Assistant instance (the OTA and WebSocket views are hass-wide); the
paired devices themselves are config subentries of type `device`, the single source of truth.
How a device gets paired lives in `pairing.py` (`DeviceHub.pairing`).
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
import time
from typing import Any, Final, Protocol

from homeassistant.config_entries import ConfigEntry, ConfigEntryState, ConfigSubentry
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers import device_registry as dr
from homeassistant.util import dt as dt_util
from homeassistant.util.hass_dict import HassKey

from ..const import CONF_FIRMWARE, DOMAIN
from ..rate_limit import TokenBucket
from ..repairs import async_firmware_issue
from ..xiaozhi import McpTool
from .logins import LoginAttempts
from .pairing import DevicePairing, device_subentries, display_text, find_paired, token_matches

LATENCY_HISTORY: Final = 50
"""Response latencies kept per device for diagnostics."""

DATA_HUB: HassKey[DeviceHub] = HassKey(DOMAIN)


class LiveConnection(Protocol):
    """What the hub needs from a device's WebSocket connection."""

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
    """Hass-wide device state: paired devices, their live connections, and their pairing."""

    def __init__(self, hass: HomeAssistant, clock: Callable[[], float] = time.monotonic) -> None:
        """Start empty; `clock` drives pairing expiry and rate limits (injectable for tests)."""
        self.hass = hass
        self.pairing = DevicePairing(hass, clock)
        self.logins = LoginAttempts(hass, self._now)
        """Which refused requests count as failed logins (WebSocket and photo uploads)."""
        self.states: dict[str, DeviceState] = {}

    def _now(self) -> float:
        """The pairing clock, read late so that tests may replace it."""
        return self.pairing.clock()

    # --- paired devices -----------------------------------------------------------------------

    def find_paired(self, mac: str) -> tuple[ConfigEntry[Any], ConfigSubentry] | None:
        """The loaded entry and subentry a device is paired to, if any."""
        return find_paired(self.hass, mac)

    def state(self, mac: str) -> DeviceState:
        """The runtime state of a paired device, created on first use."""
        if (state := self.states.get(mac)) is None:
            state = self.states[mac] = DeviceState(mac)
        return state

    def authenticate(self, mac: str | None, token: str | None) -> ConfigSubentry | None:
        """The subentry whose stored hash matches this device's token, else None.

        The comparison is constant-time; a token handed over but not yet used is dropped
        from memory once it has been presented successfully.
        """
        if mac is None or not token or (found := self.find_paired(mac)) is None:
            return None
        subentry = found[1]
        if not token_matches(subentry, token):
            return None
        self.pairing.forget_handover(mac)
        return subentry

    def paired_while_unloaded(self, mac: str | None, token: str | None) -> bool:
        """Whether the token is valid for a device of an entry that is not loaded right now.

        Such a device is not an intruder: it is told to come back later, and no failed
        login is counted against its address.
        """
        if mac is None or not token:
            return False
        return any(
            subentry.unique_id == mac and token_matches(subentry, token)
            for entry in self.hass.config_entries.async_entries(DOMAIN)
            if entry.state is not ConfigEntryState.LOADED
            for subentry in device_subentries(entry)
        )

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

    # --- connections --------------------------------------------------------------------------

    async def async_attach(self, connection: LiveConnection) -> None:
        """Make this the device's live connection, closing the one it replaces."""
        state = self.state(connection.mac)
        previous, state.connection = state.connection, connection
        if previous is not None and previous is not connection:
            await previous.async_close("replaced by a new connection")
        state.last_seen = dt_util.utcnow()
        state.async_notify()

    @callback
    def async_detach(self, connection: LiveConnection) -> None:
        """Forget a closed connection (unless a newer one already replaced it)."""
        state = self.states.get(connection.mac)
        if state is None or state.connection is not connection:
            return
        state.connection = None
        state.tools = []
        state.last_seen = dt_util.utcnow()
        state.async_notify()

    async def async_disconnect(self, mac: str, reason: str) -> None:
        """Close the device's live connection, if any (its token was replaced)."""
        state = self.states.get(mac)
        if state is not None and state.connection is not None:
            await state.connection.async_close(reason)

    async def async_revoke(self, mac: str) -> None:
        """Forget a removed device: its token, pairing record and live connection."""
        self.pairing.async_forget(mac)
        state = self.states.pop(mac, None)
        if state is not None and state.connection is not None:
            await state.connection.async_close("device removed")
