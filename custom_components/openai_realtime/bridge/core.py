"""The speech bridge: one device's microphone and speaker wired to its own Realtime session.

Turn flow (xiaozhi reference §7): uplink Opus after `listen start` -> 24 kHz PCM ->
`input_audio_buffer.append` every ~100 ms; server VAD ends turns in auto mode, `listen stop`
commits in manual mode. Each response -> `tts start`, `stt`/`sentence_start` lines, paced Opus,
tools, `tts stop` once played out. `abort`, a wake word or `speech_started` while speaking cut
the reply (barge-in). A reply's tools run inside the device conversation's chat log, after the
user turns the reply heard were recorded there (the count the services API's confirmations rely
on, as for typed Assist requests). When the Realtime service is unreachable or refuses, the same
audio runs through the user's Assist pipeline (`fallback.py`) until Realtime is back.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterable, Coroutine, Sequence
import contextlib
from dataclasses import replace
from enum import StrEnum
import itertools
import json
import re
from typing import TYPE_CHECKING, Any, Final

from homeassistant.components import conversation
from homeassistant.components.conversation.trace import (
    ConversationTraceEvent,
    ConversationTraceEventType,
    async_conversation_trace,
)
from homeassistant.config_entries import ConfigEntry, ConfigSubentry
from homeassistant.core import CALLBACK_TYPE, Context, HomeAssistant, callback
from homeassistant.helpers import device_registry as dr, llm
from homeassistant.util.hass_dict import HassKey

from ..audio import OpusNotFoundError, load_opuslib
from ..const import (
    CONF_DEVICE_USER,
    CONF_FIRMWARE,
    CONF_GREETING,
    CONF_LISTENING_TIMEOUT,
    CONF_LLM_HASS_API,
    CONF_PROMPT,
    CONF_WAKE_WORDS,
    DOMAIN,
    LOGGER,
    RECOMMENDED_LISTENING_TIMEOUT,
)
from ..endpoint import DATA_HUB, DeviceConnection
from ..profile import CONF_LANGUAGE, effective_options
from ..realtime import (
    AudioDelta,
    Closed,
    InputCommitted,
    InputTranscript,
    Modality,
    RealtimeClient,
    RealtimeError,
    RealtimeResponse,
    RealtimeSessionClosed,
    ResponseDone,
    ResponseStarted,
    ServerError,
    SessionConfig,
    SpeechStarted,
    SpeechStopped,
    TranscriptDelta,
)
from ..realtime.response import BYTES_PER_MS
from ..services_api import agent_allowlist
from ..settings import session_config, transcription_language
from ..vision import agent_image_side
from ..xiaozhi import (
    AbortRequested,
    AudioReceived,
    DeviceEvent,
    HelloReceived,
    ListenMode,
    ListenStarted,
    ListenStopped,
    WakeWordDetected,
)
from .downlink import Downlink
from .latency import UplinkClock, speech_end
from .turns import DeviceTurns
from .uplink import Uplink
from .wake import parse_wake_words, strip_wake_word

if TYPE_CHECKING:
    from .pipeline import AssistFallback

RETRY_DELAYS: Final = (5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
"""Seconds between attempts to reach Realtime again while the Assist pipeline stands in."""

STALL_TIMEOUT: Final = 30.0
"""Seconds a reply may go without an event before the bridge gives up on it."""

UPLINK_QUEUE: Final = 50
"""Uplink batches (~100 ms each) waiting to be sent before the oldest are dropped; they also
hold what the user says while the Realtime session opens (the service takes 0.3-0.8 s)."""

GREETING_QUIET: Final = 0.5
"""Seconds after the session opens in which speech from the user cancels the greeting."""

ECHO_GUARD: Final = 0.3
"""Seconds after a reply during which a server-AEC device's microphone is still ignored."""

OLD_FIRMWARE_STOP_GUARD: Final = 0.2
"""Extra wait before `tts stop` for firmware that clears its playback queue at `tts stop`."""

FIRST_WAITING_FIRMWARE: Final = (2, 2, 2)
"""The first firmware whose `tts stop` waits for the queued audio (WaitForPlaybackQueueEmpty)."""

MAX_DETECT_CHARS: Final = 300
"""Longest `listen detect` text sent to the model; the rest is cut."""

DETECT_LIMIT: Final = 5
DETECT_WINDOW: Final = 60.0
"""At most DETECT_LIMIT `listen detect` requests per DETECT_WINDOW seconds and device."""

DATA_DETECTS: HassKey[dict[str, deque[float]]] = HassKey(f"{DOMAIN}_detect_times")
"""When each device's recent `listen detect` requests were answered."""

ANNOUNCE_KEY: Final = "announce"
SILENT_KEY: Final = "silent"
"""Metadata of out-of-band text responses the bridge reads itself and never plays."""


class BridgeBusyError(RealtimeError):
    """The device is already waiting for the answer to a question."""


