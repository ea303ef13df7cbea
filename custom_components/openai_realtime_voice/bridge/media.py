"""Turn media (a URL, or a byte stream such as a TTS result) into PCM16 mono.

`async_tts_to_pcm` converts a TTS answer that is a WAV of PCM16 mono in-process (header
parse + `Resampler`, in slices of at most 200 ms with the loop served between slices);
anything else goes through `async_transcode`. ffmpeg runs as an asyncio subprocess, so nothing
blocks the event loop; the process and the task feeding it are cleaned up however the
consumer stops reading.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator
import contextlib
import logging
from typing import Final

from ..audio import REALTIME_SAMPLE_RATE, RESAMPLER_RATES, SAMPLE_WIDTH, AudioFormatError, Resampler
from ..audio.wav import WavHeader, parse_wav_header

_LOGGER = logging.getLogger(__name__)

READ_SIZE: Final = 9600
"""Bytes read from ffmpeg at a time (200 ms at 24 kHz)."""

SLICE_MS: Final = 200
"""Most input audio resampled at once before the event loop gets a turn."""

WAV_HEADER_LIMIT: Final = 65536
"""Bytes searched for a WAV's `data` chunk before the stream is left to ffmpeg."""


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


async def async_tts_to_pcm(
    ffmpeg: str,
    source: AsyncIterable[bytes],
    *,
    sample_rate: int = REALTIME_SAMPLE_RATE,
) -> AsyncIterator[bytes]:
    """Yield a TTS answer as raw PCM16 mono at `sample_rate`.

    A WAV of PCM16 mono at a rate the resampler knows is converted in-process; any other
    stream (MP3, Ogg, float or stereo WAV, ...) goes through ffmpeg. An empty answer, one
    that ends inside its WAV header, and one whose source fails midway raise `MediaError`
    (the last after the audio before the failure has been yielded).
    """
    chunks = aiter(source)
    head = b""
    header: WavHeader | None = None
    readable = True
    try:
        while header is None and readable and len(head) <= WAV_HEADER_LIMIT:
            if (chunk := await anext(chunks, None)) is None:
                break
            head += chunk
            try:
                header = parse_wav_header(head)
            except AudioFormatError:
                readable = False
    except Exception as err:  # a TTS engine may fail with anything
        raise MediaError(f"the TTS answer failed: {err}") from err
    if not head:
        raise MediaError("the TTS answer is empty")
    if header is None and readable and len(head) <= WAV_HEADER_LIMIT:
        raise MediaError("the TTS answer ends inside its WAV header")
    if header is None or not header.is_pcm16_mono or header.sample_rate not in RESAMPLER_RATES:
        _LOGGER.debug("TTS answer converted by ffmpeg (%s)", header or "not a WAV")
        async for pcm in _async_transcode_checked(ffmpeg, head, chunks, sample_rate):
            yield pcm
        return
    async for pcm in _async_resample_wav(header, head, chunks, sample_rate):
        yield pcm


async def _async_resample_wav(
    header: WavHeader, head: bytes, chunks: AsyncIterator[bytes], sample_rate: int
) -> AsyncIterator[bytes]:
    """Resample the PCM16 mono audio after `header`, slice by slice."""
    resampler = Resampler(header.sample_rate, sample_rate)
    slice_bytes = header.sample_rate * SLICE_MS // 1000 * SAMPLE_WIDTH
    remaining = header.data_size
    data = head[header.data_offset :]
    while True:
        if remaining is not None:
            data = data[:remaining]
            remaining -= len(data)
        for start in range(0, len(data), slice_bytes):
            if pcm := resampler.process(data[start : start + slice_bytes]):
                yield pcm
            await asyncio.sleep(0)
        if remaining == 0:
            break
        try:
            if (chunk := await anext(chunks, None)) is None:
                break
        except Exception as err:  # a TTS engine may fail with anything
            if pcm := resampler.flush():
                yield pcm
            raise MediaError(f"the TTS answer broke off: {err}") from err
        data = chunk
    if pcm := resampler.flush():
        yield pcm


async def _async_transcode_checked(
    ffmpeg: str, head: bytes, chunks: AsyncIterator[bytes], sample_rate: int
) -> AsyncIterator[bytes]:
    """`async_transcode` of `head` + the rest; a failing source raises `MediaError` at the end."""
    failure: list[Exception] = []

    async def stream() -> AsyncIterator[bytes]:
        yield head
        try:
            async for chunk in chunks:
                yield chunk
        except Exception as err:  # noqa: BLE001 - a TTS engine may fail with anything
            failure.append(err)

    async for pcm in async_transcode(ffmpeg, stream(), sample_rate=sample_rate):
        yield pcm
    if failure:
        raise MediaError(f"the TTS answer broke off: {failure[0]}") from failure[0]
