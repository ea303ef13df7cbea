"""The Assist pipeline standing in for Realtime: device speech -> STT -> agent -> TTS -> device.

While the Realtime service is unreachable or refuses, each listening turn of the device runs
through the user's Assist pipeline via the device's satellite entity
(`async_accept_pipeline_from_satellite`, 16 kHz PCM, as the device's configured user); the TTS
answer (WAV, as the satellite asks) is converted to 24 kHz PCM by `async_tts_to_pcm` and played
through the bridge's usual downlink.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine, Sequence
from typing import Any

from homeassistant.components import tts
from homeassistant.components.assist_pipeline import PipelineEvent, PipelineEventType
from homeassistant.components.assist_pipeline.models import PipelineStage
from homeassistant.components.ffmpeg import get_ffmpeg_manager
from homeassistant.core import callback

from ..audio import DEVICE_SAMPLE_RATE, REALTIME_SAMPLE_RATE, Resampler
from ..home import DeviceFace
from ..xiaozhi import ListenMode
from .context import BridgeContext, BridgePath
from .media import MediaError, async_tts_to_pcm
from .uplink import Commit, Uplink, UplinkItem


class PipelineEngine:
    """The Assist pipeline engine: the device's turns through the pipeline of its satellite."""

    def __init__(self, bridge: BridgeContext) -> None:
        """Serve turns for `bridge` until it returns to Realtime."""
        self.bridge = bridge
        self.hass = bridge.hass
        self.turns = 0
        self._uplink: Uplink | None = None
        self._audio: asyncio.Queue[bytes | None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._run: asyncio.Task[Any] | None = None  # the run of the current turn
        self._fed = False  # whether the current turn's run got any audio
        self._tts_text: str | None = None
        self._stopped = False

    @property
    def path(self) -> BridgePath:
        """The Assist pipeline path."""
        return BridgePath.ASSIST_PIPELINE

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = self.bridge.spawn(coro, f"assist pipeline {name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    @callback
    def start_turn(self, mode: ListenMode | None = None) -> None:
        """The device listens: start a pipeline run fed with its audio (in any mode)."""
        satellite = self.bridge.home.face
        if satellite is None:
            self.bridge.fail(
                "pipeline", "No assist satellite entity to run the pipeline", alert=True
            )
            return
        hello = self.bridge.connection.session.device_hello
        frame_ms = hello.audio_params.frame_duration if hello is not None else 60
        if self._uplink is None:
            self._uplink = Uplink(DEVICE_SAMPLE_RATE, frame_ms)
        self._uplink.reset()
        if self._audio is not None:
            if self._fed:
                self._audio.put_nowait(None)  # the run goes on with what it heard
            elif self._run is not None:
                self._run.cancel()  # nothing was said: no run on silence
        queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._audio = queue
        self._fed = False
        self.turns += 1
        self._run = self._spawn(self._run_pipeline(satellite, queue), "pipeline")

    @callback
    def take_over(self, mode: ListenMode, unsent: Sequence[UplinkItem]) -> None:
        """Take over a device that is listening: its turn starts now, with what it said.

        The firmware sends `listen start` right after the hello and, in auto mode, again only
        after a reply: a board listening when Realtime refused or dropped sends no new one.
        `unsent` is its speech Realtime never got (24 kHz batches, oldest first).
        """
        self.start_turn(mode)
        if (queue := self._audio) is None:
            return  # no satellite: the failure is reported
        resampler = Resampler(REALTIME_SAMPLE_RATE, DEVICE_SAMPLE_RATE)
        pcm = bytearray()
        ended = False
        for item in unsent:
            if isinstance(item, Commit):  # a push-to-talk turn that already ended
                ended = True
                break
            pcm += resampler.process(item)
        if unsent:
            pcm += resampler.flush()
        if pcm:
            queue.put_nowait(bytes(pcm))
            self._fed = True
        if ended:
            self.end_turn()

    @callback
    def audio(self, payload: bytes) -> None:
        """One device packet, while a pipeline run reads audio."""
        if self._audio is None or self._uplink is None:
            return
        if (batch := self._uplink.feed(payload)) is not None:
            self._audio.put_nowait(batch)
            self._fed = True

    @callback
    def end_turn(self) -> None:
        """The device stopped listening (push-to-talk release): end the audio stream."""
        if self._audio is None or self._uplink is None:
            return
        if (rest := self._uplink.flush()) is not None:
            self._audio.put_nowait(rest)
            self._fed = True
        self._audio.put_nowait(None)
        self._audio = None

    @callback
    def text(self, request: str) -> None:
        """Typed requests (`listen detect`) are answered on the Realtime path only."""

    async def _run_pipeline(
        self, satellite: DeviceFace, queue: asyncio.Queue[bytes | None]
    ) -> None:
        try:
            await satellite.async_accept_pipeline_from_satellite(
                audio_stream=self._stream(queue),
                start_stage=PipelineStage.STT,
                end_stage=PipelineStage.TTS,
                context=self.bridge.user_context(),
            )
        except Exception as err:  # noqa: BLE001 - any pipeline failure must free the device
            self.bridge.fail("pipeline", f"Assist pipeline failed: {err}", alert=True)
            await self.bridge.end_speech()

    async def _stream(self, queue: asyncio.Queue[bytes | None]) -> AsyncIterator[bytes]:
        """The run's audio until the turn ends (or the pipeline stops reading)."""
        try:
            while (chunk := await queue.get()) is not None:
                yield chunk
        finally:
            if self._audio is queue:
                self._audio = None

    @callback
    def on_pipeline_event(self, event: PipelineEvent) -> None:
        """Mirror the run on the device: user text, the spoken answer, errors."""
        data = event.data or {}
        session = self.bridge.connection.session
        match event.type:
            case PipelineEventType.STT_END:
                # HA emits stt-end only with recognised text.
                if text := (data.get("stt_output") or {}).get("text"):  # pragma: no branch
                    session.send_stt(str(text))
                    self._spawn(self.bridge.connection.flush(), "stt")
            case PipelineEventType.TTS_START:
                self._tts_text = str(data.get("tts_input") or "") or None
            case PipelineEventType.TTS_END:
                # HA emits tts-end always with its output.
                if output := data.get("tts_output"):  # pragma: no branch
                    self._spawn(self._speak(str(output.get("token", ""))), "tts")
            case PipelineEventType.ERROR:
                self.bridge.fail("pipeline", f"Assist pipeline error: {data.get('message')}")
                self._spawn(self.bridge.end_speech(), "error")

    async def _speak(self, token: str) -> None:
        """Play the run's TTS answer, then tell the satellite it has been heard."""
        try:
            await self.bridge.async_play(self._tts_audio(token), self._tts_text)
        except MediaError as err:
            self.bridge.fail("pipeline", f"Cannot play the answer: {err}", alert=True)
        finally:
            # The satellite of now: one removed while the answer played is left alone.
            if (satellite := self.bridge.home.face) is not None:
                satellite.tts_response_finished()
        # A realtime-mode board listens again after `tts stop` without a `listen start`
        # (firmware HandleStateChangedEvent): the next turn starts from its state.
        session = self.bridge.connection.session
        if (
            not self._stopped
            and session.listening
            and session.listen_mode is ListenMode.REALTIME
            and not self.bridge.connection.closed
        ):
            self.start_turn()

    async def _tts_audio(self, token: str) -> AsyncIterator[bytes]:
        """The TTS result as 24 kHz PCM."""
        if (stream := tts.async_get_stream(self.hass, token)) is None:
            raise MediaError("the TTS result is gone")
        ffmpeg = get_ffmpeg_manager(self.hass).binary
        async for chunk in async_tts_to_pcm(ffmpeg, stream.async_stream_result()):
            yield chunk

    async def async_end_run(self) -> None:
        """The satellite goes away: cancel the turn's pipeline run and wait until it ended.

        Cancelling the run cancels Home Assistant's pipeline task it awaits, so the run's
        last events reach the satellite while it is still added.
        """
        if (run := self._run) is not None and not run.done():
            run.cancel()
            await asyncio.gather(run, return_exceptions=True)

    async def async_stop(self) -> None:
        """End the audio stream and cancel every run still going."""
        self._stopped = True
        if self._audio is not None:
            self._audio.put_nowait(None)
            self._audio = None
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
