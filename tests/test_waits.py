"""The tests' event-driven waits: a condition is re-checked on a change, never on a timer."""

from __future__ import annotations

import asyncio

from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
import pytest

from simulator.changes import Changes, Recorded, wait_until
from tests.device_helpers import CallWatcher, finished, wait_until as wait_until_hass


async def test_a_change_wakes_the_wait() -> None:
    """The condition is checked again when its source notifies, and the wait returns."""
    changes = Changes()
    flag = [False]

    def flip() -> None:
        flag[0] = True
        changes.notify()

    asyncio.get_running_loop().call_soon(flip)
    await wait_until(lambda: flag[0], changes, timeout=1)


async def test_without_a_change_nothing_is_re_checked() -> None:
    """A condition that became true silently is not seen: nothing polls. The timeout names
    the condition, and the listeners are removed."""
    changes = Changes()
    flag = [False]
    asyncio.get_running_loop().call_soon(flag.__setitem__, 0, True)
    with pytest.raises(TimeoutError, match=r"waiting until .*flag\[0\].* \(observing Changes\)"):
        await wait_until(lambda: flag[0], changes, timeout=0.1)
    assert flag[0]
    assert not changes._listeners


async def test_a_wait_needs_a_source() -> None:
    """A condition that does not hold yet and nothing to observe is a mistake in the test."""
    with pytest.raises(ValueError, match="source"):
        await wait_until(lambda: False)


async def test_recorded_and_watched_calls_wake_the_wait() -> None:
    """A test's own records and the calls of a watched method are sources."""
    seen: Recorded[int] = Recorded()
    asyncio.get_running_loop().call_soon(seen.append, 1)
    await wait_until(lambda: seen == [1], seen, timeout=1)

    class Counter:
        def __init__(self) -> None:
            self.count = 0

        def add(self) -> int:
            self.count += 1
            return self.count

    counter = Counter()
    calls = CallWatcher(counter, "add")
    asyncio.get_running_loop().call_soon(counter.add)
    await wait_until(lambda: counter.count == 1, calls, timeout=1)
    assert counter.add() == 2  # the method runs unchanged


async def test_finished_names_what_did_not_finish() -> None:
    """Tasks are awaited; one that does not end fails the wait with its description."""
    done = asyncio.create_task(asyncio.sleep(0))
    await finished([done], "a task that ends")
    stuck = asyncio.create_task(asyncio.Event().wait())
    try:
        with pytest.raises(TimeoutError, match="the stuck task ended"):
            await finished([stuck], "the stuck task ended", timeout=0.05)
    finally:
        stuck.cancel()


async def test_home_assistant_events_wake_the_wait(hass: HomeAssistant) -> None:
    """A state change and a repairs issue wake a wait on Home Assistant."""
    hass.loop.call_soon(hass.states.async_set, "input_boolean.test", "on")
    await wait_until_hass(
        lambda: (
            (state := hass.states.get("input_boolean.test")) is not None and state.state == "on"
        ),
        hass,
        timeout=1,
    )

    def raise_issue() -> None:
        ir.async_create_issue(
            hass,
            "test",
            "an_issue",
            is_fixable=False,
            severity=ir.IssueSeverity.WARNING,
            translation_key="an_issue",
        )

    hass.loop.call_soon(raise_issue)
    registry = ir.async_get(hass)
    await wait_until_hass(lambda: registry.async_get_issue("test", "an_issue") is not None, hass)
