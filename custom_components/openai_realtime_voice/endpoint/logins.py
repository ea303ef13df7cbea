"""Which refused device requests count as failed logins in Home Assistant.

Home Assistant's `process_wrong_login` logs a warning, looks the address up in reverse DNS,
updates the "Login attempt failed" notification and counts towards an IP ban. Doing that for
every refused WebSocket or photo upload let one host flood the log and the notifications.

A refusal counts only when it **could be a guess**: a token of the shape we issue
(`secrets.token_urlsafe(32)`: 43 URL-safe characters) sent with the `Device-Id` of a paired
device. Not a guess: no token, a token of another shape, a missing or malformed `Device-Id`, a
MAC that is not paired (there is nothing to gain by guessing it), and a device token that was
valid until its device was paired again (the old board still waking). A guess is counted once
per address every `FAILED_LOGIN_WINDOW`: with 256-bit tokens the count is a signal to the user
and a ban threshold, not what stops the guessing.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
import re
from typing import Final

from aiohttp import web
from homeassistant.components.http.ban import process_wrong_login
from homeassistant.core import HomeAssistant

from ..const import DOMAIN
from ..rate_limit import RateLimiter
from .pairing import device_subentries, hash_token

FAILED_LOGIN_WINDOW: Final = 600.0
"""Seconds in which one address is counted as a failed login at most once."""

MAX_REPLACED: Final = 256
"""Hashes of replaced device tokens remembered (the oldest is forgotten first)."""

_TOKEN_SHAPE: Final = re.compile(r"[A-Za-z0-9_-]{43}")


class LoginAttempts:
    """Counts refused device requests as failed logins, only when they could be guesses."""

    def __init__(self, hass: HomeAssistant, clock: Callable[[], float]) -> None:
        """`clock` drives the window (the hub's, injectable for tests)."""
        self.hass = hass
        self._counted = RateLimiter(1, FAILED_LOGIN_WINDOW, clock=clock)
        self._replaced: OrderedDict[str, None] = OrderedDict()

    def replaced(self, token_hash: str) -> None:
        """A device was paired again: its old token, when presented, is not a guess."""
        self._replaced[token_hash] = None
        self._replaced.move_to_end(token_hash)
        while len(self._replaced) > MAX_REPLACED:
            self._replaced.popitem(last=False)

    def could_be_guess(self, mac: str | None, token: str | None) -> bool:
        """Whether a refused token could be someone guessing a paired device's token."""
        if mac is None or token is None or not _TOKEN_SHAPE.fullmatch(token):
            return False
        if not any(
            subentry.unique_id == mac
            for entry in self.hass.config_entries.async_entries(DOMAIN)
            for subentry in device_subentries(entry)
        ):
            return False
        return hash_token(token) not in self._replaced

    async def async_refused(self, request: web.Request, mac: str | None, token: str | None) -> bool:
        """Tell Home Assistant about a refused request if it could be a guess, once per
        address and window; True when it was counted."""
        if not self.could_be_guess(mac, token):
            return False
        if not self._counted.allow(request.remote or "unknown"):
            return False
        await process_wrong_login(request)
        return True
