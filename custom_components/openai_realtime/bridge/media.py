"""Turn any media (a URL, or a byte stream such as a TTS result) into PCM16 mono with ffmpeg.

ffmpeg runs as an asyncio subprocess, so nothing blocks the event loop; the process and
the task feeding it are cleaned up however the consumer stops reading.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator
import contextlib
from typing import Final

from ..audio import REALTIME_SAMPLE_RATE

READ_SIZE: Final = 9600
"""Bytes read from ffmpeg at a time (200 ms at 24 kHz)."""


class MediaError(Exception):
    """ffmpeg could not start or could not decode the media."""


async def async_transcode(
    ffmpeg: str,
    source: str | AsyncIterable[bytes],
    *,
    sample_rate: int = REALTIME_SAMPLE_RATE,
) -> AsyncIterator[bytes]:
    """Yield the media as raw PCM16 mono at `sample_rate`; `source` is a URL or a byte stream."""
    piped = not isinstance(source, str)
    url = "pipe:0" if piped else str(source)
    args = ["-hide_banner", "-loglevel", "error", "-i", url]
    args += ["-f", "s16le", "-acodec", "pcm_s16le", "-ac", "1", "-ar", str(sample_rate), "pipe:1"]
    try:
        process = await asyncio.create_subprocess_exec(
            ffmpeg,
            *args,
            stdin=asyncio.subprocess.DEVNULL
            if isinstance(source, str)
            else asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as err:
        raise MediaError(f"cannot run ffmpeg: {err}") from err
    feeder = None if isinstance(source, str) else asyncio.create_task(_feed(process, source))
    produced = 0
    try:
        assert process.stdout is not None
        while chunk := await process.stdout.read(READ_SIZE):
            produced += len(chunk)
            yield chunk
        assert process.stderr is not None
        errors = await process.stderr.read()
        if await process.wait() != 0 and not produced:
            detail = errors.decode(errors="replace").strip().splitlines()
            raise MediaError(detail[-1] if detail else "ffmpeg failed")
    finally:
        if feeder is not None:
            feeder.cancel()
            await asyncio.gather(feeder, return_exceptions=True)
        if process.returncode is None:
            process.kill()
            await process.wait()


async def _feed(process: asyncio.subprocess.Process, source: AsyncIterable[bytes]) -> None:
    """Copy the byte stream into ffmpeg's stdin, then close it."""
    stdin = process.stdin
    assert stdin is not None
    try:
        async for chunk in source:
            stdin.write(chunk)
            await stdin.drain()
    except BrokenPipeError, ConnectionResetError:
        return
    finally:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            stdin.close()
