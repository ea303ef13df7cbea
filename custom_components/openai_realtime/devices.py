"""Paired and pending xiaozhi devices: pairing codes, tokens and live connections.

One `DeviceHub` per Home Assistant instance (the OTA and WebSocket views are hass-wide); the
paired devices themselves are config subentries of type `device`, the single source of truth.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
import hashlib
import hmac
import re
import secrets
import time
from typing import TYPE_CHECKING, Any, Final, Protocol

from homeassistant.config_entries import SOURCE_INTEGRATION_DISCOVERY, ConfigEntry, ConfigSubentry
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers import discovery_flow
from homeassistant.util import dt as dt_util
from homeassistant.util.hass_dict import HassKey

from .const import (
    CONF_BOARD,
    CONF_CLIENT_ID,
    CONF_FIRMWARE,
    CONF_MAC,
    CONF_TOKEN_HASH,
    DOMAIN,
    LOGGER,
    SUBENTRY_DEVICE,
)

if TYPE_CHECKING:
    from .xiaozhi import McpTool

CODE_LIFETIME: Final = 600.0
"""Seconds a pairing code stays valid; the device fetches a new one on its next check."""

MAX_WRONG_CODES: Final = 5
"""Wrong codes allowed per device within `WRONG_CODE_WINDOW` before pairing is refused."""

WRONG_CODE_WINDOW: Final = 600.0

TOKEN_HANDOVER_LIFETIME: Final = 3600.0
"""Seconds a freshly issued token may be handed to the device before it must pair again."""

MAX_PENDING_DEVICES: Final = 32
"""Unknown devices remembered at once; the oldest is forgotten first (OTA is unauthenticated)."""

LATENCY_HISTORY: Final = 50
"""Response latencies kept per device for diagnostics."""

DATA_HUB: HassKey[DeviceHub] = HassKey(DOMAIN)

_MAC = re.compile(r"^[0-9a-f]{2}([:-])[0-9a-f]{2}(\1[0-9a-f]{2}){4}$")


def normalize_mac(value: str | None) -> str | None:
    """Return the firmware's lower-case colon form of a MAC address, or None if invalid."""
    if value is None:
        return None
    value = value.strip().lower()
    if not _MAC.match(value):
        return None
    return value.replace("-", ":")


def hash_token(token: str) -> str:
    """The stored form of a device token (hex sha256); the raw token is never persisted."""
    return hashlib.sha256(token.encode()).hexdigest()


class LiveConnection(Protocol):
    """What the hub needs from a device's WebSocket connection."""

    mac: str

    async def async_close(self, reason: str) -> None:
        """Close the connection, telling the device why."""


class PairingResult(StrEnum):
    """Outcome of checking a code the user typed."""

    OK = "ok"
    WRONG = "invalid_code"
    EXPIRED = "code_expired"
    TOO_MANY = "too_many_attempts"
    UNKNOWN = "unknown_device"


@dataclass(slots=True)
class PendingDevice:
    """An unknown device that asked for activation, with its current pairing code."""

    mac: str
    client_id: str
    board: str
    firmware: str
    code: str
    challenge: str
    expires: float
    approved: bool = False
    wrong_codes: deque[float] = field(default_factory=deque)

    @property
    def title(self) -> str:
        """How the device is named in flows and as a subentry: board and MAC."""
        return f"{self.board} ({self.mac})"


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
    bridge: Any = None
    """The live connection's `SpeechBridge`, if any (typed loosely: no import cycle)."""
    satellite: Any = None
    """The device's assist satellite entity, once added (the bridge's fallback drives it)."""
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


def device_subentries(entry: ConfigEntry[Any]) -> Iterator[ConfigSubentry]:
    """The paired devices of one config entry."""
    return (s for s in entry.subentries.values() if s.subentry_type == SUBENTRY_DEVICE)


