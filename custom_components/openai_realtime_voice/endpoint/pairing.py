"""Pairing of xiaozhi devices: pairing codes, wrong-code limits, token hand-over, approvals.

A device that asks to be paired gets a `PendingDevice` (a six-digit code it shows and speaks,
a discovered card in Home Assistant); the user types the code, `DevicePairing.approve` issues
its token, and the device fetches it with its next OTA check (again at every check, should a
reply be lost, until it first presents the token on its WebSocket). Paired devices are config
subentries of type `device` (the single source of truth); only the token's hash is stored.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
import hashlib
import hmac
import re
import secrets
import time
from typing import Any, Final

from homeassistant.config_entries import SOURCE_INTEGRATION_DISCOVERY, ConfigEntry, ConfigSubentry
from homeassistant.core import CALLBACK_TYPE, HassJob, HomeAssistant, callback
from homeassistant.helpers import discovery_flow
from homeassistant.helpers.event import async_call_later

from ..const import (
    CONF_BOARD,
    CONF_CLIENT_ID,
    CONF_FIRMWARE,
    CONF_MAC,
    CONF_TOKEN_HASH,
    DOMAIN,
    LOGGER,
    SUBENTRY_DEVICE,
)
from ..rate_limit import OpenLimiter, RateLimiter

CODE_LIFETIME: Final = 600.0
"""Seconds a pairing code stays valid; the device fetches a new one on its next check."""

MAX_WRONG_CODES: Final = 5
"""Wrong codes allowed per device within `WRONG_CODE_WINDOW` before pairing is refused."""

WRONG_CODE_WINDOW: Final = 600.0

APPROVAL_GUARD: Final = 3600.0
"""Seconds after an approval during which another Client-Id asking for the same MAC is refused
(409), unless the approved one fetched its token sooner. The token itself stays available to
the approved Client-Id until it is first presented on the WebSocket: the firmware stores it
only from a reply it read to the end (`Ota::CheckVersion`), so a lost reply must not lock the
device out."""

MAX_PENDING_DEVICES: Final = 16
"""Devices waiting to be paired at once, each with one discovered card; when the list is full,
devices that went quiet (`QUIET_AFTER`) make room, otherwise more are refused until one is
paired or its code expires (the OTA endpoint is unauthenticated)."""

QUIET_AFTER: Final = 30.0
"""Seconds without a boot check or activation poll after which a waiting device may lose its
place to a new one. The firmware polls `/activate` every 3 s (10 s after an error) and repeats
its boot check after ten polls (`Application::CheckNewVersion`), so a waiting board is heard
from at least every 10 s or so."""

NEW_DEVICES_PER_SOURCE: Final = 5
"""Devices one source address may put up for pairing within `CODE_LIFETIME`."""

OTA_REQUESTS_PER_MINUTE: Final = 20
"""Boot checks answered per source address and minute; the firmware makes one per boot and
one every 30 s or so while it waits for its code (`Application::CheckNewVersion`)."""

ACTIVATE_REQUESTS_PER_MINUTE: Final = 30
"""Activation polls answered per source address and minute; the firmware polls every 3 s."""

BODIES_PER_SOURCE: Final = 2
"""Request bodies (boot checks, activation polls, photo uploads) read at once per source
address; a board makes one request at a time. Each read also has a deadline (`ota.py`)."""

CLIENT_ID_SHOWN: Final = 8
"""Characters of a Client-Id shown to the user, enough to tell two devices apart."""

_MAC = re.compile(r"^[0-9a-f]{2}([:-])[0-9a-f]{2}(\1[0-9a-f]{2}){4}$")
_SPACES = re.compile(r"\s+")


def normalize_mac(value: str | None) -> str | None:
    """Return the firmware's lower-case colon form of a MAC address, or None if invalid."""
    if value is None:
        return None
    value = value.strip().lower()
    if not _MAC.match(value):
        return None
    return value.replace("-", ":")


