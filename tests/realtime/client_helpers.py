"""Shared helpers for the Realtime client tests: a client for the local server, an event log."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from custom_components.openai_realtime_voice.realtime import (
    ClientOptions,
    Dialect,
    RealtimeClient,
    RealtimeEndpoint,
    SessionConfig,
    SessionEvent,
)
from realtime_server import RealtimeServer

FAST = ClientOptions(open_timeout=2, backoff_base=0.001, backoff_max=0.002, ping_interval=None)


MANUAL = SessionConfig(turn_detection=None)


def make_client(
    server: RealtimeServer, config: SessionConfig = MANUAL, **kwargs: Any
) -> RealtimeClient:
    """A client for the local server with tiny backoff."""
    dialect = kwargs.pop("dialect", Dialect.GA)
    endpoint = RealtimeEndpoint(
        api_key=server.api_key, model=server.model, base_url=server.url, dialect=dialect
    )
    kwargs.setdefault("options", FAST)
    return RealtimeClient(endpoint, config, **kwargs)


class BackoffSleeps:
    """A client's `sleep` that records the backoff delays it is asked for and returns at once;
    the renewal timer (over a minute) never fires, as it is no part of a backoff test."""

    def __init__(self) -> None:
        """Nothing slept yet."""
        self.slept: list[float] = []

    async def __call__(self, delay: float) -> None:
        """Record a backoff delay; park the renewal timer for good."""
        if delay > 60:
            await asyncio.Event().wait()
        self.slept.append(delay)


class Recorder:
    """Collects session events in the background and lets tests wait for one."""

    def __init__(self, client: RealtimeClient) -> None:
        self.events: list[SessionEvent] = []
        self._changed = asyncio.Condition()
        self._task = asyncio.create_task(self._run(client))

    async def _run(self, client: RealtimeClient) -> None:
        async for event in client.events():
            async with self._changed:
                self.events.append(event)
                self._changed.notify_all()

    async def wait(self, kind: type, count: int = 1) -> Any:
        async with self._changed:
            await self._changed.wait_for(
                lambda: len([e for e in self.events if isinstance(e, kind)]) >= count
            )
        return [e for e in self.events if isinstance(e, kind)][count - 1]

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
