"""TTS answers to 24 kHz PCM: PCM16 mono WAV in-process, any other stream through ffmpeg.

The conversion runs for real: the `Resampler`, and the ffmpeg binary for what it cannot read.
A missing ffmpeg binary shows which path an answer took: in-process needs none.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable
import io
from pathlib import Path
import shutil
import struct
import subprocess
import wave

import numpy as np
import pytest

from custom_components.openai_realtime_voice.bridge import MediaError, async_tts_to_pcm
from custom_components.openai_realtime_voice.bridge.media import SLICE_MS, WAV_HEADER_LIMIT

FFMPEG = shutil.which("ffmpeg") or "ffmpeg"
TONE_HZ = 440


def tone(rate: int, seconds: float) -> bytes:
    """A 440 Hz sine as PCM16 mono."""
    t = np.arange(int(rate * seconds)) / rate
    return (np.sin(2 * np.pi * TONE_HZ * t) * 12000).astype("<i2").tobytes()


def wav(pcm: bytes, rate: int, channels: int = 1) -> bytes:
    """A WAV file (sizes known) as Python's `wave` writes it."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(channels)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(pcm)
    return buffer.getvalue()


def streamed_wav(pcm: bytes, rate: int) -> bytes:
    """A WAV as Home Assistant's Wyoming TTS streams it: header with 0 frames, then audio."""
    return wav(b"", rate) + pcm


def float_wav(pcm: bytes, rate: int) -> bytes:
    """The same audio as a 32-bit float WAV (WAVE_FORMAT_IEEE_FLOAT)."""
    samples = np.frombuffer(pcm, "<i2").astype("<f4") / 32768
    fmt = struct.pack("<HHIIHH", 3, 1, rate, rate * 4, 4, 32)
    data = samples.tobytes()
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


def mp3(pcm: bytes, rate: int) -> bytes:
    """The audio as MP3, encoded by ffmpeg (libmp3lame)."""
    command = [FFMPEG, "-hide_banner", "-loglevel", "error", "-f", "s16le", "-ar", str(rate)]
    command += ["-ac", "1", "-i", "pipe:0", "-f", "mp3", "pipe:1"]
    return subprocess.run(command, input=pcm, capture_output=True, check=True).stdout


async def pieces(data: bytes, sizes: Iterable[int] = (4096,)) -> AsyncIterator[bytes]:
    """`data` in chunks of the given sizes (the last size repeats)."""
    sizes = list(sizes)
    position = 0
    while position < len(data):
        size = sizes.pop(0) if len(sizes) > 1 else sizes[0]
        yield data[position : position + size]
        position += size


async def failing(data: bytes) -> AsyncIterator[bytes]:
    """`data`, then the TTS engine fails (as HA's result stream re-raises its error)."""
    async for piece in pieces(data):
        yield piece
    raise RuntimeError("engine lost")


async def convert(ffmpeg: str, source: AsyncIterator[bytes]) -> bytes:
    """The whole 24 kHz PCM of a TTS answer."""
    return b"".join([chunk async for chunk in async_tts_to_pcm(ffmpeg, source)])


def dominant_hz(pcm: bytes, rate: int = 24000) -> float:
    """The strongest frequency of PCM16 audio."""
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    spectrum = np.abs(np.fft.rfft(samples))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[int(np.argmax(spectrum))])


@pytest.fixture
def no_ffmpeg(tmp_path: Path) -> str:
    """A path where no ffmpeg binary is."""
    return str(tmp_path / "no-ffmpeg")


