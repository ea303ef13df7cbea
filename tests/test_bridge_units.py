"""Bridge parts on their own: sentences, media conversion, uplink batching."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
import shutil
from typing import Any

import pytest

from custom_components.openai_realtime_voice.audio import OpusEncoder, load_opuslib
from custom_components.openai_realtime_voice.bridge import (
    Downlink,
    MediaError,
    SentenceSplitter,
    Uplink,
    async_transcode,
)
from simulator.speech import write_wav

FFMPEG = shutil.which("ffmpeg") or "ffmpeg"


def test_sentences_split_on_stops_and_cjk() -> None:
    """Sentences come out whole, CJK full stops need no space, the rest is flushed."""
    splitter = SentenceSplitter()
    assert splitter.push("Hello there. How") == ["Hello there."]
    assert splitter.push(" are you? 好的。下") == ["How are you?", "好的。"]
    assert splitter.push("一步") == []
    assert splitter.flush() == "下一步"
    assert splitter.flush() is None


def test_a_tail_that_ends_like_a_sentence() -> None:
    """The last sentence has no white space after its stop: the tail says it may be shown."""
    splitter = SentenceSplitter()
    assert splitter.push("Done. The lights are on") == ["Done."]
    assert not splitter.tail_ends_sentence
    assert splitter.push(".") == []
    assert splitter.tail_ends_sentence
    assert splitter.push(" And") == ["The lights are on."]
    assert not splitter.tail_ends_sentence
    assert splitter.push(" 3.") == []
    assert splitter.tail_ends_sentence
    assert splitter.push("5 more") == []  # the stop was a decimal point after all
    assert not splitter.tail_ends_sentence
    assert splitter.flush() == "And 3.5 more"


async def test_transcode_a_file_and_a_stream(tmp_path: Any) -> None:
    """ffmpeg turns a 16 kHz WAV (path or byte stream) into 24 kHz mono PCM."""
    path = tmp_path / "a.wav"
    write_wav(path, bytes(32000), 16000)  # 1 s of silence
    pcm = b"".join([chunk async for chunk in async_transcode(FFMPEG, str(path))])
    assert abs(len(pcm) - 48000) <= 96

    async def stream() -> AsyncIterator[bytes]:
        data = path.read_bytes()
        yield data[:100]
        yield data[100:]

    piped = b"".join([chunk async for chunk in async_transcode(FFMPEG, stream())])
    assert abs(len(piped) - 48000) <= 96


async def test_transcode_errors(tmp_path: Any) -> None:
    """Undecodable media and a missing ffmpeg raise MediaError."""
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio at all")
    with pytest.raises(MediaError):
        async for _ in async_transcode(FFMPEG, str(bad)):
            pass
    with pytest.raises(MediaError):
        async for _ in async_transcode(str(tmp_path / "no-ffmpeg"), str(bad)):
            pass


async def test_transcode_stops_ffmpeg_when_abandoned(tmp_path: Any) -> None:
    """Leaving the stream early kills ffmpeg and its feeder."""

    async def long() -> AsyncIterator[bytes]:
        path = tmp_path / "b.wav"
        write_wav(path, bytes(32000 * 30), 16000)  # 30 s
        yield path.read_bytes()

    stream = async_transcode(FFMPEG, long())
    assert await anext(stream)
    await stream.aclose()


async def test_uplink_batches_and_flushes() -> None:
    """Packets decode to 24 kHz and leave in ~100 ms batches; the rest is flushed."""
    await asyncio.get_running_loop().run_in_executor(None, load_opuslib)
    packet = OpusEncoder(16000, 60).encode(bytes(1920))
    uplink = Uplink(24000, 60)
    assert uplink.feed(packet) is None
    batch = uplink.feed(packet)
    assert batch is not None
    assert len(batch) == 2 * 2880
    assert uplink.flush() is None
    uplink.feed(packet)
    assert uplink.flush() is not None
    uplink.reset()


class _Session:
    """A device session that records what the downlink queued, in order."""

    def __init__(self) -> None:
        self.speaking = False
        self.sent: list[str] = []

    def send_tts_start(self) -> None:
        self.speaking = True
        self.sent.append("start")

    def send_tts_stop(self) -> None:
        self.speaking = False
        self.sent.append("stop")

    def send_sentence(self, text: str) -> None:
        self.sent.append(f"sentence:{text}")

    def send_emotion(self, emotion: str, text: str | None = None) -> None:
        self.sent.append(f"emotion:{emotion}")

    def send_stt(self, text: str) -> None:
        self.sent.append(f"stt:{text}")

    def send_alert(self, status: str, message: str, emotion: str) -> None:
        self.sent.append("alert")


class _Link:
    """A device link that counts the audio frames it carried."""

    def __init__(self) -> None:
        self.session = _Session()
        self.closed = False

    async def flush(self) -> None:
        """Nothing to transmit."""

    async def send_audio(self, opus_packet: bytes) -> bool:
        self.session.sent.append("frame")
        return True


async def test_downlink_shows_late_sentences_before_tts_stop() -> None:
    """Sentences whose audio already played are shown at the play-out, before `tts stop`;
    `stop_guard` waits after the reply (firmware that clears its queue at `tts stop`)."""
    await asyncio.get_running_loop().run_in_executor(None, load_opuslib)
    link = _Link()
    downlink = Downlink(link, sample_rate=24000, frame_ms=60, stop_guard=0.3)
    await downlink.start()
    downlink.audio(bytes(2880))  # one frame of audio for a two-sentence text
    await downlink.text("Great. It is done.")
    await downlink.finish()
    loop = asyncio.get_running_loop()
    began = loop.time()
    await downlink.drained()
    assert loop.time() - began >= 0.3  # the play-out alone is 60 ms
    await downlink.end()
    await downlink.close()
    assert link.session.sent == [
        "start",
        "emotion:happy",
        "sentence:Great.",
        "frame",
        "sentence:It is done.",
        "stop",
    ]
