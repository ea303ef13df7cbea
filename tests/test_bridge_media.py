"""Media conversion: files and streams to 24 kHz PCM through ffmpeg (`async_transcode`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
import shutil
from typing import Any

import pytest

from custom_components.openai_realtime_voice.bridge import (
    MediaError,
    async_transcode,
)
from simulator.speech import write_wav

FFMPEG = shutil.which("ffmpeg") or "ffmpeg"


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
