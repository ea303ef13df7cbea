"""The WebSocket side of a Realtime client: sessions for a protocol core, kept open.

`RealtimeLink` opens a session (session.created -> session.update -> session.updated),
feeds every frame to the sans-I/O `RealtimeProtocol`, sends what it queues, reconnects
under a `ReconnectPolicy` when the connection drops, and renews the session before the
service's time limit. It resolves the waits on the service's answers and hands session
events to subscribers. It knows no command: `RealtimeClient` adds those.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
import contextlib
import json
import logging
import time
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from .connection import async_open, closed_error
from .endpoint import RealtimeEndpoint
from .errors import (
    RealtimeConnectionError,
    RealtimeError,
    RealtimeRateLimitError,
    RealtimeSessionClosed,
)
from .events import (
    Closed,
    ProtocolEvent,
    Reconnected,
    RequestAccepted,
    RequestRefused,
    ResponseDone,
    SessionEvent,
    SessionExpired,
    SessionFailed,
    SessionReady,
    SessionUpdated,
)
from .lifetime import AZURE_SESSION_LIMIT, OPENAI_SESSION_LIMIT, expires_in, service_time
from .options import ClientOptions
from .protocol import Phase, RealtimeProtocol
from .response import RealtimeResponse

__all__ = ["RealtimeLink"]

_LOGGER = logging.getLogger(__name__)


class RealtimeLink:
    """One protocol core over a WebSocket that stays usable across drops until `close()`."""

    def __init__(
        self,
        endpoint: RealtimeEndpoint,
        protocol: RealtimeProtocol,
        options: ClientOptions,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        """Prepare; `connect()` opens the first session."""
        self.endpoint = endpoint
        self.protocol = protocol
        self.options = options
        self._clock = clock
        self._sleep = sleep
        # The first try is not a retry: `reconnect_attempts` tries in all.
        self._reconnects = options.retry_policy(options.reconnect_attempts - 1, sleep)
        self._ws: ClientConnection | None = None
        self._ready = asyncio.Event()
        self._stopped = asyncio.Event()
        self.idle = asyncio.Event()  # set while no response is in progress
        self._turn_quiet = asyncio.Event()  # cleared while the user's turn is open
        self._error: RealtimeError | None = None
        self._run_task: asyncio.Task[None] | None = None
        self._renew_task: asyncio.Task[None] | None = None
        self._subscribers: list[asyncio.Queue[SessionEvent | None]] = []
        self._waiters: dict[str, asyncio.Future[RealtimeResponse | RequestRefused | None]] = {}
        self._restart: str | None = None
        self._expires_in: float | None = None
        self._session_started = 0.0
        self._proven = False  # the current session answered a turn (see `proven`)
        self._sync()

    @property
    def connected(self) -> bool:
        """Whether a session is open and configured."""
        return self._ready.is_set()

    @property
    def session_started(self) -> float:
        """When the current session opened (client clock); its input audio counts from here."""
        return self._session_started

    @property
    def proven(self) -> bool:
        """Whether the current session answered a turn or lived `proven_after` seconds."""
        if self._proven:
            return True
        started = self._session_started
        return self._ready.is_set() and self._clock() - started >= self.options.proven_after

    @property
    def service_limit(self) -> float:
        """The service's known session limit: 60 minutes (OpenAI), 30 (Azure)."""
        return AZURE_SESSION_LIMIT if self.endpoint.is_azure else OPENAI_SESSION_LIMIT

    @property
    def session_limit(self) -> float:
        """Seconds a session may live: the service's `expires_at` when it is plausible."""
        limit = self.options.session_limit or self.service_limit
        if self._expires_in is not None:
            limit = min(limit, self._expires_in)
        return limit

    # -- lifecycle ---------------------------------------------------------------------------

    async def connect(self) -> None:
        """Open the session; ready after session.created -> session.update -> session.updated."""
        if self._run_task is not None:
            raise RealtimeError("client already connected")
        await self._open_session(replay=False)
        self._run_task = asyncio.create_task(self._run(), name="realtime-receive")

    async def close(self) -> None:
        """Close the session and cancel every task the client started (idempotent)."""
        self._finish(None)
        current = asyncio.current_task()
        tasks = [t for t in (self._run_task, self._renew_task) if t not in (None, current)]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._ws is not None:
            await self._ws.close()
            self._ws = None

    async def events(self) -> AsyncIterator[SessionEvent]:
        """Yield session events (VAD, transcripts, responses, errors) until the client stops."""
        queue: asyncio.Queue[SessionEvent | None] = asyncio.Queue()
        if self._stopped.is_set():
            if self._error is not None:
                yield Closed(self._error)
            return
        self._subscribers.append(queue)
        try:
            while (event := await queue.get()) is not None:
                yield event
        finally:
            self._subscribers.remove(queue)

    def _finish(self, error: RealtimeError | None) -> None:
        """Stop for good: fail waiters, end streams, tell subscribers."""
        if self._stopped.is_set():
            return
        self._error = error
        self._stopped.set()
        self._ready.clear()
        self._handle(self.protocol.stop())
        self._fail_waiters(error or RealtimeSessionClosed("client closed"))
        if self._renew_task is not None and self._renew_task is not asyncio.current_task():
            self._renew_task.cancel()
        self._emit(Closed(error))
        for queue in self._subscribers:
            queue.put_nowait(None)
        if error is not None:
            _LOGGER.warning("Realtime session stopped: %s", error)

    def _fail_waiters(self, error: RealtimeError) -> None:
        for waiter in self._waiters.values():
            if not waiter.done():
                waiter.set_exception(error)

    # -- session setup -----------------------------------------------------------------------

    async def _open_session(self, *, replay: bool) -> None:
        """Connect, configure and (after a reconnect) replay the text history."""
        self.protocol.start_session(replay=replay)
        ws = await async_open(
            self.endpoint,
            open_timeout=self.options.open_timeout,
            ping_interval=self.options.ping_interval,
        )
        try:
            async with asyncio.timeout(self.options.open_timeout):
                await self._configure(ws)
        except TimeoutError:
            await ws.close()
            raise RealtimeConnectionError("session setup timed out") from None
        except BaseException:
            await ws.close()
            raise
        self._ws = ws
        self._session_started = self._clock()
        self._proven = False
        headers = ws.response.headers if ws.response is not None else None
        self._expires_in = expires_in(
            self.protocol.expires_at, self.service_limit, service_time(headers)
        )
        self._sync()
        self._ready.set()
        if self._renew_task is not None:
            self._renew_task.cancel()
        self._renew_task = asyncio.create_task(self._renew_later(), name="realtime-renew")

    async def _configure(self, ws: ClientConnection) -> None:
        """Feed the setup exchange to the protocol until its session is open."""
        while self.protocol.phase is not Phase.OPEN:
            events = self.protocol.receive(await self._recv(ws))
            for event in events:
                if isinstance(event, SessionFailed):
                    raise event.error
            self._handle(events)  # a session.update the last session left unanswered
            await self.flush(ws)

    @staticmethod
    async def _recv(ws: ClientConnection) -> str | bytes:
        try:
            return await ws.recv()
        except ConnectionClosed as err:
            raise closed_error(err) from None

    # -- receive loop and reconnects ---------------------------------------------------------

    async def _run(self) -> None:
        """Receive until the connection ends, then reconnect or stop."""
        while True:
            ws = self._ws
            assert ws is not None
            try:
                while True:
                    await self._handle_and_flush(ws, self.protocol.receive(await ws.recv()))
            except ConnectionClosed as err:
                error = closed_error(err)
            proven = self.proven
            self._ready.clear()
            self._handle(self.protocol.connection_lost())
            if self._stopped.is_set():
                return
            restart, self._restart = self._restart, None
            if restart is None and not isinstance(error, RealtimeConnectionError):
                self._finish(error)
                return
            _LOGGER.debug("Session ended (%s); reconnecting", error)
            try:
                attempt = await self._reconnect(error, proven=proven, planned=restart is not None)
            except RealtimeError as err:
                self._finish(err)
                return
            self._emit(Reconnected(attempt=attempt, renewal=restart == "renewal"))

    async def _reconnect(self, error: RealtimeError, *, proven: bool, planned: bool) -> int:
        """Open a new session under the reconnect policy; return the attempt number.

        After a session that proved itself the first try is immediate. One that did not
        (it opened, then ended before answering a turn or living `proven_after`) counts as
        a failed try like a refused connection: the backoff keeps growing, and the retries
        run out, instead of opening (and replaying the history into) a session a second.
        A `planned` end (renewed, or expired by the service) is no failure: it waits the
        backoff too, so short sessions cannot loop, but never gives up.
        """
        policy = self._reconnects
        if proven:
            policy.reset()
        else:
            delay = policy.next_delay()
            if delay is None and not planned:
                raise error
            _LOGGER.debug("Session ended before it proved itself; backing off")
            await self._sleep(delay if delay is not None else policy.delay(policy.attempts))
        while True:
            try:
                await self._open_session(replay=True)
            except RealtimeConnectionError as err:
                _LOGGER.debug("Reconnect attempt %d failed: %s", policy.attempts + 1, err)
                asked = err.retry_after if isinstance(err, RealtimeRateLimitError) else None
                if not await policy.wait(at_least=asked or 0.0):
                    raise
                continue
            return policy.attempts + 1

    async def _renew_later(self) -> None:
        """Replace the session before it expires, at the end of a turn.

        Due `renew_margin` before the limit (the service's `expires_at` when given), it waits
        until no response runs and the user is not mid-utterance, but not past the point where
        the service would end the session anyway.
        """
        limit = self.session_limit
        margin = min(self.options.renew_margin, limit)
        start = self._session_started
        due = start + max(limit - margin, limit / 4)
        await self._sleep(max(due - self._clock(), 0.0))
        hard = start + limit - margin / 5
        try:
            async with asyncio.timeout(max(hard - self._clock(), 0.0)):
                while not (self.idle.is_set() and self._turn_quiet.is_set()):
                    await self.idle.wait()
                    await self._turn_quiet.wait()
        except TimeoutError:
            _LOGGER.debug("Renewing mid-turn: the session is about to expire")
        await self.renew()

    async def renew(self) -> None:
        """Start a fresh session now (config and history are replayed)."""
        if self._ws is None or self._stopped.is_set():
            return
        _LOGGER.debug("Renewing the session")
        self._restart = "renewal"
        await self._ws.close(1000, "renewing session")

    # -- acting on the protocol's events -----------------------------------------------------

    async def _handle_and_flush(self, ws: ClientConnection, events: list[ProtocolEvent]) -> None:
        self._handle(events)
        for event in events:
            if isinstance(event, SessionExpired):  # logged by the protocol
                self._restart = "expired"
                await ws.close(1000, "session expired")
            elif isinstance(event, SessionFailed):
                self._finish(event.error)
                await ws.close()
        with contextlib.suppress(RealtimeError):  # a failed send ends the connection: seen next
            await self.flush(ws)

    def _handle(self, events: list[ProtocolEvent]) -> None:
        """Resolve waiters and pass session events on; lifecycle events are the caller's."""
        for event in events:
            match event:
                case RequestAccepted(event_id=event_id, response=response):
                    self._resolve(event_id, response)
                case SessionUpdated(event_id=event_id):
                    self._resolve(event_id, None)
                case RequestRefused(event_id=event_id):
                    self._resolve(event_id, event)
                case SessionReady() | SessionFailed() | SessionExpired():
                    pass
                case ResponseDone(response=response):
                    self._proven = self._proven or response.status == "completed"
                    self._emit(event)
                case _:
                    self._emit(event)
        self._sync()

    def _resolve(self, event_id: str, result: RealtimeResponse | RequestRefused | None) -> None:
        waiter = self._waiters.get(event_id)
        if waiter is not None and not waiter.done():
            waiter.set_result(result)

    def _emit(self, event: SessionEvent) -> None:
        for queue in self._subscribers:
            queue.put_nowait(event)

    def _sync(self) -> None:
        """Mirror the protocol's idle and turn state into the events waits use."""
        tracker = self.protocol.tracker
        for flag, value in ((self.idle, tracker.idle), (self._turn_quiet, tracker.turn_quiet)):
            if value:
                flag.set()
            else:
                flag.clear()

    # -- sending -----------------------------------------------------------------------------

    async def _send_on(self, ws: ClientConnection, event: dict[str, Any]) -> None:
        if _LOGGER.isEnabledFor(logging.DEBUG) and event["type"] != "input_audio_buffer.append":
            _LOGGER.debug("Sending %s", event["type"])
        try:
            await ws.send(json.dumps(event))
        except ConnectionClosed as err:
            raise closed_error(err) from None

    async def flush(self, ws: ClientConnection | None = None) -> None:
        """Send what the protocol queued, on `ws` or the open session."""
        self._sync()  # a command may have opened or ended the user's turn (manual mode)
        events = self.protocol.data_to_send()
        ws = ws or self._ws
        if events and ws is None:
            raise self._error or RealtimeSessionClosed("client is not connected")
        for event in events:
            assert ws is not None
            await self._send_on(ws, event)

    async def wait_ready(self) -> None:
        if self._ready.is_set():
            return
        if self._stopped.is_set() or self._run_task is None:
            raise self._error or RealtimeSessionClosed("client is not connected")
        ready = asyncio.ensure_future(self._ready.wait())
        stopped = asyncio.ensure_future(self._stopped.wait())
        try:
            await asyncio.wait((ready, stopped), return_when=asyncio.FIRST_COMPLETED)
        finally:
            ready.cancel()
            stopped.cancel()
        if not self._ready.is_set():
            raise self._error or RealtimeSessionClosed("client closed")

    async def command(self, command: Callable[[], object]) -> None:
        """Run a protocol command once a session is open, and send what it queued."""
        await self.wait_ready()
        command()
        await self.flush()

    async def request(
        self, event_id: str | None, within: float | None
    ) -> RealtimeResponse | RequestRefused | None:
        """Send what was queued for `event_id` and wait for the service's answer to it."""
        if event_id is None:
            return None
        waiter: asyncio.Future[RealtimeResponse | RequestRefused | None]
        waiter = asyncio.get_running_loop().create_future()
        self._waiters[event_id] = waiter
        try:
            await self.flush()
            async with asyncio.timeout(within):
                return await waiter
        finally:
            del self._waiters[event_id]
            self.protocol.request_finished(event_id)
            if waiter.done() and not waiter.cancelled():
                waiter.exception()  # seen: the send failed first and raised its own error
