"""The Realtime client: one session with responses, tools, barge-in and reconnects."""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
import contextlib
from dataclasses import dataclass, replace
import itertools
import json
import logging
import random
import time
from typing import Any, Final

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from .config import FunctionTool, Modality, SessionConfig, session_diff
from .connection import async_open, closed_error, error_event_exception
from .endpoint import Dialect, RealtimeEndpoint
from .errors import (
    FATAL_ERROR_CODES,
    RATE_LIMIT_CODE,
    RealtimeConnectionError,
    RealtimeError,
    RealtimeRequestError,
    RealtimeSessionClosed,
    error_for_code,
    redact,
)
from .events import (
    AudioDelta,
    Closed,
    FunctionCall,
    InputCommitted,
    InputTranscript,
    InputTranscriptDelta,
    Reconnected,
    ResponseDone,
    ResponseStarted,
    ServerError,
    SessionEvent,
    SpeechStarted,
    SpeechStopped,
    TextDelta,
    TranscriptDelta,
    ga_event_type,
)
from .response import BYTES_PER_MS, RealtimeResponse
from .usage import ModelPrices, Usage, prices_for

__all__ = ["ClientOptions", "RealtimeClient", "ToolExecutor"]

_LOGGER = logging.getLogger(__name__)

type ToolExecutor = Callable[[str, str, str], Awaitable[str]]
"""Runs one function call: (name, JSON arguments, call_id) -> output string."""

# Errors that only mean "nothing to cancel/truncate"; the session is fine.
BENIGN_ERROR_CODES: Final = frozenset(
    {
        "response_cancel_not_active",
        "input_audio_buffer_commit_empty",
        "unsupported_content_type",
    }
)
# Tags our response.create in metadata so its response.created is told apart from VAD's.
CLIENT_EVENT_KEY: Final = "client_event_id"
BUSY_CODE: Final = "conversation_already_has_active_response"
OPENAI_SESSION_LIMIT: Final = 60 * 60.0
AZURE_SESSION_LIMIT: Final = 30 * 60.0


@dataclass(frozen=True, kw_only=True)
class ClientOptions:
    """Tuning knobs; the defaults suit the OpenAI service."""

    open_timeout: float = 10.0
    ping_interval: float | None = 20.0
    reconnect_attempts: int = 5
    backoff_base: float = 0.5
    backoff_max: float = 8.0
    session_limit: float | None = None  # None: 60 min OpenAI, 30 min Azure
    renew_margin: float = 120.0
    max_tool_rounds: int = 10
    max_history_items: int = 50
    prices: Mapping[str, ModelPrices] | None = None
    response_timeout: float = 15.0  # response.create -> response.created (or its error)
    create_retries: int = 5  # resends of a response.create the service was too busy for


@dataclass(slots=True)
class _Entry:
    """One replayable message; `key` is its item id (user audio) or response id (a reply)."""

    role: str
    text: str
    key: str | None = None


def _consume(future: asyncio.Future[Any]) -> None:
    """Mark a waiter's failure as seen when the send failed first and raised its own error."""
    if future.done() and not future.cancelled():
        future.exception()


