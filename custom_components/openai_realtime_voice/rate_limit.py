"""Per-key limits (a source address, a device), bounded in memory: events per sliding window,
and things open at once."""

from __future__ import annotations

from collections import Counter, OrderedDict, deque
from collections.abc import Callable
import time
from typing import Final

MAX_KEYS: Final = 1024
"""Keys remembered at once; the least recently used is forgotten first (keys are untrusted)."""


class RateLimiter:
    """Allows at most `limit` events per `window` seconds for each key."""

    def __init__(
        self,
        limit: int,
        window: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = MAX_KEYS,
    ) -> None:
        """`clock` is injectable for tests; `max_keys` bounds the memory an attacker can use."""
        self.limit = limit
        self.window = window
        self._clock = clock
        self._max_keys = max_keys
        self._events: OrderedDict[str, deque[float]] = OrderedDict()

    def allow(self, key: str) -> bool:
        """Count one event for `key`; False (and not counted) when the key is over its limit."""
        now = self._clock()
        events = self._events.pop(key, None)
        if events is None:
            events = deque()
        while events and events[0] <= now - self.window:
            events.popleft()
        self._events[key] = events
        while len(self._events) > self._max_keys:
            self._events.popitem(last=False)
        if len(events) >= self.limit:
            return False
        events.append(now)
        return True


class OpenLimiter:
    """Allows at most `limit` things (request bodies being read) open at once for each key.

    Only keys with something open are remembered, so memory is bounded by what is open.
    """

    def __init__(self, limit: int) -> None:
        """At most `limit` open per key."""
        self.limit = limit
        self._open: Counter[str] = Counter()

    def acquire(self, key: str) -> bool:
        """Open one for `key`; False (and nothing opened) when the key is at its limit."""
        if self._open[key] >= self.limit:
            return False
        self._open[key] += 1
        return True

    def release(self, key: str) -> None:
        """Close one that `acquire` opened."""
        self._open[key] -= 1
        if self._open[key] <= 0:
            del self._open[key]

    def open(self, key: str) -> int:
        """How many are open for `key`."""
        return self._open.get(key, 0)


class TokenBucket:
    """Allows `rate` units a second on average and bursts of up to `burst` units."""

    def __init__(
        self, rate: float, burst: float, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        """Start full; `clock` is injectable for tests."""
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._level = burst
        self._at = clock()

    def spend(self, amount: float) -> bool:
        """Take `amount` units; False (and the bucket left in debt) when there were too few.

        The debt is kept, so a sender that overspends waits longer before it is allowed again.
        """
        now = self._clock()
        self._level = min(self.burst, self._level + (now - self._at) * self.rate) - amount
        self._at = now
        return self._level >= 0
