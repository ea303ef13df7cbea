"""The Realtime engine: one device's turns answered by its own Realtime session.

Turn flow (xiaozhi reference §7): uplink Opus after `listen start` -> 24 kHz PCM ->
`input_audio_buffer.append` every ~100 ms; server VAD ends turns in auto mode, `listen stop`
commits in manual mode; `listen detect` text is a typed turn. Each response plays through the
`Speaker`; its tools run inside the device conversation's chat log (`DeviceTurns`) after the
user turns the reply heard were recorded there. While the service cannot be reached the
engine tells the router to use the Assist pipeline and tries again on a schedule.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
import contextlib
from dataclasses import replace
from functools import partial
from typing import ClassVar, Final

from homeassistant.components.conversation.trace import (
    ConversationTraceEvent,
    ConversationTraceEventType,
    async_conversation_trace,
)
from homeassistant.core import callback

from ..budget import BudgetExhaustedError
from ..const import CONF_GREETING, CONF_MODEL, DOMAIN, LOGGER
from ..endpoint import DeviceConnection, DeviceState
from ..realtime import (
    Closed,
    InputCommitted,
    InputTranscript,
    RealtimeClient,
    RealtimeError,
    RealtimeResponse,
    ReconnectPolicy,
    ResponseDone,
    ResponseStarted,
    ServerError,
    SessionConfig,
    SpeechStarted,
    SpeechStopped,
)
from ..realtime.response import BYTES_PER_MS
from ..repairs import async_quota_issue, async_report_refusal, async_setting_issue
from ..usage import Pricing, pricing_for
from ..xiaozhi import ListenMode
from .context import BridgeContext, BridgePath, BridgePhase, SessionHooks
from .latency import speech_end, speech_start
from .session_setup import async_device_session_config
from .speaker import Speaker
from .turns import DeviceTurns
from .uplink import Commit, UplinkItem, UplinkQueue
from .wake import MAX_DETECT_CHARS, DetectBudget

RETRY_DELAYS: Final = (5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
"""Seconds between attempts to reach Realtime again while the Assist pipeline stands in."""

MIN_COMMIT_MS: Final = 100
"""The shortest push-to-talk turn sent: the service refuses to commit less audio."""

GREETING_QUIET: Final = 0.5
"""Seconds after the session opens in which speech from the user cancels the greeting."""

ANNOUNCE_KEY: Final = "announce"
SILENT_KEY: Final = "silent"
"""Metadata of out-of-band text responses the bridge reads itself and never plays."""


class RealtimeEngine:
    """Keep one device's Realtime session and answer its turns through it."""

    retry_delays: ClassVar[Sequence[float]] = RETRY_DELAYS

    def __init__(
        self, ctx: BridgeContext, speaker: Speaker, turns: DeviceTurns, hooks: SessionHooks
    ) -> None:
        """Prepare; `async_run()` opens the session once the bridge is ready."""
        self._ctx = ctx
        self._speaker = speaker
        self.turns = turns
        self._hooks = hooks
        self.client: RealtimeClient | None = None
        self.uplink: UplinkQueue | None = None
        self._unsent: UplinkItem | None = None  # taken from the uplink, waiting for a session
        self._config: SessionConfig | None = None
        self._pricing: Pricing | None = None
        self._tool_names: tuple[str, ...] = ()
        self._mode = ListenMode.AUTO  # the listening mode the session is configured for
        self._client_changed = asyncio.Event()
        self._greeted = False
        self._user_spoke = False  # on this connection: the greeting is no longer wanted
        self._proven = False  # the current session answered a turn
        self._turn_ms = 0  # user audio sent since the last commit (manual mode)
        self.user_speaking = False
        # Per device, not per connection: reconnecting does not reset the typed-turn budget.
        self._detects = DetectBudget(ctx.home.detects)

    @property
    def path(self) -> BridgePath:
        """The Realtime path."""
        return BridgePath.REALTIME

    @property
    def connection(self) -> DeviceConnection:
        """The device's connection."""
        return self._ctx.connection

    @property
    def device(self) -> DeviceState:
        """The device."""
        return self._ctx.device

    # --- session keeping ------------------------------------------------------------------

    async def async_run(self, device_frame_ms: int) -> None:
        """Hold a Realtime session; while it cannot be had, the router uses the Assist pipeline.

        A budget that runs out with the `assist_pipeline` action closes the open session, and
        no new one opens until the month ends (`Budget.check`).
        """
        budget = self._ctx.entry.runtime_data.budget
        remove = budget.async_add_listener(self._on_budget)
        try:
            await self._hold_sessions(device_frame_ms)
        finally:
            remove()

    @callback
    def _on_budget(self) -> None:
        if self._ctx.entry.runtime_data.budget.blocks_realtime and self.client is not None:
            self._ctx.spawn(self.client.close(), "close for the budget")

    async def _hold_sessions(self, device_frame_ms: int) -> None:
        self.uplink = UplinkQueue(24000, device_frame_ms)
        self._ctx.spawn(self._send_uplink(self.uplink), "uplink")
        # The delays in turn, then the last one forever. Only a session that answered a turn
        # starts them over: one failing its first response is not reopened at once.
        retry = ReconnectPolicy(schedule=self.retry_delays)
        while True:
            try:
                client = await self._open_client()
            except RealtimeError as err:
                self._use_pipeline(err)
                await self._retry_later(retry, err)
                continue
            self._proven = False
            self._ctx.entry.runtime_data.service.succeeded()
            self.client = client
            self._client_changed.set()
            if not self._serving():
                LOGGER.info("Device %s is back on the Realtime service", self.device.mac)
            await self._ctx.use_realtime()
            if not self._greeted and (greeting := self._ctx.options().get(CONF_GREETING)):
                self._greeted = True
                self._ctx.spawn(self._greet(client, greeting), "greeting")
            error = await self._follow(client)
            self.turns.flush()
            self.client = None
            self._hooks.on_session_end("the Realtime session ended")
            await client.close()
            if error is None:  # only our own close() ends without an error
                try:
                    self._ctx.entry.runtime_data.budget.check()
                except BudgetExhaustedError as err:  # closed by `_on_budget`
                    error = err
                else:  # pragma: no cover - stopped: the router cancels this task
                    return
            self._use_pipeline(error)
            if self._proven:
                retry.reset()
            await self._retry_later(retry, error)

    async def _retry_later(self, retry: ReconnectPolicy, error: RealtimeError) -> None:
        """Wait before the next attempt; until new options reload the entry if only they help.

        The user is told as on the agent path; the Assist pipeline serves meanwhile."""
        if not async_report_refusal(self._ctx.hass, self._ctx.entry, error):
            await asyncio.Future()  # until the entry reloads (the router cancels this task)
        await retry.wait()

    def _use_pipeline(self, error: RealtimeError) -> None:
        # The router logs the outage; the entry's monitor follows it (and raises its issue).
        # A used-up budget is no outage: the service is not probed for it.
        if not isinstance(error, BudgetExhaustedError):
            self._ctx.entry.runtime_data.service.failed(error, logged=True)
        self._ctx.use_pipeline(error)
        self._client_changed.set()  # the uplink stops waiting for a session

    async def async_stop(self) -> None:
        """Close the session (the router cancels the tasks)."""
        client, self.client = self.client, None
        if client is not None:
            await client.close()

    async def _greet(self, client: RealtimeClient, greeting: str) -> None:
        """Who speaks first: the greeting, once per device connection, unless the user did.

        A user who speaks (or typed) by `GREETING_QUIET` after the session opened is not
        greeted (`tts start` would turn an auto-mode microphone off). Its own task, so that
        `_follow` is subscribed when `response.created` arrives. The words are given: no
        conversation as input, no tools.
        """
        await asyncio.sleep(GREETING_QUIET)
        if self._user_spoke or client is not self.client or self._ctx.busy():
            return
        with contextlib.suppress(RealtimeError):
            await client.create_response(
                instructions=f"Greet the user by saying exactly: {greeting}",
                input_items=[],
                tools=(),
                tool_choice="none",
            )

    async def _open_client(self) -> RealtimeClient:
        """Connect a Realtime audio session with the configured prompt and tools."""
        config = await async_device_session_config(
            self._ctx, self.turns, self.device, self.connection
        )
        self._tool_names = tuple(tool.name for tool in self.device.tools)
        self._config = config
        self.turns.transcribing = config.transcription is not None
        self._mode = self.connection.session.listen_mode
        budget = self._ctx.entry.runtime_data.budget
        budget.check()
        # The device's agent: its model, and the prices its responses are counted at.
        options = self._ctx.options()
        self._pricing = pricing_for(options)
        client = RealtimeClient(budget.endpoint(options.get(CONF_MODEL)), self.for_mode(config))
        await client.connect()
        return client

    async def _follow(self, client: RealtimeClient) -> RealtimeError | None:
        """Act on session events until the client stops; return why it stopped."""
        async for event in client.events():
            match event:
                case SpeechStarted(audio_start_ms=audio_start_ms, item_id=item_id):
                    self._user_spoke = self.user_speaking = True
                    assert self.uplink is not None  # made before the first session
                    self.turns.speech_started(
                        item_id,
                        speech_start(
                            self.uplink.clock,
                            (client, client.session_started),
                            audio_start_ms,
                            self._config.turn_detection if self._config is not None else None,
                            asyncio.get_running_loop().time(),
                        ),
                    )
                    self._ctx.note_activity()
                    if self._speaker.speaking:
                        await self.interrupt()
                    if self.connection.session.listening:
                        # Else the report is late: the device's microphone is already closed.
                        self._ctx.set_phase(BridgePhase.LISTENING)
                case SpeechStopped(audio_end_ms=audio_end_ms):
                    self.user_speaking = False
                    self._ctx.note_activity()
                    assert self.uplink is not None  # made before the first session
                    self._speaker.turn_started = speech_end(
                        self.uplink.clock,
                        (client, client.session_started),
                        audio_end_ms,
                        self._config.turn_detection if self._config is not None else None,
                        asyncio.get_running_loop().time(),
                    )
                    self._ctx.set_phase(BridgePhase.PROCESSING)
                case InputCommitted(item_id=item_id):
                    self.turns.heard_turn(item_id)
                    self._speaker.user_turn_ended(item_id)
                case InputTranscript(item_id=item_id, text=text, usage=usage):
                    self._ctx.entry.runtime_data.usage.record_transcription(usage, self._pricing)
                    self.turns.add_transcript(item_id, text)
                    if text:
                        await self._speaker.show_user_text(item_id, text)
                case ResponseStarted(response=response):
                    if SILENT_KEY not in (response.metadata or {}):
                        self._speaker.queue_reply(
                            response,
                            partial(self._play, response, self.turns.heard),
                            self._hooks.on_reply_played,
                        )
                case ResponseDone(response=response):
                    if response.status == "completed" and not self._proven:
                        self._proven = True  # the session works: clear what its failures raised
                        async_quota_issue(self._ctx.hass, self._ctx.entry, active=False)
                        async_setting_issue(self._ctx.hass, self._ctx.entry, None)
                    self._hooks.on_reply_done(response)
                    self._ctx.entry.runtime_data.usage.record(response.usage, self._pricing)
                case ServerError(code=code, message=message):
                    self.device.errors["server_error"] += 1
                    self.device.async_notify()
                    LOGGER.debug("Realtime error for %s: %s %s", self.device.mac, code, message)
                case Closed(error=error):
                    return error
        return None  # pragma: no cover - the stream always ends with Closed

    # --- turns ------------------------------------------------------------------------------

    def start_turn(self, mode: ListenMode) -> None:
        """The device listens: its audio starts afresh, in the session's listening mode."""
        previous, self._mode = self._mode, mode
        self._turn_ms = 0
        if self.uplink is not None:
            self.uplink.reset()
        if (mode is ListenMode.MANUAL) != (previous is ListenMode.MANUAL):
            self._ctx.spawn(self.apply_session(), "mode")

    def audio(self, payload: bytes) -> None:
        """Decode and queue the user's speech (sent as soon as a session is open)."""
        if self.uplink is not None:
            self.uplink.feed(payload)

    def end_turn(self) -> None:
        """Manual mode: the user's turn ends with `listen stop` (the service detects it else)."""
        if self._mode is ListenMode.MANUAL and self.uplink is not None:
            self.uplink.end_turn()

    def text(self, request: str) -> None:
        """A typed request: each is a billed response, so its length and rate are bounded."""
        if len(request) > MAX_DETECT_CHARS:
            self._ctx.fail(
                "detect_length",
                f"listen detect text of {len(request)} characters cut to {MAX_DETECT_CHARS}",
            )
            request = request[:MAX_DETECT_CHARS]
        if not self._detects.take(asyncio.get_running_loop().time()):
            self._ctx.fail("detect_rate", "too many listen detect requests; ignoring some")
            return
        self._user_spoke = True
        self._ctx.spawn(self._typed_turn(request), "typed turn")

    def tools_changed(self) -> None:
        """Offer newly discovered device tools to the running session."""
        names = tuple(tool.name for tool in self.device.tools)
        if names != self._tool_names and self.client is not None:
            self._tool_names = names
            self._ctx.spawn(self._refresh_tools(), "tools")

    async def _session(self) -> RealtimeClient | None:
        """The Realtime session; while one is opening, wait for it (None: the pipeline serves).

        The device streams the user's first words while the session opens: they wait in the
        bounded uplink queue and go out in order once the session is ready.
        """
        while self.client is None and self._serving():
            self._client_changed.clear()
            await self._client_changed.wait()
        return self.client

    async def async_wait_session(self) -> None:
        """Wait while the session opens (a board that was just woken); see `_session`."""
        await self._session()

    def _serving(self) -> bool:
        return self._ctx.path is BridgePath.REALTIME

    async def _send_uplink(self, uplink: UplinkQueue) -> None:
        """Send queued audio batches, and commit the turn when manual mode says so."""
        loop = asyncio.get_running_loop()
        while True:
            item, arrived = await uplink.get()
            if (client := self.client) is None:
                self._unsent = item
                client = await self._session()
                if self._unsent is None:
                    continue  # the Assist pipeline took it over (`take_unsent`)
                self._unsent = None
            if client is None:
                continue
            if not isinstance(item, Commit):
                await client.append_audio(item)  # never raises: dropped while disconnected
                self._turn_ms += len(item) // BYTES_PER_MS
                uplink.clock.appended(
                    (client, client.session_started), len(item) // BYTES_PER_MS, arrived
                )
                continue
            heard_ms, self._turn_ms = self._turn_ms, 0
            if heard_ms < MIN_COMMIT_MS:
                # The service refuses it (`input_audio_buffer_commit_empty`); a reply would
                # answer nothing, billed. The board idles after `listen stop`: so do we.
                LOGGER.debug(
                    "Device %s: push-to-talk turn of %d ms not sent", self.device.mac, heard_ms
                )
                with contextlib.suppress(RealtimeError):
                    await client.clear_audio()
                self._ctx.set_phase(BridgePhase.IDLE)
                continue
            self._speaker.turn_started = loop.time()
            self._ctx.set_phase(BridgePhase.PROCESSING)
            try:
                await client.commit_audio()
                if not self._hooks.asking:
                    await client.create_response()
            except RealtimeError as err:
                self._ctx.fail("realtime", f"Realtime request failed: {err}")
                self._ctx.set_phase(BridgePhase.IDLE)  # no answer is coming

    def take_unsent(self) -> list[UplinkItem]:
        """The user's speech that no session took yet, oldest first (24 kHz PCM batches and
        the end of a manual turn): the engine that stands in hears it instead."""
        items = [self._unsent] if self._unsent is not None else []
        self._unsent = None
        if self.uplink is not None:
            items += self.uplink.take()
        return items

    async def _typed_turn(self, text: str) -> None:
        """`listen detect` text is a typed user turn (kept while the session opens)."""
        if (client := await self._session()) is None:
            return
        self._speaker.turn_started = asyncio.get_running_loop().time()
        try:
            await client.add_user_text(text)
            self.turns.heard_turn(None, text)
            await client.create_response()
        except RealtimeError as err:
            self._ctx.fail("realtime", f"Realtime request failed: {err}")

    # --- session configuration ----------------------------------------------------------------

    def require_session(self) -> tuple[RealtimeClient, SessionConfig]:
        """The open Realtime session's client and configuration (set together)."""
        client, config = self.client, self._config
        if client is None or config is None or not self._serving():
            raise RealtimeError("the Realtime session is not available")
        return client, config

    @property
    def config(self) -> SessionConfig | None:
        """The session's own configuration (prompt, tools, voice, turn detection)."""
        return self._config

    def for_mode(self, config: SessionConfig) -> SessionConfig:
        """The session for the device's listening mode (manual: no server turn detection)."""
        if self._mode is ListenMode.MANUAL:
            return replace(config, turn_detection=None)
        return config

    async def apply_session(self) -> None:
        """Send the session's own configuration for the listening mode, if a session is open.

        After a mode change (manual turns need client commits: no server turn detection) and
        after extra instructions for one answer have been used.
        """
        with contextlib.suppress(RealtimeError):
            client, config = self.require_session()
            await client.update_session(self.for_mode(config))

    async def _refresh_tools(self) -> None:
        """Offer the device's current tools (and the prompt rendered again) to the session."""
        fresh = await async_device_session_config(
            self._ctx, self.turns, self.device, self.connection
        )
        with contextlib.suppress(RealtimeError):
            client, config = self.require_session()
            config = self._config = replace(
                config, instructions=fresh.instructions, tools=fresh.tools
            )
            await client.update_session(self.for_mode(config))

    # --- replies ------------------------------------------------------------------------------

    async def _play(self, response: RealtimeResponse, heard: int) -> None:
        """Play one reply, then run its tools after the user turns it heard were recorded."""
        downlink = await self._speaker.start_reply(response)
        self.turns.reply_playing()
        with async_conversation_trace() as trace:
            trace.add_event(
                ConversationTraceEvent(
                    ConversationTraceEventType.ASYNC_PROCESS,
                    {
                        "text": self.turns.heard_text(heard),
                        "device_id": self._ctx.device_id(),
                        "source": DOMAIN,
                    },
                )
            )
            try:
                await self._speaker.stream(response)
            except TimeoutError:
                self._ctx.fail(
                    "stalled", f"Realtime reply stalled for {self._speaker.stall_timeout:g} s"
                )
                await self.interrupt()
                return
            if response.cancelled:
                return
            await downlink.finish()
            if ANNOUNCE_KEY in (response.metadata or {}):
                response.function_calls.clear()  # words to say, not a turn: nothing runs
            results = await self.turns.async_reply_done(response, heard, on_tools=self._on_tools)
            trace.set_result(transcript=response.transcript, status=response.status)
        if results and (client := self.client) is not None:
            try:
                follow_up = await self.turns.async_answer_tools(
                    client, results, self._ctx.entry.entry_id
                )
            except RealtimeError as err:
                self._ctx.fail("realtime", f"Realtime request failed: {err}")
                follow_up = None
            if follow_up is not None:
                return  # its ResponseStarted queues it; the device stays Speaking
        await downlink.drained()
        if not response.cancelled:
            self.turns.reply_played()  # heard whole: a question it asked may be answered now
        if not self._speaker.replies_waiting and not response.cancelled:
            await self._ctx.end_speech()

    def _on_tools(self) -> None:
        """A reply's tools are about to run: the device shows it is working."""
        self._ctx.set_phase(BridgePhase.PROCESSING)

    async def interrupt(self) -> None:
        """Barge-in: the speaker cuts the reply now; cancel it and truncate to what was heard."""
        if (cut := await self._speaker.cut()) is not None and (client := self.client) is not None:
            playing, played_ms = cut
            await client.cancel(played_ms, response=playing)


__all__ = [
    "ANNOUNCE_KEY",
    "GREETING_QUIET",
    "RETRY_DELAYS",
    "SILENT_KEY",
    "RealtimeEngine",
]