@pytest.mark.parametrize("rate", [16000, 22050, 24000, 44100, 48000])
async def test_pcm16_mono_wav_is_converted_without_ffmpeg(rate: int, no_ffmpeg: str) -> None:
    """Every rate a TTS engine speaks at becomes 24 kHz in-process: whole, in tune."""
    pcm = tone(rate, 1.0)
    # The header in pieces, then one odd byte of audio, then the rest.
    out = await convert(no_ffmpeg, pieces(wav(pcm, rate), [1, 3, 40, 1, 4097]))
    assert len(out) == 2 * -(-len(pcm) // 2 * 24000 // rate)
    assert abs(dominant_hz(out) - TONE_HZ) < 2
    level = np.sqrt(np.mean(np.frombuffer(out, "<i2")[2400:-2400].astype(np.float64) ** 2))
    assert level == pytest.approx(12000 / np.sqrt(2), rel=0.01)


async def test_streamed_wav_runs_to_the_end(no_ffmpeg: str) -> None:
    """A WAV with 0 frames in its header (Wyoming streaming) plays all the audio after it."""
    pcm = tone(22050, 0.5)
    out = await convert(no_ffmpeg, pieces(streamed_wav(pcm, 22050), [44, 1000]))
    assert len(out) == 2 * -(-len(pcm) // 2 * 24000 // 22050)


async def test_known_data_size_ends_the_audio(no_ffmpeg: str) -> None:
    """Chunks after the audio (a trailing LIST) are not played as noise."""
    pcm = tone(16000, 0.5)
    data = wav(pcm, 16000) + b"LIST" + struct.pack("<I", 4) + b"INFO"
    out = await convert(no_ffmpeg, pieces(data))
    assert len(out) == len(pcm) * 3 // 2


async def test_large_answer_yields_to_the_loop_between_slices(no_ffmpeg: str) -> None:
    """A finished answer arrives in one chunk: it is converted slice by slice, and other
    tasks run between the slices (no long hold of the event loop)."""
    seconds = 5
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    chunks = [
        chunk
        async for chunk in async_tts_to_pcm(
            no_ffmpeg, pieces(wav(tone(48000, seconds), 48000), [10**7])
        )
    ]
    task.cancel()
    slices = seconds * 1000 // SLICE_MS
    assert len(chunks) >= slices
    assert max(len(chunk) for chunk in chunks) <= 24000 * 2 * SLICE_MS // 1000 + 2 * 24
    assert ticks >= slices


def stereo_wav(pcm: bytes, rate: int) -> bytes:
    """The same audio on both channels of a stereo WAV."""
    return wav(np.repeat(np.frombuffer(pcm, "<i2"), 2).tobytes(), rate, channels=2)


@pytest.mark.parametrize(
    ("make", "slack_ms"),
    # MP3 adds the encoder's delay and pads the last frame (about 70 ms here).
    [(float_wav, 4), (stereo_wav, 4), (mp3, 100)],
)
async def test_other_answers_go_through_ffmpeg(
    make: Callable[[bytes, int], bytes], slack_ms: int, no_ffmpeg: str
) -> None:
    """What is not PCM16 mono WAV is decoded by ffmpeg; without ffmpeg it is a MediaError."""
    data = make(tone(22050, 1.0), 22050)
    out = await convert(FFMPEG, pieces(data))
    assert 0 <= len(out) - 48000 <= 48 * slack_ms
    assert abs(dominant_hz(out) - TONE_HZ) < 2
    with pytest.raises(MediaError, match="cannot run ffmpeg"):
        await convert(no_ffmpeg, pieces(data))


async def test_wav_header_beyond_the_limit_goes_through_ffmpeg(no_ffmpeg: str) -> None:
    """A header whose `data` chunk is not found within the limit is left to ffmpeg."""
    pcm = tone(16000, 0.5)
    plain = wav(pcm, 16000)
    junk = WAV_HEADER_LIMIT + 10000
    padding = b"JUNK" + struct.pack("<I", junk) + bytes(junk)
    data = plain[:12] + padding + plain[12:]
    out = await convert(FFMPEG, pieces(data))
    assert abs(len(out) - len(pcm) * 3 // 2) <= 96
    with pytest.raises(MediaError, match="cannot run ffmpeg"):
        await convert(no_ffmpeg, pieces(data))


async def test_empty_answer(no_ffmpeg: str) -> None:
    """No bytes at all: a clear MediaError."""
    with pytest.raises(MediaError, match="the TTS answer is empty"):
        await convert(no_ffmpeg, pieces(b""))


@pytest.mark.parametrize("end", [2, 11, 20, 43])
async def test_answer_ending_inside_its_wav_header(end: int, no_ffmpeg: str) -> None:
    """A truncated WAV header: a clear MediaError, not noise and not an ffmpeg error."""
    data = wav(tone(16000, 0.1), 16000)[:end]
    with pytest.raises(MediaError, match="the TTS answer ends inside its WAV header"):
        await convert(no_ffmpeg, pieces(data, [1]))


async def test_answer_failing_before_any_audio(no_ffmpeg: str) -> None:
    """The engine fails at once: MediaError with its reason."""

    async def broken() -> AsyncIterator[bytes]:
        raise RuntimeError("engine down")
        yield b""  # pragma: no cover - makes this an async generator

    with pytest.raises(MediaError, match="the TTS answer failed: engine down"):
        await convert(no_ffmpeg, broken())


@pytest.mark.parametrize("kind", ["wav", "mp3"])
async def test_answer_breaking_off_midway(kind: str, no_ffmpeg: str) -> None:
    """The engine fails midway: the audio before the failure is played, then a MediaError."""
    pcm = tone(22050, 1.0)
    half = len(pcm) // 2
    if kind == "wav":
        data, ffmpeg = streamed_wav(pcm[:half], 22050), no_ffmpeg
    else:
        data, ffmpeg = mp3(pcm, 22050), FFMPEG
        data = data[: len(data) // 2]
    received = bytearray()

    async def play() -> None:
        async for chunk in async_tts_to_pcm(ffmpeg, failing(data)):
            received.extend(chunk)

    with pytest.raises(MediaError, match="the TTS answer broke off: engine lost"):
        await play()
    played = bytes(received)
    assert abs(len(played) - 24000) <= 2400  # about half a second of the one second
    assert abs(dominant_hz(played) - TONE_HZ) < 4


async def test_answer_breaking_off_right_after_its_header(no_ffmpeg: str) -> None:
    """The engine fails after the header: nothing to play, a MediaError."""
    with pytest.raises(MediaError, match="the TTS answer broke off: engine lost"):
        await convert(no_ffmpeg, failing(wav(b"", 24000)))


async def test_abandoned_conversion_stops(no_ffmpeg: str) -> None:
    """The consumer stops early (barge-in): the generator closes without error."""
    stream = async_tts_to_pcm(no_ffmpeg, pieces(wav(tone(16000, 5.0), 16000), [10**7]))
    assert await anext(stream)
    await stream.aclose()