def display_text(value: object, limit: int) -> str:
    """Untrusted device text made safe to show in a card title or a form: letters, digits,
    spaces and `.-_+` only (no markdown or markup), single-spaced, at most `limit` long."""
    if not isinstance(value, str):
        return ""
    kept = "".join(c if c.isalnum() or c in " .-_+" else " " for c in value)
    return _SPACES.sub(" ", kept).strip()[:limit].strip()


def hash_token(token: str) -> str:
    """The stored form of a device token (hex sha256); the raw token is never persisted."""
    return hashlib.sha256(token.encode()).hexdigest()


def same_client(first: str, second: str) -> bool:
    """Whether two Client-Ids are the same (constant-time; an empty one matches nothing)."""
    return bool(first) and hmac.compare_digest(first.encode(), second.encode())


def device_subentries(entry: ConfigEntry[Any]) -> Iterator[ConfigSubentry]:
    """The paired devices of one config entry."""
    return (s for s in entry.subentries.values() if s.subentry_type == SUBENTRY_DEVICE)


def find_paired(hass: HomeAssistant, mac: str) -> tuple[ConfigEntry[Any], ConfigSubentry] | None:
    """The loaded entry and subentry a device is paired to, if any."""
    for entry in hass.config_entries.async_loaded_entries(DOMAIN):
        for subentry in device_subentries(entry):
            if subentry.unique_id == mac:
                return entry, subentry
    return None


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None."""
    scheme, _, token = (authorization or "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


@dataclass(frozen=True, slots=True)
class DeviceLogin:
    """A device's credentials; `found`: the loaded entry and subentry whose hash they match;
    `not_loaded`: they are valid for a device of an entry that is not loaded right now."""

    mac: str | None
    token: str | None
    found: tuple[ConfigEntry[Any], ConfigSubentry] | None = None
    not_loaded: bool = False


def token_matches(subentry: ConfigSubentry, token: str) -> bool:
    """Whether the token hashes to the subentry's stored hash (constant-time)."""
    stored = str(subentry.data.get(CONF_TOKEN_HASH, ""))
    return hmac.compare_digest(hash_token(token).encode(), stored.encode())


class PairingResult(StrEnum):
    """Outcome of checking a code the user typed."""

    OK = "ok"
    WRONG = "invalid_code"
    EXPIRED = "code_expired"
    TOO_MANY = "too_many_attempts"
    UNKNOWN = "unknown_device"


class ActivationRefused(StrEnum):
    """Why a boot check got no pairing code."""

    CONFLICT = "another Client-Id is pairing this device"
    RATE_LIMITED = "too many new devices from this address"
    FULL = "too many devices waiting to be paired"


@dataclass(slots=True)
class PendingDevice:
    """A device that asked to be paired, with its pairing code.

    The record belongs to the Client-Id that asked first and never changes: another Client-Id
    for the same MAC is refused until this record is paired or expires.
    """

    mac: str
    client_id: str
    board: str
    firmware: str
    code: str
    challenge: str
    expires: float
    heard: float
    """When the device (this Client-Id) last made a boot check or an activation poll."""
    reset: bool = False
    """The MAC is already paired, with another Client-Id: the device was erased or reflashed."""
    conflict_logged: bool = False

    @property
    def title(self) -> str:
        """How the device is named as a subentry once paired: board and MAC.

        Not a card title: until the code is typed, the board name is the requester's word.
        """
        return f"{self.board} ({self.mac})"

    @property
    def client_id_start(self) -> str:
        """The start of the Client-Id, shown so the user can tell which device they approve."""
        return display_text(self.client_id, CLIENT_ID_SHOWN)


