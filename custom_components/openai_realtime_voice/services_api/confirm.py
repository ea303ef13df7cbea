"""Pending confirmations of destructive calls, per conversation, with an expiry.

A destructive call is first parked here; the same call with `confirm: true` in the same
conversation runs it, but only once the user has spoken since it was parked, so a model cannot
confirm on the user's behalf in the same breath. The user's turns are counted in the chat log;
a call made outside any chat log (an unknown count) keeps waiting, it is never confirmed.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
import json
from typing import Any, Final

from homeassistant.util import dt as dt_util

CONFIRMATION_TTL: Final = timedelta(minutes=5)
MAX_PENDING: Final = 64


class Verdict(StrEnum):
    """What a `confirm: true` call finds."""

    CONFIRMED = "confirmed"
    NOT_REQUESTED = "not_requested"
    AWAITING_USER = "awaiting_user"


@dataclass(frozen=True, slots=True)
class _Pending:
    """A parked call: when it expires and how many user turns the chat log had then.

    `user_turns` is None when the call was made outside a chat log (the count is unknown).
    """

    expires: datetime
    user_turns: int | None


type ConfirmKey = tuple[str, str, str]


def confirm_key(conversation: str, tool_name: str, args: Mapping[str, Any]) -> ConfirmKey:
    """Key a call by conversation, tool and its arguments (without `confirm`)."""
    canonical = json.dumps(
        {k: v for k, v in args.items() if k != "confirm"}, sort_keys=True, default=str
    )
    return (conversation, tool_name, canonical)


class PendingConfirmations:
    """Calls waiting for the user's yes, bounded in number and in time."""

    def __init__(
        self,
        *,
        ttl: timedelta = CONFIRMATION_TTL,
        max_pending: int = MAX_PENDING,
        now: Callable[[], datetime] = dt_util.utcnow,
    ) -> None:
        """Start empty; `now` is injectable for tests."""
        self._ttl = ttl
        self._max = max_pending
        self._now = now
        self._pending: OrderedDict[ConfirmKey, _Pending] = OrderedDict()

    def __len__(self) -> int:
        """The number of parked calls (expired ones included until the next prune)."""
        return len(self._pending)

    def request(self, key: ConfirmKey, user_turns: int | None) -> None:
        """Park a call until the user confirms it (replacing an older identical request)."""
        self._prune()
        self._pending.pop(key, None)
        self._pending[key] = _Pending(self._now() + self._ttl, user_turns)
        while len(self._pending) > self._max:
            self._pending.popitem(last=False)

    def confirm(self, key: ConfirmKey, user_turns: int | None) -> Verdict:
        """Check a confirmed call against its parked request; consume it when it may run.

        It may run only when both counts are known and the user has spoken since the request.
        """
        self._prune()
        pending = self._pending.get(key)
        if pending is None:
            return Verdict.NOT_REQUESTED
        if pending.user_turns is None or user_turns is None or user_turns <= pending.user_turns:
            return Verdict.AWAITING_USER
        del self._pending[key]
        return Verdict.CONFIRMED

    def _prune(self) -> None:
        """Drop expired requests."""
        now = self._now()
        for key in [key for key, pending in self._pending.items() if pending.expires <= now]:
            del self._pending[key]
