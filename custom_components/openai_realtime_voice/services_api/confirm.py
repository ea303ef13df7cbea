"""Pending confirmations of destructive calls, per conversation, with an expiry.

A destructive call is first parked here; the same call with `confirm: true` in the same
conversation runs it, but only once the user has spoken since it was parked, so a model cannot
confirm on the user's behalf in the same breath. The user's turns are counted in the chat log;
a call made outside any chat log (an unknown count) keeps waiting, it is never confirmed.

A spoken conversation needs more than the count: a turn can be new to the model and still be
older than its question (a "thanks" said while the request was made, committed before the
question was even generated). There the conversation's `SpokenDialogue` (set while a device
reply's tools run) must also tell that a user turn the model heard started after a reply that
began after the request had played to its end.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
import json
from typing import Any, Final, Protocol

from homeassistant.util import dt as dt_util

CONFIRMATION_TTL: Final = timedelta(minutes=5)
MAX_PENDING: Final = 64


class Verdict(StrEnum):
    """What a `confirm: true` call finds."""

    CONFIRMED = "confirmed"
    NOT_REQUESTED = "not_requested"
    AWAITING_USER = "awaiting_user"


class SpokenDialogue(Protocol):
    """When a spoken conversation's replies played and its user turns started."""

    def mark(self) -> float:
        """The moment now, on the dialogue's clock (taken when a request is parked)."""

    def answered_after(self, mark: float) -> bool:
        """Whether a user turn heard so far started after a reply, begun after `mark`, had
        played to its end (the question, heard whole before the answer began)."""


SPOKEN_DIALOGUE: ContextVar[SpokenDialogue | None] = ContextVar(
    "openai_realtime_voice_spoken_dialogue", default=None
)
"""The spoken conversation whose reply's tools run now (None: a typed conversation)."""


@dataclass(frozen=True, slots=True)
class _Pending:
    """A parked call: when it expires, how many user turns the chat log had then and, in a
    spoken conversation, the dialogue's moment then.

    `user_turns` is None when the call was made outside a chat log (the count is unknown).
    """

    expires: datetime
    user_turns: int | None
    spoken_mark: float | None = None


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

    def request(
        self, key: ConfirmKey, user_turns: int | None, spoken: SpokenDialogue | None = None
    ) -> None:
        """Park a call until the user confirms it (replacing an older identical request)."""
        self._prune()
        self._pending.pop(key, None)
        mark = spoken.mark() if spoken is not None else None
        self._pending[key] = _Pending(self._now() + self._ttl, user_turns, mark)
        while len(self._pending) > self._max:
            self._pending.popitem(last=False)

    def confirm(
        self, key: ConfirmKey, user_turns: int | None, spoken: SpokenDialogue | None = None
    ) -> Verdict:
        """Check a confirmed call against its parked request; consume it when it may run.

        It may run only when both counts are known and the user has spoken since the request;
        in a spoken conversation (the request's and the confirmation's alike), only when the
        user spoke after a question that followed the request had played whole.
        """
        self._prune()
        pending = self._pending.get(key)
        if pending is None:
            return Verdict.NOT_REQUESTED
        if pending.user_turns is None or user_turns is None or user_turns <= pending.user_turns:
            return Verdict.AWAITING_USER
        if (pending.spoken_mark is None) != (spoken is None):
            return Verdict.AWAITING_USER
        if spoken is not None and (
            pending.spoken_mark is None or not spoken.answered_after(pending.spoken_mark)
        ):
            return Verdict.AWAITING_USER
        del self._pending[key]
        return Verdict.CONFIRMED

    def _prune(self) -> None:
        """Drop expired requests."""
        now = self._now()
        for key in [key for key, pending in self._pending.items() if pending.expires <= now]:
            del self._pending[key]
