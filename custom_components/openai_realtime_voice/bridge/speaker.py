"""The device's speaker: replies one after another, barge-in, played position, first-frame latency.

`Downlink` turns audio and text into `tts start`, sentences, paced Opus and `tts stop`; the
`Speaker` decides what plays when. Replies take turns through one lock (an announcement or a
pipeline answer waits there too), each reply in its own task started when the service creates
it, so its audio goes from the response's stream straight into the pacer: no queue of replies
sits in between.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, Awaitable, Callable
from typing import ClassVar, Final

from ..const import LOGGER
from ..realtime import AudioDelta, RealtimeResponse, TranscriptDelta
from ..xiaozhi import ListenMode
from .context import BridgeContext, BridgePhase
from .downlink import Downlink

STALL_TIMEOUT: Final = 30.0
"""Seconds a reply may go without an event before the bridge gives up on it."""

ECHO_GUARD: Final = 0.3
"""Seconds after a reply during which a server-AEC device's microphone is still ignored."""

OLD_FIRMWARE_STOP_GUARD: Final = 0.2
"""Extra wait before `tts stop` for firmware that clears its playback queue at `tts stop`."""

MAX_OPEN_TURNS: Final = 16
"""User turns remembered while their transcripts are outstanding."""

type Cut = tuple[RealtimeResponse | None, int]
"""The reply the user was hearing when cut (if any) and the milliseconds of it they heard."""


