"""Event-driven waits: wake a waiter when something it observes changed, never on a timer.

A test tool that records what happens (the device simulator, the Realtime test server) owns a
`Changes` and calls `notify()` where it records; `wait_until` re-checks a condition each time
one of its sources says it changed, and fails with the condition's text when time runs out.
A source is anything with HA's listener shape, `async_add_listener(update) -> remove`:
besides these tools, the product's own `DeviceState` and `DeviceConnection` have it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
import contextlib
import inspect
from typing import Any, Protocol

type Listener = Callable[..., None]
"""Called after a change; some sources pass what happened (a device event), others nothing."""

DEFAULT_TIMEOUT = 5.0


class Observable(Protocol):
    """Something that calls its listeners whenever its state changed."""

    def async_add_listener(self, update: Listener, /) -> Callable[[], None]:
        """Call `update` after each change; returns the remover."""
        ...


class Changes:
    """The listeners of one observable object."""

    def __init__(self) -> None:
        """Start with no listener."""
        self._listeners: list[Listener] = []

    def async_add_listener(self, update: Listener) -> Callable[[], None]:
        """Call `update` after each change; returns the remover."""
        self._listeners.append(update)
        return lambda: self._listeners.remove(update)

    def notify(self) -> None:
        """Tell every listener that something changed."""
        for update in list(self._listeners):
            update()


class Recorded[T](list[T]):
    """A list a test appends to from a callback, observable by `wait_until`."""

    def __init__(self) -> None:
        """Start empty."""
        super().__init__()
        self._changes = Changes()

    def async_add_listener(self, update: Listener) -> Callable[[], None]:
        """Call `update` after each append; returns the remover."""
        return self._changes.async_add_listener(update)

    def append(self, item: T, /) -> None:
        """Record `item` and tell the listeners."""
        super().append(item)
        self._changes.notify()


def describe(predicate: Callable[[], object]) -> str:
    """The condition's source text, for a failure message."""
    try:
        text = inspect.getsource(predicate).strip()
    except OSError, TypeError:
        return getattr(predicate, "__qualname__", repr(predicate))
    return " ".join(text.split())


async def wait_until(
    predicate: Callable[[], object],
    *sources: Observable,
    timeout: float = DEFAULT_TIMEOUT,  # noqa: ASYNC109 - named in the failure message
    what: str | None = None,
) -> None:
    """Wait until `predicate()` holds, re-checking it only when a source reports a change.

    Raises `TimeoutError` naming the condition (`what`, else its source text) on timeout.
    """
    if predicate():
        return
    if not sources:
        raise ValueError("wait_until needs at least one source to observe")
    woken = asyncio.Event()

    def wake(*_: Any) -> None:
        woken.set()

    removers = [source.async_add_listener(wake) for source in sources]
    try:
        async with asyncio.timeout(timeout):
            while True:
                woken.clear()
                if predicate():
                    return
                await woken.wait()
    except TimeoutError:
        names = ", ".join(type(source).__name__ for source in sources)
        raise TimeoutError(
            f"timed out after {timeout:g} s waiting until {what or describe(predicate)}"
            f" (observing {names})"
        ) from None
    finally:
        for remove in removers:
            with contextlib.suppress(ValueError):  # a closed connection drops its listeners
                remove()
