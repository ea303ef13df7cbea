"""Tests for the manual clock used to drive pacing without real sleeps."""

from __future__ import annotations

import asyncio

from tests.manual_clock import ManualClock


async def test_sleepers_wake_in_deadline_order() -> None:
    """Sleepers wake at their deadlines, earliest first, and time lands on the target."""
    clock = ManualClock(start=10.0)
    woke: list[tuple[str, float]] = []

    async def sleeper(name: str, deadline: float) -> None:
        await clock.sleep_until(deadline)
        woke.append((name, clock.now()))

    tasks = [
        asyncio.create_task(sleeper("late", 12.0)),
        asyncio.create_task(sleeper("early", 11.0)),
        asyncio.create_task(sleeper("never", 99.0)),
    ]
    await clock.advance(0)
    assert clock.sleepers == 3
    await clock.advance_to(12.5)
    assert woke == [("early", 11.0), ("late", 12.0)]
    assert clock.now() == 12.5
    assert clock.sleepers == 1
    tasks[2].cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await clock.advance(100)
    assert clock.sleepers == 0


async def test_past_deadline_and_backwards_target() -> None:
    """A past deadline returns at once; time never moves backwards."""
    clock = ManualClock(start=5.0)
    await clock.sleep_until(4.0)
    await clock.advance_to(1.0)
    assert clock.now() == 5.0
