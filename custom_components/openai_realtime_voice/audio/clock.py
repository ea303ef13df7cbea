"""Clocks for pacing: the `Clock` protocol and the event loop's clock."""

from __future__ import annotations

import asyncio
from typing import Protocol


class Clock(Protocol):
    """A monotonic time source in seconds that can sleep until a deadline."""

    def now(self) -> float:
        """Return the current time in seconds."""
        ...

    async def sleep_until(self, deadline: float) -> None:
        """Return once `now()` has reached `deadline` (at once if it already has)."""
        ...


class LoopClock:
    """The running event loop's clock (`loop.time()`), as used by `asyncio.sleep`."""

    def now(self) -> float:
        """Return the loop's monotonic time."""
        return asyncio.get_running_loop().time()

    async def sleep_until(self, deadline: float) -> None:
        """Sleep on the loop until `deadline`."""
        delay = deadline - self.now()
        if delay > 0:
            await asyncio.sleep(delay)