class DeviceHub:
    """Hass-wide pairing state (codes, rate limits, tokens) and the live device connections."""

    def __init__(self, hass: HomeAssistant, clock: Callable[[], float] = time.monotonic) -> None:
        """Start empty; `clock` is injectable for tests of expiry and rate limiting."""
        self.hass = hass
        self.clock = clock
        self.pending: dict[str, PendingDevice] = {}
        self.states: dict[str, DeviceState] = {}
        self._handover: dict[str, tuple[str, str, float]] = {}

    # --- paired devices -----------------------------------------------------------------------

    def find_paired(self, mac: str) -> tuple[ConfigEntry[Any], ConfigSubentry] | None:
        """The loaded entry and subentry a device is paired to, if any."""
        for entry in self.hass.config_entries.async_loaded_entries(DOMAIN):
            for subentry in device_subentries(entry):
                if subentry.unique_id == mac:
                    return entry, subentry
        return None

    def state(self, mac: str) -> DeviceState:
        """The runtime state of a paired device, created on first use."""
        if (state := self.states.get(mac)) is None:
            state = self.states[mac] = DeviceState(mac)
        return state

    @callback
    def async_seen(self, mac: str) -> None:
        """Record that a paired device talked to us."""
        state = self.state(mac)
        state.last_seen = dt_util.utcnow()
        state.async_notify()

    def authenticate(self, mac: str | None, token: str | None) -> ConfigSubentry | None:
        """The subentry whose stored hash matches this device's token, else None.

        The comparison is constant-time; a token handed over but not yet used is dropped
        from memory once it has been presented successfully.
        """
        if mac is None or not token or (found := self.find_paired(mac)) is None:
            return None
        subentry = found[1]
        stored = str(subentry.data.get(CONF_TOKEN_HASH, ""))
        if not hmac.compare_digest(hash_token(token).encode(), stored.encode()):
            return None
        self._handover.pop(mac, None)
        return subentry

    # --- pairing ------------------------------------------------------------------------------

    @callback
    def async_activation(
        self, mac: str, client_id: str, board: str, firmware: str
    ) -> PendingDevice:
        """Return the unknown device's pending record, with a fresh code if it expired.

        The first request (and one after expiry) also starts a discovery flow, so the device
        shows up under Settings > Devices & services.
        """
        now = self.clock()
        pending = self.pending.get(mac)
        if pending is not None and pending.expires > now and not pending.approved:
            pending.client_id, pending.board, pending.firmware = client_id, board, firmware
            return pending
        wrong = pending.wrong_codes if pending is not None else deque[float]()
        pending = PendingDevice(
            mac=mac,
            client_id=client_id,
            board=board,
            firmware=firmware,
            code=f"{secrets.randbelow(1_000_000):06d}",
            challenge=secrets.token_urlsafe(24),
            expires=now + CODE_LIFETIME,
            wrong_codes=wrong,
        )
        self.pending.pop(mac, None)
        self.pending[mac] = pending
        while len(self.pending) > MAX_PENDING_DEVICES:
            del self.pending[next(iter(self.pending))]
        discovery_flow.async_create_flow(
            self.hass,
            DOMAIN,
            context={"source": SOURCE_INTEGRATION_DISCOVERY},
            data={CONF_MAC: mac},
        )
        LOGGER.info("Device %s (%s) asks to be paired", mac, board)
        return pending

    def pending_devices(self) -> list[PendingDevice]:
        """Unknown devices whose code is still valid, for the 'Add device' form."""
        now = self.clock()
        return [p for p in self.pending.values() if p.expires > now and not p.approved]

    def check_code(self, mac: str, code: str) -> PairingResult:
        """Check a typed code against the device's current one, with rate limiting."""
        pending = self.pending.get(mac)
        if pending is None or pending.approved:
            return PairingResult.UNKNOWN
        now = self.clock()
        while pending.wrong_codes and pending.wrong_codes[0] <= now - WRONG_CODE_WINDOW:
            pending.wrong_codes.popleft()
        if len(pending.wrong_codes) >= MAX_WRONG_CODES:
            return PairingResult.TOO_MANY
        if pending.expires <= now:
            return PairingResult.EXPIRED
        if not hmac.compare_digest(code.strip().encode(), pending.code.encode()):
            pending.wrong_codes.append(now)
            LOGGER.warning("Wrong pairing code entered for device %s", mac)
            return PairingResult.WRONG
        return PairingResult.OK

    def approve(self, mac: str) -> dict[str, str]:
        """Issue the device's token; returns the subentry data (with only the token's hash).

        The raw token stays in memory until the device's next OTA check fetches it.
        """
        pending = self.pending[mac]
        pending.approved = True
        token = secrets.token_urlsafe(32)
        self._handover[mac] = (token, pending.client_id, self.clock() + TOKEN_HANDOVER_LIFETIME)
        return {
            CONF_MAC: mac,
            CONF_CLIENT_ID: pending.client_id,
            CONF_BOARD: pending.board,
            CONF_FIRMWARE: pending.firmware,
            CONF_TOKEN_HASH: hash_token(token),
        }

    def is_approved(self, mac: str) -> bool:
        """Whether the user approved this device (it may not be loaded as a subentry yet)."""
        pending = self.pending.get(mac)
        return (pending is not None and pending.approved) or self.find_paired(mac) is not None

    def take_token(self, mac: str, client_id: str) -> str | None:
        """The raw token for a just-paired device, only to the client that asked to pair."""
        self.pending.pop(mac, None)
        handover = self._handover.get(mac)
        if handover is None:
            return None
        token, expected_client, expires = handover
        if expires <= self.clock():
            del self._handover[mac]
            return None
        if not hmac.compare_digest(client_id.encode(), expected_client.encode()):
            LOGGER.warning("Device %s asked for its token with another Client-Id", mac)
            return None
        return token

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

    async def async_revoke(self, mac: str) -> None:
        """Forget a removed device: its token, pairing record and live connection."""
        self._handover.pop(mac, None)
        self.pending.pop(mac, None)
        state = self.states.pop(mac, None)
        if state is not None and state.connection is not None:
            await state.connection.async_close("device removed")