class RealtimeClient:
    """A Realtime session that stays usable across drops, expiry and renewal until `close()`."""

    def __init__(
        self,
        endpoint: RealtimeEndpoint,
        config: SessionConfig,
        *,
        tool_executor: ToolExecutor | None = None,
        options: ClientOptions | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        """Prepare a client; `connect()` opens the session."""
        self.endpoint = endpoint
        self.options = options or ClientOptions()
        self.usage = Usage()
        self.tool_executor = tool_executor
        self._config = config
        self._applied = config
        self._clock = clock
        self._sleep = sleep
        self._ws: ClientConnection | None = None
        self._ready = asyncio.Event()
        self._stopped = asyncio.Event()
        self._error: RealtimeError | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._run_task: asyncio.Task[None] | None = None
        self._renew_task: asyncio.Task[None] | None = None
        self._subscribers: list[asyncio.Queue[SessionEvent | None]] = []
        self._ids = itertools.count(1)
        self._running: dict[str, RealtimeResponse] = {}
        self._last: RealtimeResponse | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        # Cleared while the user's turn is open (speech started, its reply not done yet).
        self._turn_quiet = asyncio.Event()
        self._turn_quiet.set()
        self._turn_reply: str | None = None  # "next": speech stopped, its reply not created yet
        self._create_lock = asyncio.Lock()
        self._created: asyncio.Future[RealtimeResponse] | None = None
        self._create_event_id: str | None = None
        self._create_out_of_band = False
        self._cut: set[str] = set()
        self._history: deque[_Entry] = deque(maxlen=self.options.max_history_items)
        self._audio_produced = False
        self._server_cancelled: set[str] = set()
        self._expires_in: float | None = None
        self._tool_rounds = 0
        self._restart: str | None = None
        self._session_started = 0.0
        self._update_waiter: asyncio.Future[None] | None = None
        self._update_lock = asyncio.Lock()
        self._update_event_id: str | None = None
        self._handlers: dict[str, Callable[[dict[str, Any]], Awaitable[None]]] = {
            "error": self._on_error,
            "session.updated": self._on_session_updated,
            "input_audio_buffer.speech_started": self._on_speech_started,
            "input_audio_buffer.speech_stopped": self._on_speech_stopped,
            "input_audio_buffer.committed": self._on_committed,
            "conversation.item.input_audio_transcription.delta": self._on_input_transcript_delta,
            "conversation.item.input_audio_transcription.completed": self._on_input_transcript,
            "response.created": self._on_response_created,
            "response.output_audio.delta": self._on_audio_delta,
            "response.output_text.delta": self._on_text_delta,
            "response.output_audio_transcript.delta": self._on_transcript_delta,
            "response.output_item.done": self._on_output_item_done,
            "response.done": self._on_response_done,
        }

    # -- properties --------------------------------------------------------------------------

    @property
    def config(self) -> SessionConfig:
        """The configuration the caller asked for."""
        return self._config

    @property
    def connected(self) -> bool:
        """Whether a session is open and configured."""
        return self._ready.is_set()

    @property
    def active_response(self) -> RealtimeResponse | None:
        """The latest response in progress, if any."""
        return self._active

    @property
    def _active(self) -> RealtimeResponse | None:
        return next(reversed(self._running.values()), None)

    @property
    def tool_rounds(self) -> int:
        """Tool-output rounds in the current user turn."""
        return self._tool_rounds

    def cost(self) -> float | None:
        """Estimated USD so far from the price table; None for an unknown model."""
        prices = prices_for(self.endpoint.model, self.options.prices)
        return None if prices is None else self.usage.cost(prices)

    @property
    def session_started(self) -> float:
        """When the current session opened (client clock); its input audio counts from here."""
        return self._session_started

    @property
    def session_limit(self) -> float:
        """Seconds a session may live: the service's `expires_at` when it gave one."""
        if self.options.session_limit is not None:
            limit = self.options.session_limit
        else:
            limit = AZURE_SESSION_LIMIT if self.endpoint.is_azure else OPENAI_SESSION_LIMIT
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
        tasks = [t for t in (self._run_task, self._renew_task, *self._tasks) if t is not None]
        current = asyncio.current_task()
        for task in tasks:
            if task is not current:
                task.cancel()
        for task in tasks:
            if task is not current:
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

    def _emit(self, event: SessionEvent) -> None:
        for queue in self._subscribers:
            queue.put_nowait(event)

    def _finish(self, error: RealtimeError | None) -> None:
        """Stop for good: fail waiters, end streams, tell subscribers."""
        if self._stopped.is_set():
            return
        self._error = error
        self._stopped.set()
        self._ready.clear()
        self._end_running("failed")
        if self._created is not None and not self._created.done():
            self._created.set_exception(error or RealtimeSessionClosed("client closed"))
        if self._update_waiter is not None and not self._update_waiter.done():
            self._update_waiter.set_exception(error or RealtimeSessionClosed("client closed"))
        if self._renew_task is not None and self._renew_task is not asyncio.current_task():
            self._renew_task.cancel()
        self._emit(Closed(error))
        for queue in self._subscribers:
            queue.put_nowait(None)
        if error is not None:
            _LOGGER.warning("Realtime session stopped: %s", error)

    def _spawn(self, coro: Awaitable[Any], name: str) -> None:
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- session setup -----------------------------------------------------------------------

    async def _open_session(self, *, replay: bool) -> None:
        """Connect, configure and (after a reconnect) replay the text history."""
        ws = await async_open(
            self.endpoint,
            open_timeout=self.options.open_timeout,
            ping_interval=self.options.ping_interval,
        )
        try:
            async with asyncio.timeout(self.options.open_timeout):
                created = await self._expect(ws, "session.created", None)
                self._expires_in = _expires_in(created)
                self._applied = self._config
                event_id = self._event_id()
                await self._send_on(
                    ws,
                    {
                        "type": "session.update",
                        "event_id": event_id,
                        "session": self._config.render(self.endpoint.dialect),
                    },
                )
                await self._expect(ws, "session.updated", event_id)
        except TimeoutError:
            await ws.close()
            raise RealtimeConnectionError("session setup timed out") from None
        except BaseException:
            await ws.close()
            raise
        self._ws = ws
        self._audio_produced = False
        self._server_cancelled.clear()
        self._turn_reply = None
        self._turn_quiet.set()
        self._session_started = self._clock()
        if replay:
            for entry in list(self._history):
                if entry.text:
                    await self._send_on(ws, self._message_item(entry.role, entry.text))
        self._ready.set()
        if self._renew_task is not None:
            self._renew_task.cancel()
        self._renew_task = asyncio.create_task(self._renew_later(), name="realtime-renew")

    async def _expect(
        self, ws: ClientConnection, kind: str, event_id: str | None
    ) -> dict[str, Any]:
        """Read events until `kind` and return it; an error event (ours, or fatal) raises."""
        while True:
            try:
                raw = await ws.recv()
            except ConnectionClosed as err:
                raise closed_error(err) from None
            event = self._decode(raw)
            if event is None:
                continue
            if event["type"] == kind:
                return event
            if event["type"] == "error":
                error = ServerError.from_event(event)
                if error.code in FATAL_ERROR_CODES or error.event_id in (event_id, None):
                    raise error_event_exception(event, self.endpoint.api_key)
            _LOGGER.debug("Ignoring %s while waiting for %s", event["type"], kind)

    def _decode(self, raw: str | bytes) -> dict[str, Any] | None:
        try:
            event = json.loads(raw)
        except ValueError:
            _LOGGER.debug("Ignoring a non-JSON frame of %d bytes", len(raw))
            return None
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            _LOGGER.debug("Ignoring a frame without an event type")
            return None
        event["type"] = ga_event_type(event["type"])
        return event

    # -- receive loop and reconnects ---------------------------------------------------------

    async def _run(self) -> None:
        """Receive until the connection ends, then reconnect or stop."""
        while True:
            ws = self._ws
            assert ws is not None
            try:
                while True:
                    event = self._decode(await ws.recv())
                    if event is not None:
                        await self._dispatch(event)
            except ConnectionClosed as err:
                error = closed_error(err)
            self._ready.clear()
            self._end_running("failed")
            if self._created is not None and not self._created.done():
                self._created.set_exception(RealtimeConnectionError("connection lost"))
            if self._stopped.is_set():
                return
            restart = self._restart
            self._restart = None
            if restart is None and not isinstance(error, RealtimeConnectionError):
                self._finish(error)
                return
            _LOGGER.debug("Session ended (%s); reconnecting", error)
            try:
                attempt = await self._reconnect()
            except RealtimeError as err:
                self._finish(err)
                return
            self._emit(Reconnected(attempt=attempt, renewal=restart == "renewal"))

    async def _reconnect(self) -> int:
        """Open a new session with exponential backoff and jitter; return the attempt number."""
        last: RealtimeError = RealtimeConnectionError("reconnect failed")
        for attempt in range(1, self.options.reconnect_attempts + 1):
            try:
                await self._open_session(replay=True)
            except RealtimeConnectionError as err:
                last = err
                delay = min(
                    self.options.backoff_base * 2 ** (attempt - 1), self.options.backoff_max
                )
                await self._sleep(delay * random.uniform(0.75, 1.0))
                continue
            return attempt
        raise last

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
                while not (self._idle.is_set() and self._turn_quiet.is_set()):
                    await self._idle.wait()
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

    # -- dispatch ----------------------------------------------------------------------------

    async def _dispatch(self, event: dict[str, Any]) -> None:
        kind: str = event["type"]
        handler = self._handlers.get(kind)
        if handler is None:
            _LOGGER.debug("Ignoring server event %s", kind)
            return
        if kind not in _AUDIO_EVENTS:
            _LOGGER.debug("Received %s", kind)
        await handler(event)

    async def _on_error(self, event: dict[str, Any]) -> None:
        error = ServerError.from_event(event)
        message = redact(error.message, self.endpoint.api_key)
        if error.code == "session_expired":
            _LOGGER.debug("Session expired; a new one follows")
            self._restart = "expired"
            if self._ws is not None:
                await self._ws.close(1000, "session expired")
            return
        fatal = error_for_code(error.code, message)
        if error.code in FATAL_ERROR_CODES and fatal is not None:
            self._finish(fatal)
            if self._ws is not None:
                await self._ws.close()
            return
        if self._created is not None and error.event_id == self._create_event_id:
            if not self._created.done():
                self._created.set_exception(_create_failure(error, message))
            return
        if self._update_waiter is not None and error.event_id == self._update_event_id:
            if not self._update_waiter.done():
                self._update_waiter.set_exception(RealtimeError(f"{error.code}: {message}"))
            return
        if error.code in BENIGN_ERROR_CODES or _is_truncate_error(error, message):
            _LOGGER.debug("Ignoring benign error %s: %s", error.code, message)
            return
        _LOGGER.debug("Server error %s: %s", error.code, message)
        self._emit(ServerError(error.type, error.code, message, error.event_id))

    async def _on_session_updated(self, event: dict[str, Any]) -> None:
        if self._update_waiter is not None and not self._update_waiter.done():
            self._update_waiter.set_result(None)

    async def _on_speech_started(self, event: dict[str, Any]) -> None:
        self._turn_quiet.clear()
        self._turn_reply = None
        if self._applied.server_interrupts:
            # Server VAD cancels only responses in the default conversation (SDK docstring
            # of ServerVad.interrupt_response); out-of-band ones are ours to cancel.
            self._server_cancelled.update(r.id for r in self._running.values() if not r.out_of_band)
        self._emit(SpeechStarted(_int(event, "audio_start_ms"), str(event.get("item_id", ""))))

    async def _on_speech_stopped(self, event: dict[str, Any]) -> None:
        detection = self._applied.turn_detection
        if detection is None or not detection.create_response:
            self._turn_quiet.set()  # no reply follows by itself: the turn is over
        else:
            self._turn_reply = "next"
        self._emit(SpeechStopped(_int(event, "audio_end_ms"), str(event.get("item_id", ""))))

    async def _on_committed(self, event: dict[str, Any]) -> None:
        self._tool_rounds = 0
        item_id = str(event.get("item_id", ""))
        # The user's turn takes its place now; its transcript may come after the reply.
        self._history.append(_Entry("user", "", item_id))
        self._emit(InputCommitted(item_id))

    async def _on_input_transcript_delta(self, event: dict[str, Any]) -> None:
        self._emit(InputTranscriptDelta(str(event.get("item_id", "")), str(event.get("delta", ""))))

    async def _on_input_transcript(self, event: dict[str, Any]) -> None:
        text = str(event.get("transcript", ""))
        item_id = str(event.get("item_id", ""))
        if text:
            entry = next((e for e in self._history if e.key == item_id and e.role == "user"), None)
            if entry is not None:
                entry.text = text
            else:
                self._history.append(_Entry("user", text, item_id))
        self._emit(InputTranscript(item_id, text))

    async def _on_response_created(self, event: dict[str, Any]) -> None:
        data = event.get("response")
        data = data if isinstance(data, dict) else {}
        metadata = data.get("metadata")
        metadata = metadata if isinstance(metadata, dict) else None
        tag = metadata.get(CLIENT_EVENT_KEY) if metadata else None
        pending = self._created
        # Ours only by our own tag: a server-VAD response (metadata null) is not the reply to
        # our request. Beta servers may not echo metadata, so there an untagged one is taken.
        accepted: tuple[str | None, ...] = (self._create_event_id,)
        if self.endpoint.dialect is Dialect.BETA:
            accepted = (self._create_event_id, None)
        ours = pending is not None and not pending.done() and tag in accepted
        response = RealtimeResponse(
            str(data.get("id", "")),
            metadata,
            out_of_band=ours and self._create_out_of_band,
        )
        if response.id in self._running:
            _LOGGER.debug("Ignoring a repeated response.created")
            return
        if not response.out_of_band:
            # One response writes to the default conversation at a time: one still open
            # here was never finished by the server.
            for old in [r for r in self._running.values() if not r.out_of_band]:
                self._end(old, "failed")
        self._running[response.id] = response
        self._last = response
        if self._turn_reply == "next" and not response.out_of_band:
            self._turn_reply = response.id
        self._idle.clear()
        if ours and pending is not None:
            pending.set_result(response)
        self._emit(ResponseStarted(response))

    def _response_for(self, event: dict[str, Any]) -> RealtimeResponse | None:
        response = self._running.get(str(event.get("response_id")))
        if response is None:
            _LOGGER.debug("Dropping %s of an inactive response", event["type"])
        return response

    async def _on_audio_delta(self, event: dict[str, Any]) -> None:
        response = self._response_for(event)
        if response is None or response.cancelled:
            return
        try:
            pcm = base64.b64decode(str(event.get("delta", "")), validate=True)
        except binascii.Error:
            _LOGGER.debug("Dropping an audio delta with invalid base64")
            return
        self._audio_produced = True
        response.push(AudioDelta(pcm, str(event.get("item_id", ""))))

    async def _on_text_delta(self, event: dict[str, Any]) -> None:
        if (response := self._response_for(event)) is not None:
            response.push(TextDelta(str(event.get("delta", "")), str(event.get("item_id", ""))))

    async def _on_transcript_delta(self, event: dict[str, Any]) -> None:
        if (response := self._response_for(event)) is not None:
            delta = str(event.get("delta", ""))
            response.push(TranscriptDelta(delta, str(event.get("item_id", ""))))

    async def _on_output_item_done(self, event: dict[str, Any]) -> None:
        response = self._response_for(event)
        item = event.get("item")
        if response is None or not isinstance(item, dict) or item.get("type") != "function_call":
            return
        if item.get("status") != "completed":
            _LOGGER.debug("Skipping function call %s (%s)", item.get("name"), item.get("status"))
            return
        response.push(
            FunctionCall(
                call_id=str(item.get("call_id", "")),
                name=str(item.get("name", "")),
                arguments=str(item.get("arguments", "")),
                item_id=str(item.get("id", "")),
            )
        )

    async def _on_response_done(self, event: dict[str, Any]) -> None:
        data = event.get("response")
        data = data if isinstance(data, dict) else {}
        response = self._running.get(str(data.get("id")))
        if response is None:
            _LOGGER.debug("Ignoring response.done of an unknown response")
            return
        usage = data.get("usage")
        self.usage.add(usage)
        status = str(data.get("status", "completed"))
        details = data.get("status_details")
        response.finish(
            status,
            self._redacted(details) if isinstance(details, dict) else None,
            usage if isinstance(usage, dict) else None,
        )
        self._forget(response)
        _LOGGER.debug(
            "Response %s %s: %d ms audio, %d text chars",
            response.id,
            status,
            sum(response.audio_bytes.values()) // BYTES_PER_MS,
            len(response.reply),
        )
        cut = response.id in self._cut
        self._cut.discard(response.id)
        if status == "completed" and not response.out_of_band and not cut and response.reply:
            self._history.append(_Entry("assistant", response.reply, response.id))
        self._emit(ResponseDone(response))
        if response.error is not None:
            _LOGGER.debug("Response %s failed: %s", response.id, response.error)
        if (error := response.error) is not None and _fatal_failure(response):
            # The same codes end the session whether an error event or a response carries them.
            self._finish(error)
            if self._ws is not None:
                await self._ws.close()
            return
        calls = response.function_calls if status == "completed" else []
        if calls and self.tool_executor is not None:
            self._spawn(self._run_tools(calls), "realtime-tools")

    def _redacted(self, details: dict[str, Any]) -> dict[str, Any]:
        error = details.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            error = {**error, "message": redact(error["message"], self.endpoint.api_key)}
            return {**details, "error": error}
        return details

    def _forget(self, response: RealtimeResponse) -> None:
        self._running.pop(response.id, None)
        self._server_cancelled.discard(response.id)
        if not self._running:
            self._idle.set()
        if response.id == self._turn_reply:
            self._turn_reply = None
            self._turn_quiet.set()  # the reply of the user's turn is done

    def _end(self, response: RealtimeResponse, status: str) -> None:
        response.finish(status)
        self._forget(response)
        self._cut.discard(response.id)
        self._emit(ResponseDone(response))

    def _end_running(self, status: str) -> None:
        for response in list(self._running.values()):
            self._end(response, status)
        self._idle.set()

    # -- sending -----------------------------------------------------------------------------

    def _event_id(self) -> str:
        return f"evt_client_{next(self._ids)}"

    async def _send_on(self, ws: ClientConnection, event: dict[str, Any]) -> None:
        if _LOGGER.isEnabledFor(logging.DEBUG) and event["type"] != "input_audio_buffer.append":
            _LOGGER.debug("Sending %s", event["type"])
        try:
            await ws.send(json.dumps(event))
        except ConnectionClosed as err:
            raise closed_error(err) from None

    async def _send(self, event: dict[str, Any]) -> None:
        """The one send path: wait for a configured session (or raise if stopped)."""
        await self._wait_ready()
        assert self._ws is not None
        await self._send_on(self._ws, event)

    async def _wait_ready(self) -> None:
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

    def _message_item(self, role: str, text: str) -> dict[str, Any]:
        if role == "user":
            part = "input_text"
        else:
            part = "text" if self.endpoint.dialect is Dialect.BETA else "output_text"
        return {
            "type": "conversation.item.create",
            "item": {
                "type": "message",
                "role": role,
                "content": [{"type": part, "text": text}],
            },
        }

    # -- public operations -------------------------------------------------------------------

    async def update_session(self, config: SessionConfig) -> None:
        """Send only what changed and wait for session.updated; voice waits for a new session.

        Updates are serialised: each waits for its own session.updated before the next is sent.
        """
        async with self._update_lock:
            await self._update_session(config)

    async def _update_session(self, config: SessionConfig) -> None:
        self._config = config
        target = config
        if self._audio_produced and config.voice != self._applied.voice:
            _LOGGER.info("Voice change applies from the next session (audio already produced)")
            target = _with_voice(config, self._applied.voice)
        changes = session_diff(self._applied, target, self.endpoint.dialect)
        if changes is None:
            return
        await self._wait_ready()
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._update_waiter = waiter
        self._update_event_id = self._event_id()
        try:
            await self._send(
                {"type": "session.update", "event_id": self._update_event_id, "session": changes}
            )
            await waiter
        finally:
            self._update_waiter = None
            _consume(waiter)
        self._applied = target

    async def append_audio(self, pcm: bytes) -> None:
        """Stream PCM16 mono 24 kHz user audio; dropped while no session is open."""
        if not self._ready.is_set() or self._ws is None:
            _LOGGER.debug("Dropping %d ms of audio: not connected", len(pcm) // BYTES_PER_MS)
            return
        event = {"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm).decode()}
        with contextlib.suppress(RealtimeError):
            await self._send_on(self._ws, event)

    async def commit_audio(self) -> None:
        """End the user's turn in manual mode (no turn detection)."""
        self._tool_rounds = 0
        await self._send({"type": "input_audio_buffer.commit"})

    async def clear_audio(self) -> None:
        """Drop uncommitted user audio."""
        await self._send({"type": "input_audio_buffer.clear"})

    async def add_user_text(self, text: str) -> None:
        """Add a user text message (a new user turn; replayed after reconnects)."""
        self._tool_rounds = 0
        self._history.append(_Entry("user", text))
        await self._send(self._message_item("user", text))

    async def add_assistant_text(self, text: str) -> None:
        """Add an assistant text message, e.g. to restore a conversation's history."""
        self._history.append(_Entry("assistant", text))
        await self._send(self._message_item("assistant", text))

    async def add_user_image(self, image_url: str, *, detail: str = "auto") -> None:
        """Add a picture (a `data:image/jpeg;base64,...` URL) as a user `input_image` item.

        Pictures are not replayed after a reconnect: they answered one question.
        """
        await self._send(
            {
                "type": "conversation.item.create",
                "item": {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_image", "image_url": image_url, "detail": detail}],
                },
            }
        )

    async def add_function_call(self, call_id: str, name: str, arguments: str) -> None:
        """Add a function call the model made earlier, e.g. to restore a conversation's history."""
        await self._send(
            {
                "type": "conversation.item.create",
                "item": {
                    "type": "function_call",
                    "call_id": call_id,
                    "name": name,
                    "arguments": arguments,
                },
            }
        )

    async def add_function_output(self, call_id: str, output: str) -> None:
        """Return one function call's result to the model (no response is created)."""
        await self._send(
            {
                "type": "conversation.item.create",
                "item": {"type": "function_call_output", "call_id": call_id, "output": output},
            }
        )

    async def submit_tool_outputs(self, outputs: Mapping[str, str]) -> RealtimeResponse | None:
        """Send every output, then a single response.create; None once the loop limit is hit."""
        for call_id, output in outputs.items():
            await self.add_function_output(call_id, output)
        if self._tool_rounds >= self.options.max_tool_rounds:
            _LOGGER.warning("Tool loop limit (%d) reached", self.options.max_tool_rounds)
            return None
        self._tool_rounds += 1
        return await self.create_response()

    async def _run_tools(self, calls: Sequence[FunctionCall]) -> None:
        executor = self.tool_executor
        assert executor is not None
        outputs: dict[str, str] = {}
        for call in calls:
            try:
                outputs[call.call_id] = await executor(call.name, call.arguments, call.call_id)
            except asyncio.CancelledError:
                raise
            except Exception as err:  # noqa: BLE001 - a tool's failure goes back to the model
                _LOGGER.debug("Tool %s failed: %s", call.name, err)
                outputs[call.call_id] = json.dumps({"error": str(err) or type(err).__name__})
        with contextlib.suppress(RealtimeError):
            await self.submit_tool_outputs(outputs)

    async def create_response(
        self,
        *,
        instructions: str | None = None,
        modality: Modality | None = None,
        out_of_band: bool = False,
        metadata: Mapping[str, str] | None = None,
        tools: Sequence[FunctionTool] | None = None,
    ) -> RealtimeResponse:
        """Ask for a response once the previous one is done; return it when created.

        Overrides apply to this response only; `out_of_band` keeps it out of the conversation.
        """
        params: dict[str, Any] = {}
        if instructions is not None:
            params["instructions"] = instructions
        if modality is not None:
            if self.endpoint.dialect is Dialect.BETA:
                params["modalities"] = ["text"] if modality is Modality.TEXT else ["text", "audio"]
            else:
                params["output_modalities"] = [str(modality)]
        if out_of_band:
            params["conversation"] = "none"
        tag = dict(metadata or {})
        if tools is not None:
            params["tools"] = [tool.render() for tool in tools]
        async with self._create_lock:
            attempt = 0
            while True:
                await self._idle.wait()
                await self._wait_ready()
                try:
                    return await self._request_response(params, tag, out_of_band)
                except _Retry as retry:
                    attempt += 1
                    if attempt > self.options.create_retries:
                        raise retry.error from None
                    if retry.busy and not self._idle.is_set():
                        _LOGGER.debug("A response is already active; waiting for it")
                        continue  # resent once that response is done
                    delay = min(
                        self.options.backoff_base * 2 ** (attempt - 1), self.options.backoff_max
                    )
                    _LOGGER.debug(
                        "response.create refused (%s); retry in %.2f s", retry.error, delay
                    )
                    await self._sleep(delay * random.uniform(0.75, 1.0))

    async def _request_response(
        self, params: dict[str, Any], tag: dict[str, str], out_of_band: bool
    ) -> RealtimeResponse:
        """Send one response.create; its response once created, or why it was refused."""
        created: asyncio.Future[RealtimeResponse] = asyncio.get_running_loop().create_future()
        self._created = created
        self._create_event_id = self._event_id()
        self._create_out_of_band = out_of_band
        event: dict[str, Any] = {
            "type": "response.create",
            "event_id": self._create_event_id,
            "response": {**params, "metadata": {**tag, CLIENT_EVENT_KEY: self._create_event_id}},
        }
        try:
            await self._send(event)
            async with asyncio.timeout(self.options.response_timeout):
                return await created
        except TimeoutError:
            raise RealtimeRequestError(
                f"no response.created within {self.options.response_timeout:g} s"
            ) from None
        finally:
            self._created = None
            _consume(created)

    async def cancel(self, played_ms: int, *, response: RealtimeResponse | None = None) -> None:
        """Barge-in: stop every response in progress and cut the reply the user was hearing.

        `response` is the reply playing (default: the latest one) and `played_ms` how much of
        it was heard. Each response still running gets `response.cancel`, unless server VAD
        already cancels it (only in the default conversation); the playing reply's audio item
        gets `conversation.item.truncate` at min(played, received) ms (skipped at 0, and for
        out-of-band replies, which are not in the conversation). A reply cut this way is not
        replayed after a reconnect.
        """
        playing = response or self._active or self._last
        if playing is None:
            return
        for running in list(self._running.values()):
            running.cancelled = True
            self._cut.add(running.id)
            if running.id in self._server_cancelled:
                continue
            self._server_cancelled.add(running.id)  # one response.cancel per response
            with contextlib.suppress(RealtimeError):
                await self._send({"type": "response.cancel", "response_id": running.id})
        playing.cancelled = True
        if playing.done:
            self._drop_reply(playing.id)
        else:
            self._cut.add(playing.id)
        end_ms = min(max(played_ms, 0), playing.audio_ms)
        if playing.out_of_band or playing.audio_item_id is None or end_ms <= 0:
            return
        with contextlib.suppress(RealtimeError):
            await self._send(
                {
                    "type": "conversation.item.truncate",
                    "item_id": playing.audio_item_id,
                    "content_index": 0,
                    "audio_end_ms": end_ms,
                }
            )

    def _drop_reply(self, response_id: str) -> None:
        """A finished reply was cut: it leaves the replay history (once, however often cut)."""
        for entry in [e for e in self._history if e.key == response_id]:
            self._history.remove(entry)


class _Retry(Exception):  # noqa: N818 - internal signal, never escapes
    """response.create was refused for now (busy or rate limited); `error` if it stays so."""

    def __init__(self, error: RealtimeError, *, busy: bool) -> None:
        super().__init__(str(error))
        self.error = error
        self.busy = busy


def _create_failure(error: ServerError, message: str) -> Exception:
    """What a refused response.create means: retry (busy, rate limited) or a typed error."""
    text = f"{error.code}: {message}"
    if error.code == BUSY_CODE:
        return _Retry(RealtimeRequestError(text, code=error.code), busy=True)
    if error.code == RATE_LIMIT_CODE:
        mapped = error_for_code(error.code, message)
        assert mapped is not None
        return _Retry(mapped, busy=False)
    return RealtimeRequestError(text, code=error.code)


def _fatal_failure(response: RealtimeResponse) -> bool:
    """Whether a failed response's cause ends the session, as the same error event would."""
    error = (response.status_details or {}).get("error")
    return isinstance(error, dict) and error.get("code") in FATAL_ERROR_CODES


def _expires_in(event: dict[str, Any]) -> float | None:
    """Seconds until session.created's `expires_at` (epoch seconds), if the service gave it."""
    session = event.get("session")
    expires_at = session.get("expires_at") if isinstance(session, dict) else None
    if not isinstance(expires_at, (int, float)) or isinstance(expires_at, bool) or expires_at <= 0:
        return None
    return max(float(expires_at) - time.time(), 0.0)


def _int(event: dict[str, Any], key: str) -> int:
    value = event.get(key)
    return value if isinstance(value, int) else 0


def _is_truncate_error(error: ServerError, message: str) -> bool:
    text = message.lower()
    return "truncat" in text or "shorter than" in text


def _with_voice(config: SessionConfig, voice: str) -> SessionConfig:
    return replace(config, voice=voice)


_AUDIO_EVENTS: Final = frozenset({"response.output_audio.delta"})
