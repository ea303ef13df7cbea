"""The speech bridge: one device's microphone and speaker wired to the engine that answers it.

`SpeechBridge` is a router. It follows the device connection's events and hands each turn
(listen start, audio, listen stop, typed text) to the active `Engine`: the `RealtimeEngine`
(the device's own Realtime session) or, while the service is unreachable or refuses, the
Assist pipeline (`PipelineEngine`) until Realtime is back. Playback is the `Speaker`'s
(replies in order, barge-in, pacing); the automation actions are the `Actions`'. The router
owns every task, the conversation's phase and the listening timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, Coroutine, Sequence
import re
from typing import Any, Final

from homeassistant.config_entries import ConfigSubentry
from homeassistant.core import CALLBACK_TYPE, Context, HomeAssistant, callback
from homeassistant.helpers import device_registry as dr

from ..audio import OpusNotFoundError, load_opuslib
from ..const import (
    CONF_DEVICE_USER,
    CONF_FIRMWARE,
    CONF_LISTENING_TIMEOUT,
    CONF_WAKE_WORDS,
    DOMAIN,
    LOGGER,
    RECOMMENDED_LISTENING_TIMEOUT,
)
from ..endpoint import DeviceConnection, DeviceState
from ..home import DeviceHome
from ..models import OpenAIRealtimeConfigEntry
from ..profile import effective_options
from ..realtime import RealtimeClient, RealtimeError, RealtimeSessionClosed
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
from .actions import Actions, BridgeBusyError
from .context import BridgePath, BridgePhase, Engine
from .downlink import Downlink
from .pipeline import PipelineEngine
from .realtime_engine import RealtimeEngine
from .speaker import Speaker
from .turns import DeviceTurns
from .wake import parse_wake_words, strip_wake_word

FIRST_WAITING_FIRMWARE: Final = (2, 2, 2)
"""The first firmware whose `tts stop` waits for the queued audio (WaitForPlaybackQueueEmpty)."""

type Unusable = tuple[type[RealtimeError], str] | None
"""Why actions cannot run on a bridge that is ready (error type, reason); None: they can."""


class SpeechBridge:
    """Bridge one connected device to the engine that answers it.

    Every task it starts is owned and cancelled by `async_stop()`, which the device
    connection calls when the device leaves or the entry unloads.
    """

    def __init__(
        self,
        hass: HomeAssistant,
        entry: OpenAIRealtimeConfigEntry,
        home: DeviceHome,
        connection: DeviceConnection,
    ) -> None:
        """Prepare; `async_start()` begins once the device said hello."""
        self.entry = entry
        self.home = home
        self.connection = connection
        self.phase = BridgePhase.IDLE
        self.tasks: set[asyncio.Task[Any]] = set()
        self.speaker = Speaker(self)
        self.actions = Actions(self)
        self.realtime = RealtimeEngine(self, self.speaker, DeviceTurns(hass, home), self.actions)
        self.engine: Engine = self.realtime
        self._hello = asyncio.Event()
        self._ready: asyncio.Future[Unusable] = hass.loop.create_future()
        self._remove_listeners: list[CALLBACK_TYPE] = []
        self._logged: set[str] = set()
        self._last_voice = hass.loop.time()

    # --- what the parts share -----------------------------------------------------------------

    @property
    def hass(self) -> HomeAssistant:
        """Home Assistant."""
        return self.connection.hass

    @property
    def subentry(self) -> ConfigSubentry:
        """The device's subentry as it is now (a reconfigure replaces the object)."""
        return self.entry.subentries.get(self.home.subentry.subentry_id, self.home.subentry)

    @property
    def device(self) -> DeviceState:
        """What Home Assistant knows about the device."""
        return self.connection.state

    @property
    def path(self) -> BridgePath:
        """Which engine answers the device now."""
        return self.engine.path

    @property
    def pipeline(self) -> PipelineEngine | None:
        """The Assist pipeline engine while it stands in for Realtime."""
        return self.engine if isinstance(self.engine, PipelineEngine) else None

    @property
    def client(self) -> RealtimeClient | None:
        """The open Realtime session, if any."""
        return self.realtime.client

    @client.setter
    def client(self, client: RealtimeClient | None) -> None:
        self.realtime.client = client

    @property
    def downlink(self) -> Downlink | None:
        """The device's audio output, once the server hello fixed its format."""
        return self.speaker.downlink

    @property
    def turns(self) -> DeviceTurns:
        """The device conversation's chat log record."""
        return self.realtime.turns

    @property
    def dropped_batches(self) -> int:
        """Uplink batches dropped because the queue was full."""
        uplink = self.realtime.uplink
        return uplink.dropped_batches if uplink is not None else 0

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
        """Cancel every task and close the Realtime session and the speaker.

        The device connection calls this while its handler may be cancelled itself, so the
        home forgets the bridge first, the state is released next and the awaited cleanup
        is shielded.
        """
        self.home.async_release(self)
        for remove in self._remove_listeners:
            remove()
        self._remove_listeners.clear()
        self.set_phase(BridgePhase.IDLE)
        if not self._ready.done():
            self._ready.set_result((RealtimeSessionClosed, "the device disconnected"))
        tasks = list(self.tasks)
        for task in tasks:
            task.cancel()
        self.turns.cancel()  # tool calls the chat log runs in tasks of its own
        self.actions.close("the device disconnected")
        client, self.client = self.client, None
        engine, self.engine = self.engine, self.realtime
        await asyncio.shield(self._close(tasks, client, engine))

    async def _close(
        self, tasks: list[asyncio.Task[Any]], client: RealtimeClient | None, engine: Engine
    ) -> None:
        await asyncio.gather(*tasks, return_exceptions=True)
        if engine is not self.realtime:
            await engine.async_stop()
        if client is not None:
            await client.close()
        await self.speaker.close()

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Run a task owned by this bridge (and by the entry, so unload cancels it too)."""
        task: asyncio.Task[Any] = self.entry.async_create_background_task(
            self.hass, coro, f"{DOMAIN} bridge {self.device.mac} {name}"
        )
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def _run(self) -> None:
        """Load the codec, wait for the hello, then keep a Realtime session (or the pipeline)."""
        try:
            await self.hass.async_add_executor_job(load_opuslib)
        except OpusNotFoundError as err:
            await self._hello.wait()  # the alert can only reach a device that said hello
            self.fail("opus", f"Opus is not available: {err}", alert=True)
            if not self._ready.done():  # pragma: no branch - a stopped bridge is cancelled
                self._ready.set_result((RealtimeError, f"Opus is not available: {err}"))
            return
        await self._hello.wait()
        session = self.connection.session
        hello = session.device_hello
        assert hello is not None
        server = session.server_hello
        self.speaker.open(
            sample_rate=server.sample_rate,
            frame_ms=server.frame_duration,
            waits_for_playback=self._waits_for_playback(),
            aec=hello.features.aec,
        )
        if not self._ready.done():  # pragma: no branch - a stopped bridge is cancelled
            self._ready.set_result(None)
        self.spawn(self._watch_listening(), "listening timeout")
        await self.realtime.async_run(hello.audio_params.frame_duration)

    async def until_ready(self) -> None:
        """Wait for the device's hello and the codec; fail if the bridge can never play."""
        if (unusable := await self._ready) is not None:
            error, reason = unusable
            raise error(reason)

    # --- engines ----------------------------------------------------------------------------

    async def use_realtime(self) -> None:
        """Back on Realtime: detach the pipeline engine before stopping it, so both never serve."""
        engine, self.engine = self.engine, self.realtime
        self.device.async_notify()
        if engine is not self.realtime:
            self._logged.discard("realtime")  # the next outage is logged again
            await engine.async_stop()

    def use_pipeline(self, error: RealtimeError) -> None:
        """Switch to the Assist pipeline; say why once per outage."""
        self.device.errors["realtime"] += 1
        if self.path is BridgePath.REALTIME:
            LOGGER.warning(
                "Realtime cannot serve device %s (%s); using the Assist pipeline",
                self.device.mac,
                error,
            )
            self.engine = pipeline = PipelineEngine(self)
            session = self.connection.session
            if session.listening and not session.speaking and not self.connection.closed:
                pipeline.take_over(session.listen_mode, self.realtime.take_unsent())
        self.device.async_notify()

    # --- device events ----------------------------------------------------------------------

    @callback
    def _on_device_event(self, event: DeviceEvent) -> None:
        """Handle one device event synchronously (the hot path stays in the event loop)."""
        match event:
            case AudioReceived(packet=packet, listening=True):
                if not self.speaker.hears_itself():
                    self.engine.audio(packet.payload)
            case HelloReceived():
                self._hello.set()
            case ListenStarted(mode=mode):
                self._on_listen_start(mode)
            case ListenStopped():
                self.engine.end_turn()
            case WakeWordDetected(text=text):
                self._on_detect(text)
            case AbortRequested():
                self.spawn(self.async_interrupt(), "abort")

    def _on_listen_start(self, mode: ListenMode) -> None:
        self.note_activity()
        self.set_phase(BridgePhase.LISTENING)
        self.engine.start_turn(mode)

    def _on_detect(self, text: str) -> None:
        """A wake word starts listening (its `listen start` follows); other text is a request."""
        if self.speaker.speaking:
            self.spawn(self.async_interrupt(), "wake word")
            return
        self.note_activity()
        if request := strip_wake_word(text, parse_wake_words(self.options().get(CONF_WAKE_WORDS))):
            self.engine.text(request)

    @callback
    def _on_device_changed(self) -> None:
        """Offer newly discovered device tools to the running session."""
        self.realtime.tools_changed()

    # --- settings ---------------------------------------------------------------------------

    def user_context(self, options: dict[str, Any] | None = None) -> Context:
        """A context of the device's configured user (none: a system context), for each turn.

        The Realtime path's tools and the Assist pipeline both act as this user.
        """
        options = self.options() if options is None else options
        return Context(user_id=options.get(CONF_DEVICE_USER) or None)

    def options(self) -> dict[str, Any]:
        """The entry's settings with this device's profile applied (read at each session)."""
        return effective_options(self.hass, self.entry, self.subentry)

    def device_id(self) -> str | None:
        """The device registry id of this device, if registered."""
        device = dr.async_get(self.hass).async_get_device_by_identifier(
            (DOMAIN, self.device.mac), self.entry.entry_id
        )
        return device.id if device is not None else None

    def _waits_for_playback(self) -> bool:
        """Whether the device's firmware plays its queue out at `tts stop` (v2.2.2 and later)."""
        firmware = self.subentry.data.get(CONF_FIRMWARE)
        found = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", str(firmware or ""))
        if found is None:
            return False  # unknown: wait, as for old firmware
        return tuple(int(part or 0) for part in found.groups()) >= FIRST_WAITING_FIRMWARE

    # --- listening timeout ------------------------------------------------------------------

    def note_activity(self) -> None:
        """Something happened in the conversation: the listening timeout starts again."""
        self._last_voice = self.hass.loop.time()

    def busy(self) -> bool:
        """Whether the conversation is mid-turn (the user speaks or a reply is on its way)."""
        return (
            self.realtime.user_speaking
            or self.speaker.busy
            or self.actions.asking
            or self.phase in (BridgePhase.PROCESSING, BridgePhase.RESPONDING)
        )

    def listening_timeout(self) -> float:
        """Seconds without speech after which the device is sent back to idle."""
        return float(self.options().get(CONF_LISTENING_TIMEOUT) or RECOMMENDED_LISTENING_TIMEOUT)

    async def _watch_listening(self) -> None:
        """Close the channel after `listening_timeout` s without speech, so the device idles.

        The firmware streams its microphone until the server closes (it has no timeout of
        its own); closing also ends the paid Realtime session.
        """
        loop = self.hass.loop
        while True:
            timeout = self.listening_timeout()
            remaining = self._last_voice + timeout - loop.time()
            if remaining > 0:
                await asyncio.sleep(remaining)
                continue
            if self.busy():
                self.note_activity()
                continue
            LOGGER.debug(
                "Device %s: no speech for %g s; sending it back to idle", self.device.mac, timeout
            )
            self.connection.close_soon("no speech")
            return

    # --- playback -----------------------------------------------------------------------------

    async def async_interrupt(self) -> None:
        """Barge-in: cut the reply now, `tts stop`, cancel and truncate to what was heard."""
        await self.realtime.interrupt()

    async def end_speech(self) -> None:
        """`tts stop`: the device listens again (or idles in manual mode)."""
        await self.speaker.end_speech()

    async def async_play(self, pcm: AsyncIterable[bytes], text: str | None = None) -> None:
        """Play 24 kHz PCM (an announcement, the Assist pipeline's TTS) until it was heard."""
        await self.until_ready()
        await self.speaker.async_play(pcm, text)

    # --- actions ----------------------------------------------------------------------------

    async def async_say(self, message: str) -> None:
        """Speak a message in the Realtime voice now (out of band) and wait until it was heard."""
        await self.actions.async_speak(message=message, interrupt=True)

    async def async_speak(
        self,
        *,
        message: str | None = None,
        prompt: str | None = None,
        instructions: str | None = None,
        interrupt: bool = False,
        remember: bool = False,
    ) -> None:
        """Speak a message verbatim, or one the model words from a prompt; wait until heard."""
        await self.actions.async_speak(
            message=message,
            prompt=prompt,
            instructions=instructions,
            interrupt=interrupt,
            remember=remember,
        )

    async def async_ask(
        self,
        question: str,
        *,
        options: Sequence[str] | None = None,
        instructions: str | None = None,
        answer_timeout: float = 15.0,
    ) -> dict[str, Any]:
        """Ask a question, listen for the answer and return its transcript (and matched option)."""
        return await self.actions.async_ask(
            question, options=options, instructions=instructions, answer_timeout=answer_timeout
        )

    async def async_converse(self, message: str | None, instructions: str | None) -> None:
        """Start a conversation: extra instructions for the next answer only, then listen."""
        await self.actions.async_converse(message, instructions)

    # --- errors ---------------------------------------------------------------------------

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

    def set_phase(self, phase: BridgePhase) -> None:
        """Move the conversation to `phase` (the satellite follows)."""
        if phase is not self.phase:
            self.phase = phase
            self.device.async_notify()


__all__ = [
    "BridgeBusyError",
    "BridgePath",
    "BridgePhase",
    "SpeechBridge",
]
