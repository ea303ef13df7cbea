"""Reply audio and text to a device: PCM deltas -> 60 ms frames -> Opus -> paced packets.

The device only plays audio between `tts start` and `tts stop` and queues at most 40
packets, so every reply goes through one `Pacer`; `stop()` cuts it at once for barge-in and
says how much the user heard. Each sentence of the transcript is shown (`sentence_start`)
when the audio it belongs to is sent at real time, not when the service delivered it: its
place in the audio is estimated from its place in the text. The first sentence also sets the
device's face (`llm` emotion).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Protocol

from ..audio import Clock, FrameAssembler, OpusEncoder, Pacer, frame_bytes
from .emotion import emotion_for
from .sentences import SentenceSplitter


class DeviceSessionLike(Protocol):
    """The part of `xiaozhi.DeviceSession` the bridge uses to queue messages."""

    @property
    def speaking(self) -> bool:
        """Whether the device is in its Speaking state."""

    def send_tts_start(self) -> None:
        """Queue `tts start`."""

    def send_tts_stop(self) -> None:
        """Queue `tts stop`."""

    def send_sentence(self, text: str) -> None:
        """Queue `tts sentence_start`."""

    def send_stt(self, text: str) -> None:
        """Queue `stt`."""

    def send_emotion(self, emotion: str, text: str | None = None) -> None:
        """Queue `llm` with an emotion."""

    def send_alert(self, status: str, message: str, emotion: str) -> None:
        """Queue `alert`."""


class DeviceOutput(Protocol):
    """What the downlink writes to: a device connection (`DeviceConnection` is one)."""

    @property
    def session(self) -> DeviceSessionLike:
        """The device's protocol session."""

    @property
    def closed(self) -> bool:
        """Whether the connection has ended."""

    async def flush(self) -> None:
        """Transmit the messages the session queued."""

    async def send_audio(self, opus_packet: bytes) -> bool:
        """Send one Opus packet; False when the device is not Speaking."""