class Speaker:
    """What one device plays, in order, and where a barge-in cut it."""

    stall_timeout: ClassVar[float] = STALL_TIMEOUT

    def __init__(self, ctx: BridgeContext) -> None:
        """Nothing plays until `open()` (the server hello fixes the audio format)."""
        self._ctx = ctx
        self._loop = asyncio.get_running_loop()
        self.downlink: Downlink | None = None
        self._turn = asyncio.Lock()  # who plays now: replies and announcements, in order
        self._waiting = 0  # replies created by the service that wait for their turn
        self._current: RealtimeResponse | None = None
        # The replies of the current speaking stretch and where each starts in the downlink.
        self._segments: list[tuple[int, RealtimeResponse]] = []
        self.turn_started: float | None = None
        """When the user's turn ended at the device (the start of the latency figure)."""
        self._server_aec = False
        self._echo_until = 0.0
        # Per committed user turn: the reply lines the device had been sent by then.
        self._lines_at_turn: dict[str, int] = {}

    def open(self, *, sample_rate: int, frame_ms: int, waits_for_playback: bool, aec: bool) -> None:
        """Encode as the server hello announced, for the device's firmware and AEC."""
        self.downlink = Downlink(
            self._ctx.connection,
            sample_rate=sample_rate,
            frame_ms=frame_ms,
            on_first_frame=self._on_first_frame,
            stop_guard=0.0 if waits_for_playback else OLD_FIRMWARE_STOP_GUARD,
        )
        self._server_aec = aec

    async def close(self) -> None:
        """Stop the pacer for good."""
        if self.downlink is not None:
            await self.downlink.close()

    @property
    def speaking(self) -> bool:
        """Whether the device is Speaking (between our `tts start` and `tts stop`)."""
        return self.downlink is not None and self.downlink.speaking

    @property
    def busy(self) -> bool:
        """Whether a reply plays or the device speaks."""
        return self._current is not None or self.speaking

    def _lines_shown(self) -> int:
        return self.downlink.lines_shown if self.downlink is not None else 0

    # --- the user's line ----------------------------------------------------------------------

    def user_turn_ended(self, turn: str) -> None:
        """The user's turn `turn` was committed: its replies come from now on."""
        self._lines_at_turn[turn] = self._lines_shown()
        while len(self._lines_at_turn) > MAX_OPEN_TURNS:
            del self._lines_at_turn[next(iter(self._lines_at_turn))]

    async def show_user_text(self, turn: str, text: str) -> None:
        """Show what the user said (`stt`), unless a reply to it is already on the screen.

        The transcription finishes on its own schedule, often after the reply started. The
        default display has one chat line: an `stt` sent after the reply's first
        `sentence_start` would replace the answer with the question.
        """
        shown = self._lines_at_turn.pop(turn, None)
        if shown is not None and shown != self._lines_shown():
            LOGGER.debug(
                "Device %s: the transcript came after the reply; not shown", self._ctx.device.mac
            )
            return
        connection = self._ctx.connection
        connection.session.send_stt(text)
        await connection.flush()

    @property
    def replies_waiting(self) -> bool:
        """Whether another reply waits for its turn."""
        return self._waiting > 0

    def hears_itself(self) -> bool:
        """Whether the microphone now hears the speaker (a server-AEC build, no echo cancelling)."""
        return self._server_aec and (
            self._ctx.connection.session.speaking or self._loop.time() < self._echo_until
        )

    # --- replies ------------------------------------------------------------------------------

    def queue_reply(
        self,
        response: RealtimeResponse,
        play: Callable[[], Awaitable[None]],
        played: Callable[[RealtimeResponse], None],
    ) -> None:
        """Play `response` with `play` once the replies before it have played; then `played`."""
        self._waiting += 1
        self._ctx.spawn(self._take_turn(response, play, played), "reply")

    async def _take_turn(
        self,
        response: RealtimeResponse,
        play: Callable[[], Awaitable[None]],
        played: Callable[[RealtimeResponse], None],
    ) -> None:
        try:
            await self._turn.acquire()
        finally:
            self._waiting -= 1
        try:
            self._current = response
            await play()
        except Exception:  # noqa: BLE001 - never leave the device stuck in Speaking
            self._ctx.fail("bridge", "Speech bridge failed", exc_info=True, alert=True)
            assert self.downlink is not None
            await self.downlink.stop()  # its half sentence must not open the next reply
            self._segments.clear()
            await self.end_speech()
        finally:
            self._current = None
            self._turn.release()
            played(response)

    async def start_reply(self, response: RealtimeResponse) -> Downlink:
        """Enter Speaking for a reply and remember where its audio starts."""
        downlink = self.downlink
        assert downlink is not None  # replies come once the bridge is ready
        self._segments.append((downlink.pushed_ms, response))
        await downlink.start()
        self._ctx.set_phase(BridgePhase.RESPONDING)
        return downlink

    async def stream(self, response: RealtimeResponse) -> None:
        """Feed a reply's audio and text to the device; TimeoutError when the service stalls."""
        downlink = self.downlink
        assert downlink is not None
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

    async def async_play(self, pcm: AsyncIterable[bytes], text: str | None = None) -> None:
        """Play 24 kHz PCM (an announcement or a pipeline answer) and wait until it was heard."""
        downlink = self.downlink
        assert downlink is not None
        await self._ctx.async_interrupt()
        async with self._turn:
            try:
                await downlink.start()
                self._ctx.set_phase(BridgePhase.RESPONDING)
                if text:
                    await downlink.sentence(text)
                async for chunk in pcm:
                    downlink.audio(chunk)
                await downlink.finish()
                await downlink.drained()
            finally:
                await self.end_speech()

    async def end_speech(self) -> None:
        """`tts stop`: the device listens again (or idles in manual mode).

        A realtime-mode board is listening right away (it sends no `listen start`).
        """
        if self.downlink is not None:
            await self.downlink.end()
        self._segments.clear()
        if self._server_aec:
            self._echo_until = self._loop.time() + ECHO_GUARD
        self._ctx.note_activity()
        session = self._ctx.connection.session
        listening = session.listening and session.listen_mode is ListenMode.REALTIME
        self._ctx.set_phase(BridgePhase.LISTENING if listening else BridgePhase.IDLE)

    # --- barge-in -----------------------------------------------------------------------------

    async def cut(self) -> Cut | None:
        """Cut the reply now and `tts stop`; None when nothing plays."""
        downlink = self.downlink
        if downlink is None or (not downlink.speaking and self._current is None):
            return None
        cut = self._heard(await downlink.stop())
        await downlink.end()
        self._ctx.set_phase(BridgePhase.LISTENING)
        return cut

    def _heard(self, heard_ms: int) -> Cut:
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
        if self.turn_started is None:
            return
        latency = (self._loop.time() - self.turn_started) * 1000
        self.turn_started = None
        device = self._ctx.device
        device.latencies.append(latency)
        device.last_latency_ms = latency
        device.async_notify()


__all__ = ["ECHO_GUARD", "OLD_FIRMWARE_STOP_GUARD", "STALL_TIMEOUT", "Cut", "Speaker"]