class DevicePairing:
    """Hass-wide pairing state: pending devices and their codes, rate limits, token hand-over."""

    def __init__(self, hass: HomeAssistant, clock: Callable[[], float] = time.monotonic) -> None:
        """Start empty; `clock` is injectable for tests of expiry and rate limiting."""
        self.hass = hass
        self.clock = clock
        self.pending: dict[str, PendingDevice] = {}
        self._handover: dict[str, tuple[str, str, float]] = {}
        """Tokens not yet presented, by MAC: (token, approved Client-Id, end of the guard
        against another Client-Id: an hour after the approval, or the first hand-over)."""
        self._wrong_codes: dict[str, deque[float]] = {}
        self._conflicts_logged: set[str] = set()
        """MACs whose token hand-over another Client-Id asked for (logged once each)."""
        self._expiry_timer: CALLBACK_TYPE | None = None
        self.ota_requests = RateLimiter(OTA_REQUESTS_PER_MINUTE, 60.0, clock=self._now)
        """Boot checks per source address."""
        self.activate_requests = RateLimiter(ACTIVATE_REQUESTS_PER_MINUTE, 60.0, clock=self._now)
        """Activation polls per source address."""
        self._new_devices = RateLimiter(NEW_DEVICES_PER_SOURCE, CODE_LIFETIME, clock=self._now)
        self.body_reads = OpenLimiter(BODIES_PER_SOURCE)
        """Request bodies being read, per source address."""

    def _now(self) -> float:
        """The pairing clock, read late so that tests may replace it."""
        return self.clock()

    @callback
    def async_activation(
        self, mac: str, client_id: str, board: str, firmware: str, source: str
    ) -> PendingDevice | ActivationRefused:
        """The pending record of a device that asks to be paired, or why it gets none.

        A new record (first request, or one after expiry) starts a discovery flow, so the
        device shows up under Settings > Devices & services. The record belongs to the
        first Client-Id: another one for the same MAC is refused and changes nothing. A MAC
        paired with another Client-Id is a device that was reset: it is offered again.
        """
        now = self.clock()
        self._async_expire(now)
        pending = self.pending.get(mac)
        handover = self._handover.get(mac)
        if (
            pending is None
            and handover is not None
            and handover[2] > now
            and not same_client(client_id, handover[1])
        ):
            if mac not in self._conflicts_logged:
                self._conflicts_logged.add(mac)
                LOGGER.warning(
                    "Device %s asked to be paired with another Client-Id while its token "
                    "waits for the approved one; refused",
                    mac,
                )
            return ActivationRefused.CONFLICT
        if pending is not None:
            if same_client(client_id, pending.client_id):
                pending.heard = now
                return pending
            if not pending.conflict_logged:
                pending.conflict_logged = True
                LOGGER.warning(
                    "Device %s asked to be paired with another Client-Id (%s) than the "
                    "pairing in progress (%s); refused",
                    mac,
                    display_text(client_id, CLIENT_ID_SHOWN),
                    pending.client_id_start,
                )
            return ActivationRefused.CONFLICT
        if len(self.pending) >= MAX_PENDING_DEVICES:
            self._async_evict_quiet(now)
        if len(self.pending) >= MAX_PENDING_DEVICES:
            LOGGER.debug("Device %s not offered for pairing: %s", mac, ActivationRefused.FULL)
            return ActivationRefused.FULL
        if not self._new_devices.allow(source):
            LOGGER.debug("Device %s from %s not offered for pairing: rate limited", mac, source)
            return ActivationRefused.RATE_LIMITED
        reset = find_paired(self.hass, mac) is not None
        pending = PendingDevice(
            mac=mac,
            client_id=client_id,
            board=display_text(board, 32) or "xiaozhi",
            firmware=display_text(firmware, 24),
            code=f"{secrets.randbelow(1_000_000):06d}",
            challenge=secrets.token_urlsafe(24),
            expires=now + CODE_LIFETIME,
            heard=now,
            reset=reset,
        )
        self.pending[mac] = pending
        self._async_schedule_expiry(now)
        discovery_flow.async_create_flow(
            self.hass,
            DOMAIN,
            context={"source": SOURCE_INTEGRATION_DISCOVERY},
            data={CONF_MAC: mac, CONF_CLIENT_ID: client_id},
        )
        if reset:
            LOGGER.info(
                "Device %s (%s) was reset (new Client-Id) and asks to be paired again",
                mac,
                pending.board,
            )
        else:
            LOGGER.info("Device %s (%s) asks to be paired", mac, pending.board)
        return pending

    def pending_for(self, mac: str, client_id: str | None = None) -> PendingDevice | None:
        """The device's valid pending record (only if it belongs to `client_id`, when given)."""
        pending = self.pending.get(mac)
        if pending is None or pending.expires <= self.clock():
            return None
        if client_id is None or same_client(client_id, pending.client_id):
            return pending
        return None

    @callback
    def async_poll(self, mac: str, client_id: str) -> PendingDevice | None:
        """The activation poll of a waiting device: its record, now marked as heard from."""
        if (pending := self.pending_for(mac, client_id)) is not None:
            pending.heard = self.clock()
        return pending

    @callback
    def _async_evict_quiet(self, now: float) -> None:
        """Make room in a full list: forget devices that stopped polling, and their cards."""
        for mac in [mac for mac, p in self.pending.items() if p.heard <= now - QUIET_AFTER]:
            LOGGER.debug("Device %s stopped asking to be paired; it makes room for another", mac)
            del self.pending[mac]
            self._async_abort_flows(mac)
        self._async_schedule_expiry(now)

    def pending_devices(self) -> list[PendingDevice]:
        """Devices whose code is still valid, for the 'Add device' form."""
        self._async_expire(self.clock())
        return list(self.pending.values())

    @callback
    def _async_expire(self, now: float) -> None:
        """Forget expired codes and abort their discovery flows."""
        for mac in [mac for mac, p in self.pending.items() if p.expires <= now]:
            del self.pending[mac]
            self._async_abort_flows(mac)
        self._conflicts_logged &= {mac for mac, (_, _, end) in self._handover.items() if end > now}
        for mac in [mac for mac, wrong in self._wrong_codes.items() if _prune(wrong, now)]:
            del self._wrong_codes[mac]

    @callback
    def _async_abort_flows(self, mac: str) -> None:
        """Abort the discovered card of a device that is no longer waiting."""
        flows = self.hass.config_entries.flow
        for flow in flows.async_progress_by_handler(DOMAIN, match_context={"unique_id": mac}):
            if flow["context"].get("source") == SOURCE_INTEGRATION_DISCOVERY:
                flows.async_abort(flow["flow_id"])

    @callback
    def _async_schedule_expiry(self, now: float) -> None:
        """Arm one timer for the earliest expiry, so cards vanish when their code does."""
        if self._expiry_timer is not None:
            self._expiry_timer()
            self._expiry_timer = None
        if not self.pending:
            return
        delay = max(0.0, min(p.expires for p in self.pending.values()) - now)
        self._expiry_timer = async_call_later(
            self.hass,
            delay + 0.01,
            HassJob(self._async_on_expiry_timer, "xiaozhi pairing expiry", cancel_on_shutdown=True),
        )

    @callback
    def _async_on_expiry_timer(self, _: datetime) -> None:
        self._expiry_timer = None
        now = self.clock()
        self._async_expire(now)
        self._async_schedule_expiry(now)

    def check_code(self, mac: str, code: str, client_id: str) -> PairingResult:
        """Check a typed code against the device's current one, with rate limiting.

        `client_id` is the one the user was shown: a record that changed since is unknown.
        """
        pending = self.pending.get(mac)
        if pending is None or not same_client(client_id, pending.client_id):
            return PairingResult.UNKNOWN
        now = self.clock()
        wrong = self._wrong_codes.setdefault(mac, deque())
        _prune(wrong, now)
        if len(wrong) >= MAX_WRONG_CODES:
            return PairingResult.TOO_MANY
        if pending.expires <= now:
            return PairingResult.EXPIRED
        if not hmac.compare_digest(code.strip().encode(), pending.code.encode()):
            wrong.append(now)
            LOGGER.warning("Wrong pairing code entered for device %s", mac)
            return PairingResult.WRONG
        return PairingResult.OK

    def wrong_codes(self, mac: str) -> int:
        """Wrong codes typed for the device within the window (for diagnostics)."""
        wrong = self._wrong_codes.get(mac)
        return 0 if wrong is None or _prune(wrong, self.clock()) else len(wrong)

    def approve(self, mac: str) -> dict[str, str]:
        """Issue the device's token; returns the subentry data (with only the token's hash).

        The raw token stays in memory for the device that asked (same Client-Id) to fetch with
        its OTA checks, until it presents the token on its WebSocket (`forget_handover`), is
        paired again or removed, or Home Assistant stops.
        """
        pending = self.pending.pop(mac)
        self._async_schedule_expiry(self.clock())
        token = secrets.token_urlsafe(32)
        self._handover[mac] = (token, pending.client_id, self.clock() + APPROVAL_GUARD)
        return {
            CONF_MAC: mac,
            CONF_CLIENT_ID: pending.client_id,
            CONF_BOARD: pending.board,
            CONF_FIRMWARE: pending.firmware,
            CONF_TOKEN_HASH: hash_token(token),
        }

    def is_approved(self, mac: str, client_id: str) -> bool:
        """Whether the user approved this device, as this Client-Id."""
        handover = self._handover.get(mac)
        if handover is not None and same_client(client_id, handover[1]):
            return True
        return self.is_paired_client(mac, client_id)

    def is_paired_client(self, mac: str, client_id: str) -> bool:
        """Whether the device is paired, as this Client-Id."""
        found = find_paired(self.hass, mac)
        return found is not None and same_client(
            client_id, str(found[1].data.get(CONF_CLIENT_ID, ""))
        )

    def token_for(self, mac: str, client_id: str) -> str | None:
        """The raw token of a just-paired device, only for the approved Client-Id.

        Handed over at every boot check until the device first presents it: the reply that
        carried it may have been lost before the firmware stored it.
        """
        handover = self._handover.get(mac)
        if handover is None or not same_client(client_id, handover[1]):
            return None
        # Handed out: another Client-Id may now ask to pair again (a reset device).
        self._handover[mac] = (handover[0], handover[1], min(handover[2], self.clock()))
        return handover[0]

    def authenticate(self, headers: Mapping[str, str]) -> DeviceLogin:
        """Check a device's `Device-Id` and bearer token, looking its pairing up once.

        The comparison is constant-time; a token handed over but not yet used is dropped
        from memory once it has been presented successfully. A valid token of an entry that
        is not loaded is no intruder: it is told to come back later.
        """
        mac = normalize_mac(headers.get("Device-Id"))
        token = bearer_token(headers.get("Authorization"))
        if mac is None or not token:
            return DeviceLogin(mac, token)
        if (found := find_paired(self.hass, mac)) is not None and token_matches(found[1], token):
            self.forget_handover(mac)
            return DeviceLogin(mac, token, found)
        loaded = self.hass.config_entries.async_loaded_entries(DOMAIN)
        not_loaded = any(
            subentry.unique_id == mac and token_matches(subentry, token)
            for entry in self.hass.config_entries.async_entries(DOMAIN)
            if entry not in loaded
            for subentry in device_subentries(entry)
        )
        return DeviceLogin(mac, token, not_loaded=not_loaded)

    def forget_handover(self, mac: str) -> None:
        """The device presented its token on its WebSocket: the copy kept for it is dropped."""
        self._handover.pop(mac, None)
        self._conflicts_logged.discard(mac)

    @callback
    def async_forget(self, mac: str) -> None:
        """Forget a removed device: its token waiting for hand-over and its pairing record."""
        self._handover.pop(mac, None)
        if self.pending.pop(mac, None) is not None:
            self._async_abort_flows(mac)


def _prune(events: deque[float], now: float) -> bool:
    """Drop wrong codes older than the window; True when none is left."""
    while events and events[0] <= now - WRONG_CODE_WINDOW:
        events.popleft()
    return not events