class Downlink:
    """One device's speaker: `tts start`, sentences, paced Opus frames, `tts stop`."""

    def __init__(
        self,
        link: DeviceOutput,
        *,
        sample_rate: int,
        frame_ms: int,
        clock: Clock | None = None,
        on_first_frame: Callable[[], None] | None = None,
        stop_guard: float = 0.0,
    ) -> None:
        """Encode at the rate and frame duration the server hello announced.

        `stop_guard` seconds are waited after a reply has played out before `drained()`
        returns (firmware that clears its queue at `tts stop` must have heard every frame).
        """
        self._link = link
        self._encoder = OpusEncoder(sample_rate, frame_ms)
        self._frames = FrameAssembler(frame_bytes(sample_rate, frame_ms))
        self._sentences = SentenceSplitter()
        self._pacer = Pacer(self._send, frame_ms=frame_ms, clock=clock, name="downlink")
        self._on_first_frame = on_first_frame
        self._first_pending = False
        self._pushed = 0
        # Sentences waiting for their audio: (start in the reply's text, text).
        self._waiting: deque[tuple[int, str]] = deque()
        self._reply_frame = 0  # the frame the current reply's audio starts at
        self._reply_chars = 0  # transcript characters of the current reply so far
        self._shown_chars = 0  # where the next completed sentence starts in that text
        self._face_set = False
        self.lines_shown = 0  # `sentence_start` lines sent so far (never reset)
        self.stop_guard = stop_guard
        self.frame_ms = frame_ms

    @property
    def speaking(self) -> bool:
        """Whether the device is Speaking (between our `tts start` and `tts stop`)."""
        return self._link.session.speaking

    @property
    def pushed_ms(self) -> int:
        """Audio queued for the device since the last `stop()` or `end()`."""
        return self._pushed * self.frame_ms

    @property
    def played_ms(self) -> int:
        """Audio of the current reply the device has played so far."""
        return self._pacer.played_ms

    async def _send(self, packet: bytes) -> None:
        if self._waiting or self._sentences.tail_ends_sentence:
            await self._show_due(self._pacer.sent)
        if await self._link.send_audio(packet) and self._first_pending:
            self._first_pending = False
            if self._on_first_frame is not None:
                self._on_first_frame()

    async def start(self) -> None:
        """Begin a reply; enter Speaking so the device accepts the audio that follows.

        A reply that follows another one (after tool calls) keeps the device Speaking.
        """
        self._reply_frame = self._pushed
        self._reply_chars = self._shown_chars = 0
        self._face_set = False
        if self.speaking or self._link.closed:
            return
        self._encoder.reset()
        self._first_pending = True
        self._link.session.send_tts_start()
        await self._link.flush()

    def audio(self, pcm: bytes) -> None:
        """Queue PCM16 24 kHz audio; whole frames are encoded and paced out at once."""
        for frame in self._frames.push(pcm):
            self._pacer.push(self._encoder.encode(frame))
            self._pushed += 1

    async def text(self, delta: str) -> None:
        """Show each completed sentence of the transcript when its audio plays."""
        self._reply_chars += len(delta)
        for sentence in self._sentences.push(delta):
            await self._queue_sentence(sentence)

    async def _queue_sentence(self, sentence: str) -> None:
        if not self._face_set:
            self._face_set = True
            if self.speaking and not self._link.closed:
                self._link.session.send_emotion(emotion_for(sentence))
                await self._link.flush()
        self._waiting.append((self._shown_chars, sentence))
        self._shown_chars += len(sentence) + 1
        await self._show_due(self._pacer.sent)

    async def _show_due(self, frame: int) -> None:
        """Show the sentences whose audio starts at or before `frame` (of this stream)."""
        frames = max(1, self._pushed - self._reply_frame)
        chars = max(1, self._reply_chars, self._shown_chars)
        while self._waiting:
            start, sentence = self._waiting[0]
            if self._reply_frame + start * frames / chars > frame:
                return
            self._waiting.popleft()
            await self.sentence(sentence)
        # The text so far ends with a full stop when its audio starts: the transcript runs
        # ahead of the audio, so nothing more of this sentence is coming (the reply's last
        # sentence has no white space after it until the reply ends).
        if (
            self._sentences.tail_ends_sentence
            and self._reply_frame + self._shown_chars * frames / chars <= frame
            and (rest := self._sentences.flush()) is not None
        ):
            await self._queue_sentence(rest)

    async def sentence(self, text: str) -> None:
        """Show one assistant line."""
        if self.speaking:
            self._link.session.send_sentence(text)
            self.lines_shown += 1
            await self._link.flush()

    async def finish(self) -> None:
        """Send the zero-padded last frame and the unfinished last sentence."""
        if (frame := self._frames.flush()) is not None:
            self._pacer.push(self._encoder.encode(frame))
            self._pushed += 1
        if (rest := self._sentences.flush()) is not None:
            await self._queue_sentence(rest)

    async def drained(self) -> None:
        """Wait until every queued frame has been played out (or cut by `stop()`).

        Sentences still waiting are shown then; `stop_guard` is waited after a reply.
        """
        stream = self._pushed
        await self._pacer.drained()
        while self._waiting:
            await self.sentence(self._waiting.popleft()[1])
        if self.stop_guard and stream and self._pushed:
            await asyncio.sleep(self.stop_guard)

    async def stop(self) -> int:
        """Barge-in: drop everything not yet sent; return the milliseconds the user heard."""
        self._frames.clear()
        self._sentences.flush()
        self._waiting.clear()
        self._first_pending = False
        self._pushed = self._reply_frame = 0
        return await self._pacer.stop()

    async def end(self) -> None:
        """Leave Speaking (`tts stop`): the device listens again, or idles in manual mode."""
        await self._pacer.stop()
        self._waiting.clear()
        self._first_pending = False
        self._pushed = self._reply_frame = 0
        if self.speaking and not self._link.closed:
            self._link.session.send_tts_stop()
            await self._link.flush()

    async def close(self) -> None:
        """Stop the pacer for good."""
        await self._pacer.close()
