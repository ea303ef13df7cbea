"""One retry policy for everything that tries again: reconnects, refused requests, sessions."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
import random

__all__ = ["ReconnectPolicy"]


class ReconnectPolicy:
    """Delays between attempts: exponential (or a fixed schedule), capped, with optional jitter.

    Each failure calls `next_delay()` (or `wait()`, which also sleeps); a success calls
    `reset()`, so the next failure starts from the first delay again. With `max_attempts`
    the policy gives up (`next_delay()` returns None) once that many retries were used;
    without it, it retries forever at the capped delay.

    Exponential: attempt n waits `min(base * factor ** (n - 1), cap)`.
    Schedule: attempt n waits `schedule[n - 1]`, and the last entry once the schedule ran out.
    Jitter takes up to that fraction off each delay at random (0.25: 75-100 % of it), so many
    clients refused together do not come back together.
    """

    def __init__(
        self,
        *,
        base: float = 0.5,
        cap: float = 8.0,
        factor: float = 2.0,
        schedule: Sequence[float] = (),
        jitter: float = 0.0,
        max_attempts: int | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: Callable[[], float] = random.random,
    ) -> None:
        """Describe the delays; no attempt is counted yet."""
        if not 0.0 <= jitter <= 1.0:
            raise ValueError("jitter must be between 0 and 1")
        if any(delay < 0 for delay in schedule) or base < 0 or cap < 0:
            raise ValueError("delays must not be negative")
        self.base = base
        self.cap = cap
        self.factor = factor
        self.schedule = tuple(schedule)
        self.jitter = jitter
        self.max_attempts = max_attempts
        self._sleep = sleep
        self._rng = rng
        self.attempts = 0

    def __repr__(self) -> str:
        """Summarise the schedule and the attempts used."""
        shape = f"schedule={self.schedule}" if self.schedule else f"base={self.base} cap={self.cap}"
        return f"<ReconnectPolicy {shape} attempts={self.attempts}/{self.max_attempts or 'inf'}>"

    @property
    def exhausted(self) -> bool:
        """Whether every allowed retry has been used (never without `max_attempts`)."""
        return self.max_attempts is not None and self.attempts >= self.max_attempts

    def delay(self, attempt: int) -> float:
        """The delay before retry number `attempt` (1-based), before jitter."""
        attempt = max(attempt, 1)
        if self.schedule:
            return self.schedule[min(attempt, len(self.schedule)) - 1]
        return float(min(self.base * self.factor ** (attempt - 1), self.cap))

    def next_delay(self) -> float | None:
        """Count one failure; the seconds to wait before the next attempt, or None to give up."""
        if self.exhausted:
            return None
        self.attempts += 1
        delay = self.delay(self.attempts)
        if self.jitter:
            delay *= 1.0 - self.jitter * self._rng()
        return delay

    def reset(self) -> None:
        """An attempt succeeded: the next failure waits the first delay again."""
        self.attempts = 0

    async def wait(self, at_least: float = 0.0) -> bool:
        """Count one failure and sleep its delay; False (at once) when the retries are used up.

        `at_least` lengthens the delay to what the other side asked for (`retry-after`).
        """
        delay = self.next_delay()
        if delay is None:
            return False
        await self._sleep(max(delay, at_least))
        return True
