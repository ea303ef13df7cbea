"""Reply audio and text to a device: PCM deltas -> 60 ms frames -> Opus -> paced packets.

The device only plays audio between `tts start` and `tts stop` and queues at most 40
packets, so every reply goes through one `Pacer`; `stop()` cuts it at once for barge-in and
says how much the user heard.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from ..audio import Clock, FrameAssembler, OpusEncoder, Pacer, frame_bytes
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

    def send_alert(self, status: str, message: str, emotion: str) -> None:
        """Queue `alert`."""


class DeviceLink(Protocol):
    """What the bridge needs from a device connection (`DeviceConnection` is one)."""

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
        link: DeviceLink,
        *,
        sample_rate: int,
        frame_ms: int,
        clock: Clock | None = None,
        on_first_frame: Callable[[], None] | None = None,
    ) -> None:
        """Encode at the rate and frame duration the server hello announced."""
        self._link = link
        self._encoder = OpusEncoder(sample_rate, frame_ms)
        self._frames = FrameAssembler(frame_bytes(sample_rate, frame_ms))
        self._sentences = SentenceSplitter()
        self._pacer = Pacer(self._send, frame_ms=frame_ms, clock=clock, name="downlink")
        self._on_first_frame = on_first_frame
        self._first_pending = False
        self._pushed = 0
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
        if await self._link.send_audio(packet) and self._first_pending:
            self._first_pending = False
            if self._on_first_frame is not None:
                self._on_first_frame()

    async def start(self) -> None:
        """Enter Speaking (once per reply) so the device accepts the audio that follows."""
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
        """Show each completed sentence of the transcript on the device."""
        for sentence in self._sentences.push(delta):
            await self.sentence(sentence)

    async def sentence(self, text: str) -> None:
        """Show one assistant line."""
        if self.speaking:
            self._link.session.send_sentence(text)
            await self._link.flush()

    async def finish(self) -> None:
        """Send the zero-padded last frame and the unfinished last sentence."""
        if (frame := self._frames.flush()) is not None:
            self._pacer.push(self._encoder.encode(frame))
            self._pushed += 1
        if (rest := self._sentences.flush()) is not None:
            await self.sentence(rest)

    async def drained(self) -> None:
        """Wait until every queued frame has been played out (or cut by `stop()`)."""
        await self._pacer.drained()

    async def stop(self) -> int:
        """Barge-in: drop everything not yet sent; return the milliseconds the user heard."""
        self._frames.clear()
        self._sentences.flush()
        self._first_pending = False
        self._pushed = 0
        return await self._pacer.stop()

    async def end(self) -> None:
        """Leave Speaking (`tts stop`): the device listens again, or idles in manual mode."""
        await self._pacer.stop()
        self._first_pending = False
        self._pushed = 0
        if self.speaking and not self._link.closed:
            self._link.session.send_tts_stop()
            await self._link.flush()

    async def close(self) -> None:
        """Stop the pacer for good."""
        await self._pacer.close()