class BridgePath(StrEnum):
    """Which engine answers the device."""

    REALTIME = "realtime"
    ASSIST_PIPELINE = "assist_pipeline"


class BridgePhase(StrEnum):
    """What the conversation is doing (mirrors the assist satellite's states)."""

    IDLE = "idle"
    LISTENING = "listening"
    PROCESSING = "processing"
    RESPONDING = "responding"


class _Commit:
    """Uplink marker: end the user's turn (manual mode)."""


type _UplinkItem = bytes | _Commit


class SpeechBridge:
    """Bridge one connected device to a Realtime session (or the Assist pipeline fallback).

    Every task it starts is owned and cancelled by `async_stop()`, which the device
    connection calls when the device leaves or the entry unloads.
    """

    retry_delays: Sequence[float] = RETRY_DELAYS
    stall_timeout: float = STALL_TIMEOUT

    def __init__(
        self,
        hass: HomeAssistant,
        entry: ConfigEntry[Any],
        subentry: ConfigSubentry,
        connection: DeviceConnection,
    ) -> None:
        """Prepare; `async_start()` begins once the device said hello."""
        self.hass = hass
        self.entry = entry
        self.subentry = subentry
        self.connection = connection
        self.device = connection.state
        self.path = BridgePath.REALTIME
        self.phase = BridgePhase.IDLE
        self.client: RealtimeClient | None = None
        self.downlink: Downlink | None = None
        self.fallback: AssistFallback | None = None
        self.tasks: set[asyncio.Task[Any]] = set()
        self.dropped_batches = 0
        self._uplink: Uplink | None = None
        # Each item with when it arrived from the device (it may wait for a session).
        self._uplink_queue: asyncio.Queue[tuple[_UplinkItem, float]] = asyncio.Queue()
        # Responses to play, each with the number of user turns heard when it started.
        self._responses: asyncio.Queue[tuple[RealtimeResponse, int]] = asyncio.Queue()
        self._speaker = asyncio.Lock()
        self._tool_names: tuple[str, ...] = ()
        self._config: SessionConfig | None = None
        self._mode = ListenMode.AUTO
        self._hello = asyncio.Event()
        self._ready = asyncio.Event()
        # Why actions cannot run once `_ready` is set without a downlink: (error type, reason).
        self._unusable: tuple[type[RealtimeError], str] | None = None
        self._turn_started: float | None = None
        self._uplink_clock = UplinkClock()
        self.turns = DeviceTurns(hass, self.device)
        self._current: RealtimeResponse | None = None
        # The replies of the current speaking stretch and where each starts in the downlink.
        self._segments: list[tuple[int, RealtimeResponse]] = []
        self._greeted = False
        self._announce_ids = itertools.count(1)
        self._announced: dict[str, asyncio.Future[None]] = {}
        self._asking: asyncio.Future[str] | None = None
        self._extra_instructions = False
        self._logged: set[str] = set()
        self._remove_listeners: list[CALLBACK_TYPE] = []
        self._loop = asyncio.get_running_loop()
        self._client_changed = asyncio.Event()
        self._last_voice = self._loop.time()
        self._user_spoke = False  # on this connection: the greeting is no longer wanted
        self._user_speaking = False
        self._server_aec = False
        self._echo_until = 0.0
        # Per device, not per connection: reconnecting does not reset the typed-turn budget.
        self._detects = hass.data.setdefault(DATA_DETECTS, {}).setdefault(
            connection.state.mac, deque()
        )

    # --- lifecycle ------------------------------------------------------------------------

    @callback
    def async_start(self) -> None:
        """Follow the device's events and start the bridge's main task."""
        self._remove_listeners.append(self.connection.async_add_listener(self._on_device_event))
        self._remove_listeners.append(self.device.async_add_listener(self._on_device_changed))
        if (
            self.connection.session.hello_done
        ):  # pragma: no cover - started before the hello is read
            self._hello.set()
        self.spawn(self._run(), "run")

    async def async_stop(self) -> None:
        """Cancel every task, close the Realtime session and forget the device.

        The device connection calls this while its handler may be cancelled itself, so the
        state is released first and the awaited cleanup is shielded.
        """
        for remove in self._remove_listeners:
            remove()
        self._remove_listeners.clear()
        self._set_phase(BridgePhase.IDLE)
        if not self._ready.is_set():
            self._unusable = (RealtimeSessionClosed, "the device disconnected")
            self._ready.set()
        tasks = list(self.tasks)
        for task in tasks:
            task.cancel()
        for future in self._announced.values():
            if not future.done():
                future.set_exception(RealtimeSessionClosed("the device disconnected"))
        self._end_asking("the device disconnected")
        client, self.client = self.client, None
        fallback, self.fallback = self.fallback, None
        await asyncio.shield(self._close(tasks, client, fallback))

    async def _close(
        self,
        tasks: list[asyncio.Task[Any]],
        client: RealtimeClient | None,
        fallback: AssistFallback | None,
    ) -> None:
        await asyncio.gather(*tasks, return_exceptions=True)
        if fallback is not None:
            await fallback.async_stop()
        if client is not None:
            await client.close()
        if self.downlink is not None:
            await self.downlink.close()

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Run a task owned by this bridge (and by the entry, so unload cancels it too)."""
        task: asyncio.Task[Any] = self.entry.async_create_background_task(
            self.hass, coro, f"{DOMAIN} bridge {self.device.mac} {name}"
        )
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def _run(self) -> None:
        """Load the codec, wait for the hello, then keep a Realtime session (or the fallback)."""
        try:
            await self.hass.async_add_executor_job(load_opuslib)
        except OpusNotFoundError as err:
            await self._hello.wait()  # the alert can only reach a device that said hello
            self.fail("opus", f"Opus is not available: {err}", alert=True)
            self._unusable = (RealtimeError, f"Opus is not available: {err}")
            self._ready.set()
            return
        await self._hello.wait()
        session = self.connection.session
        hello = session.device_hello
        assert hello is not None
        server = session.server_hello
        self.downlink = Downlink(
            self.connection,
            sample_rate=server.sample_rate,
            frame_ms=server.frame_duration,
            on_first_frame=self._on_first_frame,
            stop_guard=0.0 if self._waits_for_playback() else OLD_FIRMWARE_STOP_GUARD,
        )
        self._uplink = Uplink(24000, hello.audio_params.frame_duration)
        self._server_aec = hello.features.aec
        self._ready.set()
        self.spawn(self._send_uplink(), "uplink")
        self.spawn(self._play_responses(), "downlink")
        self.spawn(self._watch_listening(), "listening timeout")
        await self._keep_realtime()

    # --- Realtime session and fallback -------------------------------------------------------

    async def _keep_realtime(self) -> None:
        """Hold a Realtime session; while it cannot be had, use the fallback and retry."""
        attempt = 0
        while True:
            try:
                client = await self._open_client()
            except RealtimeError as err:
                self._use_fallback(err)
                delay = self.retry_delays[min(attempt, len(self.retry_delays) - 1)]
                attempt += 1
                await asyncio.sleep(delay)
                continue
            attempt = 0
            self.client = client
            self._client_changed.set()
            if self.path is not BridgePath.REALTIME:
                LOGGER.info("Device %s is back on the Realtime service", self.device.mac)
                self._logged.discard("realtime")
            await self._use_realtime()
            if not self._greeted and (greeting := self.options().get(CONF_GREETING)):
                self._greeted = True
                self.spawn(self._greet(client, greeting), "greeting")
            error = await self._follow(client)
            self.turns.flush()
            self.client = None
            self._end_asking("the Realtime session ended")
            await client.close()
            if error is None:  # pragma: no cover - only our own close() ends without an error
                return
            self._use_fallback(error)

    async def _greet(self, client: RealtimeClient, greeting: str) -> None:
        """Who speaks first: the greeting, once per device connection, unless the user did.

        The device streams the user's first words while the session opens; they reach the
        service when it is ready. A user who speaks (or typed) by `GREETING_QUIET` after that
        is not greeted: `tts start` would turn an auto-mode device's microphone off.
        Sent from its own task so that `_follow` is already subscribed to the session's
        events when `response.created` arrives.
        """
        await asyncio.sleep(GREETING_QUIET)
        if self._user_spoke or client is not self.client or self._busy():
            return
        with contextlib.suppress(RealtimeError):
            await client.create_response(
                instructions=f"Greet the user by saying exactly: {greeting}"
            )

    async def _open_client(self) -> RealtimeClient:
        """Connect a Realtime audio session with the configured prompt and tools."""
        instructions, api = await self._llm_data()
        tools = await self.turns.async_offer_tools(api, self.device.tools, self.connection.mcp)
        self._tool_names = tuple(tool.name for tool in self.device.tools)
        options = self.options()
        config = session_config(
            options,
            instructions=instructions,
            tools=tools,
            modality=Modality.AUDIO,
            language=transcription_language(
                options.get(CONF_LANGUAGE) or self.hass.config.language
            ),
        )
        self._config = config
        self.turns.transcribing = config.transcription is not None
        client = RealtimeClient(self.entry.runtime_data.endpoint, self._for_mode(config))
        await client.connect()
        return client

    async def _llm_data(self) -> tuple[str, llm.APIInstance | None]:
        """The system prompt and the HA LLM API for this device, rendered by a chat log."""
        options = self.options()
        context = llm.LLMContext(
            platform=DOMAIN,
            context=self.user_context(options),
            language=options.get(CONF_LANGUAGE) or self.hass.config.language,
            assistant=conversation.DOMAIN,
            device_id=self._device_id(),
        )
        scope = agent_allowlist(options, image_side=agent_image_side(self.entry))
        with self.turns.chat_log() as chat_log, scope:
            try:
                await chat_log.async_provide_llm_data(
                    context, options.get(CONF_LLM_HASS_API), options.get(CONF_PROMPT)
                )
            except conversation.ConverseError:
                self.device.errors["llm_api"] += 1
                await chat_log.async_provide_llm_data(context, None, options.get(CONF_PROMPT))
            system = chat_log.content[0]
            prompt = system.content if isinstance(system, conversation.SystemContent) else ""
            return prompt, chat_log.llm_api

    def user_context(self, options: dict[str, Any] | None = None) -> Context:
        """A context of the device's configured user (none: a system context), for each turn.

        The Realtime path's tools and the Assist pipeline fallback both act as this user.
        """
        options = self.options() if options is None else options
        return Context(user_id=options.get(CONF_DEVICE_USER) or None)

    def options(self) -> dict[str, Any]:
        """The entry's settings with this device's profile applied (read at each session)."""
        subentry = self.entry.subentries.get(self.subentry.subentry_id, self.subentry)
        return effective_options(self.hass, self.entry, subentry)

    def _device_id(self) -> str | None:
        device = dr.async_get(self.hass).async_get_device_by_identifier(
            (DOMAIN, self.device.mac), self.entry.entry_id
        )
        return device.id if device is not None else None

    async def _use_realtime(self) -> None:
        """Back on Realtime: detach the fallback before stopping it, so both never serve."""
        self.path = BridgePath.REALTIME
        fallback, self.fallback = self.fallback, None
        self.device.async_notify()
        if fallback is not None:
            await fallback.async_stop()

    def _use_fallback(self, error: RealtimeError) -> None:
        """Switch to the Assist pipeline; say why once per outage."""
        from .pipeline import AssistFallback

        self.device.errors["realtime"] += 1
        if self.path is BridgePath.REALTIME:
            LOGGER.warning(
                "Realtime service unavailable for device %s (%s); using the Assist pipeline",
                self.device.mac,
                error,
            )
        self.path = BridgePath.ASSIST_PIPELINE
        if self.fallback is None:
            self.fallback = AssistFallback(self)
        self._client_changed.set()  # the uplink stops waiting for a session
        self.device.async_notify()

    async def _follow(self, client: RealtimeClient) -> RealtimeError | None:
        """Act on session events until the client stops; return why it stopped."""
        async for event in client.events():
            match event:
                case SpeechStarted():
                    self._user_spoke = self._user_speaking = True
                    self._note_activity()
                    if self.downlink is not None and self.downlink.speaking:
                        await self.async_interrupt()
                    if self.connection.session.listening:
                        # Else the report is late: the device's microphone is already closed.
                        self._set_phase(BridgePhase.LISTENING)
                case SpeechStopped(audio_end_ms=audio_end_ms):
                    self._user_speaking = False
                    self._note_activity()
                    self._turn_started = speech_end(
                        self._uplink_clock,
                        (client, client.session_started),
                        audio_end_ms,
                        self._config.turn_detection if self._config is not None else None,
                        self._loop.time(),
                    )
                    self._set_phase(BridgePhase.PROCESSING)
                case InputCommitted(item_id=item_id):
                    self.turns.heard_turn(item_id)
                case InputTranscript(item_id=item_id, text=text):
                    self.turns.add_transcript(item_id, text)
                    if text:
                        self.connection.session.send_stt(text)
                        await self.connection.flush()
                        if self._asking is not None and not self._asking.done():
                            self._asking.set_result(text)
                case ResponseStarted(response=response):
                    if SILENT_KEY not in (response.metadata or {}):
                        self._responses.put_nowait((response, self.turns.heard))
                case ResponseDone(response=response):
                    if self._extra_instructions and ANNOUNCE_KEY not in (response.metadata or {}):
                        # The conversation's next answer is done: back to the own instructions.
                        self._extra_instructions = False
                        self.spawn(self._apply_session(), "instructions")
                    self.entry.runtime_data.usage.record(response.usage)
                case ServerError(code=code, message=message):
                    self.device.errors["server_error"] += 1
                    LOGGER.debug("Realtime error for %s: %s %s", self.device.mac, code, message)
                case Closed(error=error):
                    return error
        return None  # pragma: no cover - the stream always ends with Closed

    # --- device events ----------------------------------------------------------------------

    @callback
    def _on_device_event(self, event: DeviceEvent) -> None:
        """Handle one device event synchronously (the hot path stays in the event loop)."""
        match event:
            case AudioReceived(packet=packet, listening=True) if self._uplink is not None:
                self._on_audio(packet.payload)
            case HelloReceived():
                self._hello.set()
            case ListenStarted(mode=mode):
                self._on_listen_start(mode)
            case ListenStopped():
                self._on_listen_stop()
            case WakeWordDetected(text=text):
                self._on_detect(text)
            case AbortRequested():
                self.spawn(self.async_interrupt(), "abort")

    def _on_audio(self, payload: bytes) -> None:
        if self._server_aec and (
            self.connection.session.speaking or self._loop.time() < self._echo_until
        ):
            return  # a server-AEC build hears its own speaker: no echo cancelling here
        if (fallback := self.fallback) is not None:  # the Assist pipeline path
            fallback.audio(payload)
            return
        assert self._uplink is not None
        if (batch := self._uplink.feed(payload)) is not None:
            self._queue_uplink(batch)

    def _queue_uplink(self, item: _UplinkItem) -> None:
        queue = self._uplink_queue
        if isinstance(item, bytes) and queue.qsize() >= UPLINK_QUEUE:
            queue.get_nowait()
            self.dropped_batches += 1
        queue.put_nowait((item, self._loop.time()))

    def _on_listen_start(self, mode: ListenMode) -> None:
        self._note_activity()
        previous, self._mode = self._mode, mode
        if self._uplink is not None:
            self._uplink.reset()
        self._set_phase(BridgePhase.LISTENING)
        if (fallback := self.fallback) is not None:  # the Assist pipeline path
            fallback.start_turn()
            return
        if (mode is ListenMode.MANUAL) != (previous is ListenMode.MANUAL):
            self.spawn(self._apply_session(), "mode")

    def _on_listen_stop(self) -> None:
        if (fallback := self.fallback) is not None:  # the Assist pipeline path
            fallback.end_turn()
            return
        if self._mode is not ListenMode.MANUAL or self._uplink is None:
            return
        if (rest := self._uplink.flush()) is not None:
            self._queue_uplink(rest)
        self._queue_uplink(_Commit())

    def _on_detect(self, text: str) -> None:
        """A wake word starts listening (its `listen start` follows); other text is a request.

        Each request is a billed response: its text is capped and its rate per device bounded.
        """
        if self.downlink is not None and self.downlink.speaking:
            self.spawn(self.async_interrupt(), "wake word")
            return
        self._note_activity()
        request = strip_wake_word(text, parse_wake_words(self.options().get(CONF_WAKE_WORDS)))
        if not request or self.path is not BridgePath.REALTIME:
            return
        if len(request) > MAX_DETECT_CHARS:
            self.fail(
                "detect_length",
                f"listen detect text of {len(request)} characters cut to {MAX_DETECT_CHARS}",
            )
            request = request[:MAX_DETECT_CHARS]
        now = self._loop.time()
        while self._detects and self._detects[0] <= now - DETECT_WINDOW:
            self._detects.popleft()
        if len(self._detects) >= DETECT_LIMIT:
            self.fail("detect_rate", "too many listen detect requests; ignoring some")
            return
        self._detects.append(now)
        self._user_spoke = True
        self.spawn(self._typed_turn(request), "typed turn")

    @callback
    def _on_device_changed(self) -> None:
        """Offer newly discovered device tools to the running session."""
        names = tuple(tool.name for tool in self.device.tools)
        if names != self._tool_names and self.client is not None:
            self._tool_names = names
            self.spawn(self._refresh_tools(), "tools")

    # --- uplink -----------------------------------------------------------------------------

    async def _session(self) -> RealtimeClient | None:
        """The Realtime session; while one is opening, wait for it (None: the fallback serves).

        The device streams the user's first words while the session opens: they wait in the
        bounded uplink queue and go out in order once the session is ready.
        """
        while self.client is None and self.path is BridgePath.REALTIME:
            self._client_changed.clear()
            await self._client_changed.wait()
        return self.client

    async def _send_uplink(self) -> None:
        """Send queued audio batches, and commit the turn when manual mode says so."""
        while True:
            item, arrived = await self._uplink_queue.get()
            client = self.client or await self._session()
            if client is None:
                continue
            if not isinstance(item, _Commit):
                await client.append_audio(item)  # never raises: dropped while disconnected
                self._uplink_clock.appended(
                    (client, client.session_started), len(item) // BYTES_PER_MS, arrived
                )
                continue
            self._turn_started = self._loop.time()
            self._set_phase(BridgePhase.PROCESSING)
            try:
                await client.commit_audio()
                if self._asking is None:
                    await client.create_response()
            except RealtimeError as err:
                self.fail("realtime", f"Realtime request failed: {err}")
                self._set_phase(BridgePhase.IDLE)  # no answer is coming

    async def _apply_session(self) -> None:
        """Send the session's own configuration for the listening mode, if a session is open.

        After a mode change (manual turns need client commits: no server turn detection) and
        after extra instructions for one answer have been used.
        """
        with contextlib.suppress(RealtimeError):
            client, config = self._require_session()
            await client.update_session(self._for_mode(config))

    def _for_mode(self, config: SessionConfig) -> SessionConfig:
        """The session for the device's listening mode (manual: no server turn detection)."""
        if self._mode is ListenMode.MANUAL:
            return replace(config, turn_detection=None)
        return config

    async def _refresh_tools(self) -> None:
        """Offer the device's current tools (and the prompt rendered again) to the session."""
        instructions, api = await self._llm_data()
        tools = await self.turns.async_offer_tools(api, self.device.tools, self.connection.mcp)
        with contextlib.suppress(RealtimeError):
            client, config = self._require_session()
            config = self._config = replace(config, instructions=instructions, tools=tools)
            await client.update_session(self._for_mode(config))

    async def _typed_turn(self, text: str) -> None:
        """`listen detect` text is a typed user turn (kept while the session opens)."""
        if (client := await self._session()) is None:
            return
        self._turn_started = self._loop.time()
        try:
            await client.add_user_text(text)
            self.turns.heard_turn(None, text)
            await client.create_response()
        except RealtimeError as err:
            self.fail("realtime", f"Realtime request failed: {err}")

    # --- downlink ---------------------------------------------------------------------------

    async def _play_responses(self) -> None:
        """Play responses one after another; `tts stop` once the last one has played out."""
        downlink = self.downlink
        assert downlink is not None  # created before this task starts
        while True:
            response, heard = await self._responses.get()
            async with self._speaker:
                try:
                    await self._play(response, heard)
                except Exception:  # noqa: BLE001 - never leave the device stuck in Speaking
                    self.fail("bridge", "Speech bridge failed", exc_info=True, alert=True)
                    await downlink.stop()  # its half sentence must not open the next reply
                    self._segments.clear()
                    await self.end_speech()
                finally:
                    self._current = None
                    self._resolve_announce(response)

    async def _play(self, response: RealtimeResponse, heard: int) -> None:
        """Play one reply, then run its tools after the user turns it heard were recorded."""
        downlink = self.downlink
        assert downlink is not None
        self._current = response
        self._segments.append((downlink.pushed_ms, response))
        await downlink.start()
        self._set_phase(BridgePhase.RESPONDING)
        with async_conversation_trace() as trace:
            trace.add_event(
                ConversationTraceEvent(
                    ConversationTraceEventType.ASYNC_PROCESS,
                    {
                        "text": self.turns.heard_text(heard),
                        "device_id": self._device_id(),
                        "source": DOMAIN,
                    },
                )
            )
            try:
                await self._stream(response, downlink)
            except TimeoutError:
                self.fail("stalled", f"Realtime reply stalled for {self.stall_timeout:g} s")
                await self.async_interrupt()
                return
            if response.cancelled:
                return
            await downlink.finish()
            results = await self.turns.async_reply_done(response, heard, on_tools=self._on_tools)
            trace.set_result(transcript=response.transcript, status=response.status)
        if results and (client := self.client) is not None:
            try:
                follow_up = await self.turns.async_answer_tools(
                    client, results, self.entry.entry_id
                )
            except RealtimeError as err:
                self.fail("realtime", f"Realtime request failed: {err}")
                follow_up = None
            if follow_up is not None:
                return  # its ResponseStarted queues it; the device stays Speaking
        await downlink.drained()
        if self._responses.empty() and not response.cancelled:
            await self.end_speech()

    async def _stream(self, response: RealtimeResponse, downlink: Downlink) -> None:
        """Feed a reply's audio and text to the device; TimeoutError when the service stalls."""
        events = aiter(response)
        while True:
            try:
                async with asyncio.timeout(self.stall_timeout):
                    event = await anext(events)
            except StopAsyncIteration:
                break
            if response.cancelled:
                continue
            if isinstance(event, AudioDelta):
                downlink.audio(event.pcm)
            elif isinstance(event, TranscriptDelta):
                await downlink.text(event.text)
        async with asyncio.timeout(self.stall_timeout):
            await response.wait()

    async def end_speech(self) -> None:
        """`tts stop`: the device listens again (or idles in manual mode).

        A realtime-mode board is listening right away (it sends no `listen start`).
        """
        if self.downlink is not None:
            await self.downlink.end()
        self._segments.clear()
        if self._server_aec:
            self._echo_until = self._loop.time() + ECHO_GUARD
        self._note_activity()
        session = self.connection.session
        listening = session.listening and session.listen_mode is ListenMode.REALTIME
        self._set_phase(BridgePhase.LISTENING if listening else BridgePhase.IDLE)

    # --- listening timeout ------------------------------------------------------------------

    def _note_activity(self) -> None:
        """Something happened in the conversation: the listening timeout starts again."""
        self._last_voice = self._loop.time()

    def _busy(self) -> bool:
        """Whether the conversation is mid-turn (the user speaks or a reply is on its way)."""
        return (
            self._user_speaking
            or self._current is not None
            or self._asking is not None
            or self.phase in (BridgePhase.PROCESSING, BridgePhase.RESPONDING)
            or (self.downlink is not None and self.downlink.speaking)
        )

    def listening_timeout(self) -> float:
        """Seconds without speech after which the device is sent back to idle."""
        return float(self.options().get(CONF_LISTENING_TIMEOUT) or RECOMMENDED_LISTENING_TIMEOUT)

    async def _watch_listening(self) -> None:
        """Close the channel after `listening_timeout` s without speech, so the device idles.

        The firmware streams its microphone until the server closes (it has no timeout of
        its own); closing also ends the paid Realtime session.
        """
        while True:
            timeout = self.listening_timeout()
            remaining = self._last_voice + timeout - self._loop.time()
            if remaining > 0:
                await asyncio.sleep(remaining)
                continue
            if self._busy():
                self._note_activity()
                continue
            LOGGER.debug(
                "Device %s: no speech for %g s; sending it back to idle", self.device.mac, timeout
            )
            self.connection.close_soon("no speech")
            return

    def _waits_for_playback(self) -> bool:
        """Whether the device's firmware plays its queue out at `tts stop` (v2.2.2 and later)."""
        subentry = self.entry.subentries.get(self.subentry.subentry_id, self.subentry)
        found = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", str(subentry.data.get(CONF_FIRMWARE) or ""))
        if found is None:
            return False  # unknown: wait, as for old firmware
        return tuple(int(part or 0) for part in found.groups()) >= FIRST_WAITING_FIRMWARE

    async def async_interrupt(self) -> None:
        """Barge-in: cut the reply now, `tts stop`, cancel and truncate to what was heard."""
        downlink = self.downlink
        if downlink is None or (not downlink.speaking and self._current is None):
            return
        playing, played = self._heard(await downlink.stop())
        await downlink.end()
        self._set_phase(BridgePhase.LISTENING)
        if (client := self.client) is not None:
            await client.cancel(played, response=playing)

    def _heard(self, heard_ms: int) -> tuple[RealtimeResponse | None, int]:
        """The reply the user was hearing when cut, and how much of it they heard.

        After a tool follow-up the device may still play the previous reply while the next
        one is generated: the cut belongs to the reply whose audio was playing.
        """
        segments, self._segments = self._segments, []
        for start, response in reversed(segments):
            if heard_ms > start:
                return response, heard_ms - start
        return (segments[0][1] if segments else self._current), 0

    def _on_first_frame(self) -> None:
        """Record the turn's latency: end of user speech at the device -> first reply frame sent.

        The start is where the service's turn detection placed the end of speech (see
        `latency.speech_end`), the end of a typed turn, or the device's end of a manual turn.
        """
        if self._turn_started is None:
            return
        latency = (self._loop.time() - self._turn_started) * 1000
        self._turn_started = None
        self.device.latencies.append(latency)
        self.device.last_latency_ms = latency
        self.device.async_notify()

    # --- announcements ----------------------------------------------------------------------

    async def async_play(self, pcm: AsyncIterable[bytes], text: str | None = None) -> None:
        """Play 24 kHz PCM (an announcement or fallback TTS) and wait until it was heard."""
        await self._until_ready()
        downlink = self.downlink
        assert downlink is not None
        await self.async_interrupt()
        async with self._speaker:
            try:
                await downlink.start()
                self._set_phase(BridgePhase.RESPONDING)
                if text:
                    await downlink.sentence(text)
                async for chunk in pcm:
                    downlink.audio(chunk)
                await downlink.finish()
                await downlink.drained()
            finally:
                await self.end_speech()

    async def async_say(self, message: str) -> None:
        """Speak a message in the Realtime voice now (out of band) and wait until it was heard."""
        await self.async_speak(message=message, interrupt=True)

    async def _until_ready(self) -> None:
        """Wait for the device's hello and the codec; fail if the bridge can never play."""
        await self._ready.wait()
        if self._unusable is not None:
            error, reason = self._unusable
            raise error(reason)

    def _require_session(self) -> tuple[RealtimeClient, SessionConfig]:
        """The open Realtime session's client and configuration (set together)."""
        client, config = self.client, self._config
        if client is None or config is None or self.path is not BridgePath.REALTIME:
            raise RealtimeError("the Realtime session is not available")
        return client, config

    async def async_speak(
        self,
        *,
        message: str | None = None,
        prompt: str | None = None,
        instructions: str | None = None,
        interrupt: bool = False,
        remember: bool = False,
    ) -> None:
        """Speak a message verbatim, or one the model words from a prompt; wait until heard.

        It queues behind a reply in progress unless `interrupt`; it stays out of the
        conversation (an out-of-band response) unless `remember`.
        """
        await self._until_ready()
        client, _ = self._require_session()
        parts = [
            f"Say exactly this to the user, and nothing else: {message}"
            if message
            else str(prompt or "")
        ]
        if instructions:
            parts.append(instructions)
        key = str(next(self._announce_ids))
        future: asyncio.Future[None] = self._loop.create_future()
        self._announced[key] = future
        try:
            if interrupt:
                await self.async_interrupt()
            await client.create_response(
                instructions="\n\n".join(parts),
                out_of_band=not remember,
                metadata={ANNOUNCE_KEY: key},
            )
            await future
        finally:
            self._announced.pop(key, None)

    async def async_ask(
        self,
        question: str,
        *,
        options: Sequence[str] | None = None,
        instructions: str | None = None,
        answer_timeout: float = 15.0,
    ) -> dict[str, Any]:
        """Ask a question, listen for the answer and return its transcript (and matched option).

        While asking, server turn detection creates no response by itself: the answer is heard
        and transcribed, not answered. The question stays in the conversation.
        """
        await self._until_ready()
        client, config = self._require_session()
        if self._asking is not None:
            raise BridgeBusyError
        answer: asyncio.Future[str] = self._loop.create_future()
        self._asking = answer
        detection = config.turn_detection
        quiet = replace(detection, create_response=False) if detection is not None else None
        try:
            await client.update_session(self._for_mode(replace(config, turn_detection=quiet)))
            await self.async_speak(message=question, instructions=instructions, remember=True)
            try:
                async with asyncio.timeout(answer_timeout):
                    transcript = await answer
            except TimeoutError:
                return {"answered": False}
        finally:
            self._asking = None
            with contextlib.suppress(RealtimeError):  # a session that ended needs no restoring
                await client.update_session(self._for_mode(self._config or config))
        result: dict[str, Any] = {"answered": True, "transcript": transcript}
        if options:
            result.update(await self._match(client, question, transcript, list(options)))
        return result

    def _end_asking(self, reason: str) -> None:
        """A question whose session is gone gets no answer: fail it instead of waiting it out."""
        if self._asking is not None and not self._asking.done():
            self._asking.set_exception(RealtimeSessionClosed(reason))

    async def _match(
        self, client: RealtimeClient, question: str, transcript: str, options: list[str]
    ) -> dict[str, Any]:
        """Let the model pick the option an answer chooses, with its confidence."""
        response = await client.create_response(
            instructions=(
                f"The user was asked {json.dumps(question)} and answered "
                f"{json.dumps(transcript)}. Which of these options does the answer choose: "
                f"{json.dumps(options)}? Reply with JSON only, no other text: "
                '{"option": <one of the options exactly, or null>, "confidence": <0 to 1>}.'
            ),
            modality=Modality.TEXT,
            out_of_band=True,
            metadata={SILENT_KEY: "match"},
        )
        await response.wait()
        try:
            verdict = json.loads(response.text.strip().removeprefix("```json").strip("`\n "))
            option = verdict.get("option")
            confidence = float(verdict.get("confidence"))
        except ValueError, TypeError, AttributeError:
            LOGGER.debug("The model's option match was not JSON: %r", response.text[:200])
            lowered = transcript.lower()
            found = [o for o in options if o.lower() in lowered]
            return {"option": found[0] if len(found) == 1 else None, "confidence": None}
        if option not in options:
            option = None
        return {"option": option, "confidence": max(0.0, min(confidence, 1.0))}

    async def async_converse(self, message: str | None, instructions: str) -> None:
        """Start a conversation: extra instructions for the next answer only, then listen.

        The opening line (the message, or one the model words) stays in the conversation; the
        device listens by itself once it has been played.
        """
        await self._until_ready()
        client, config = self._require_session()
        await client.update_session(
            self._for_mode(replace(config, instructions=f"{config.instructions}\n\n{instructions}"))
        )
        self._extra_instructions = True
        if message:
            await self.async_speak(message=message, remember=True)
        else:
            await self.async_speak(
                prompt="Open the conversation in one short sentence, as your instructions say.",
                remember=True,
            )

    def _resolve_announce(self, response: RealtimeResponse) -> None:
        key = (response.metadata or {}).get(ANNOUNCE_KEY)
        if (future := self._announced.get(str(key))) is not None and not future.done():
            future.set_result(None)

    # --- errors ---------------------------------------------------------------------------

    def _on_tools(self) -> None:
        """A reply's tools are about to run: the device shows it is working."""
        self._set_phase(BridgePhase.PROCESSING)

    def fail(self, kind: str, message: str, *, exc_info: bool = False, alert: bool = False) -> None:
        """Count a failure, log it once per kind, and optionally show an alert on the device."""
        self.device.errors[kind] += 1
        if kind not in self._logged:
            self._logged.add(kind)
            LOGGER.warning("Device %s: %s", self.device.mac, message, exc_info=exc_info)
        self.device.async_notify()
        if alert and self.connection.session.hello_done and not self.connection.closed:
            self.connection.session.send_alert("Error", message, "sad")
            self.spawn(self.connection.flush(), "alert")

    def _set_phase(self, phase: BridgePhase) -> None:
        if phase is not self.phase:
            self.phase = phase
            self.device.async_notify()


@callback
def async_link_device(hass: HomeAssistant, connection: DeviceConnection) -> SpeechBridge | None:
    """Plug the speech bridge of the device's config entry into a new connection."""
    if (found := hass.data[DATA_HUB].find_paired(connection.mac)) is None:
        return None
    bridge = SpeechBridge(hass, found[0], found[1], connection)
    bridge.async_start()
    return bridge


__all__ = [
    "BridgeBusyError",
    "BridgePath",
    "BridgePhase",
    "SpeechBridge",
    "async_link_device",
]
