"""The Assist pipeline path's TTS answer -> 24 kHz PCM: in-process WAV + Resampler against ffmpeg.

Baseline (measured in the same run, interleaved): `async_transcode`, the real ffmpeg binary
fed through a pipe, as the Assist pipeline path converted every answer before. Candidate:
`async_tts_to_pcm`, which reads a PCM16 mono WAV in-process and resamples it with
`Resampler`, and hands anything else (here MP3) to the same ffmpeg path.

Second table: the whole chain as Home Assistant's TTS delivers the answer. Before, the
satellite set no preferred format, so HA converted every non-MP3 answer to MP3 with its own
ffmpeg process, which the Assist pipeline path then decoded; now it prefers WAV, so a WAV
engine's answer arrives as sent and an MP3 engine's answer is converted to WAV by HA.

Per case and method: time from the TTS bytes being available to the first 24 kHz chunk, total
conversion time, and CPU (this process plus ffmpeg child processes), medians of ROUNDS; and
for the candidate the longest single step of the generator (the longest the event loop is
held by the conversion between two yields).

Run: `.venv/bin/python -m benchmarks.bench_tts_convert`
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
import io
import resource
import shutil
import subprocess
import time
import wave

import numpy as np

from benchmarks import speech, table, verdict
from custom_components.openai_realtime_voice.audio.resampler import _plan
from custom_components.openai_realtime_voice.bridge.media import async_transcode, async_tts_to_pcm

ROUNDS = 7
SECONDS = 4.0
"""A typical spoken answer."""
SOURCE_CHUNK = 4096
"""Bytes per chunk of the TTS stream (all available at once, as a finished TTS result)."""
OUT_RATE = 24000

type Converter = Callable[[str, AsyncIterator[bytes]], AsyncIterator[bytes]]


def wav_bytes(pcm: np.ndarray, rate: int) -> bytes:
    """Wrap PCM16 mono samples in a WAV file."""
    with io.BytesIO() as buffer:
        with wave.open(buffer, "wb") as writer:
            writer.setnchannels(1)
            writer.setsampwidth(2)
            writer.setframerate(rate)
            writer.writeframes(pcm.tobytes())
        return buffer.getvalue()


def mp3_bytes(ffmpeg: str, pcm: np.ndarray, rate: int) -> bytes:
    """Encode PCM16 mono as MP3 with ffmpeg (libmp3lame), as cloud TTS engines answer."""
    command = [ffmpeg, "-hide_banner", "-loglevel", "error", "-f", "s16le", "-ar", str(rate)]
    command += ["-ac", "1", "-i", "pipe:0", "-f", "mp3", "pipe:1"]
    return subprocess.run(command, input=pcm.tobytes(), capture_output=True, check=True).stdout


async def chunks(data: bytes) -> AsyncIterator[bytes]:
    """The TTS stream: `data` in SOURCE_CHUNK pieces."""
    for start in range(0, len(data), SOURCE_CHUNK):
        yield data[start : start + SOURCE_CHUNK]


def children_cpu() -> float:
    """CPU seconds of waited-for child processes (ffmpeg)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


async def measure(convert: Converter, ffmpeg: str, data: bytes) -> tuple[float, ...]:
    """Return (first chunk ms, total ms, CPU ms, longest step ms, output bytes)."""
    cpu0, child0 = time.process_time(), children_cpu()
    start = time.perf_counter()
    first = longest = 0.0
    produced = 0
    stream = convert(ffmpeg, chunks(data))
    while True:
        step = time.perf_counter()
        try:
            chunk = await anext(stream)
        except StopAsyncIteration:
            break
        now = time.perf_counter()
        longest = max(longest, now - step)
        if not produced:
            first = now - start
        produced += len(chunk)
    total = time.perf_counter() - start
    cpu = time.process_time() - cpu0 + children_cpu() - child0
    return first * 1e3, total * 1e3, cpu * 1e3, longest * 1e3, produced


def baseline(ffmpeg: str, source: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The ffmpeg process, as the Assist pipeline path ran it before."""
    return async_transcode(ffmpeg, source)


def candidate(ffmpeg: str, source: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """In-process for PCM16 mono WAV, ffmpeg for the rest."""
    return async_tts_to_pcm(ffmpeg, source)


async def ha_convert(
    ffmpeg: str, source: AsyncIterator[bytes], from_extension: str, to_extension: str
) -> AsyncIterator[bytes]:
    """HA's TTS converting an answer to the requested format with ffmpeg.

    The arguments are those `homeassistant.components.tts._async_convert_audio` (2026.10)
    builds for a streamed answer with only a preferred format: input format, `-probesize 32`
    for WAV input, `-q:a 0` for MP3 output, `-fflags +bitexact`; read in 4096-byte chunks.
    """
    command = [ffmpeg, "-hide_banner", "-loglevel", "error", "-f", from_extension]
    if from_extension == "wav":
        command += ["-probesize", "32"]
    command += ["-i", "pipe:0", "-f", to_extension]
    if to_extension == "mp3":
        command += ["-q:a", "0"]
    command += ["-fflags", "+bitexact", "pipe:1"]
    process = await asyncio.create_subprocess_exec(
        *command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
    )
    assert process.stdin is not None
    assert process.stdout is not None
    stdin = process.stdin

    async def feed() -> None:
        async for chunk in source:
            stdin.write(chunk)
            await stdin.drain()
        stdin.close()

    writer = asyncio.create_task(feed())
    while chunk := await process.stdout.read(4096):
        yield chunk
    await writer
    await process.wait()


def wav_engine_before(ffmpeg: str, source: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """No preferred format: HA converted a WAV answer to MP3, the pipeline path decoded that."""
    return async_transcode(ffmpeg, ha_convert(ffmpeg, source, "wav", "mp3"))


def mp3_engine_now(ffmpeg: str, source: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """WAV preferred: HA converts an MP3 answer to WAV, the Assist pipeline path resamples it."""
    return async_tts_to_pcm(ffmpeg, ha_convert(ffmpeg, source, "mp3", "wav"))


async def agreement_db(ffmpeg: str, data: bytes) -> float:
    """How close the candidate's output is to ffmpeg's (signal to difference, dB)."""
    outputs = []
    for convert in (baseline, candidate):
        pcm = b"".join([chunk async for chunk in convert(ffmpeg, chunks(data))])
        outputs.append(np.frombuffer(pcm, np.int16).astype(np.float64))
    n = min(len(outputs[0]), len(outputs[1]))
    reference, ours = outputs[0][:n], outputs[1][:n]
    return float(10 * np.log10(np.sum(reference**2) / max(np.sum((ours - reference) ** 2), 1e-9)))


async def run_case(
    ffmpeg: str, data: bytes, before: Converter = baseline, now: Converter = candidate
) -> dict[str, np.ndarray]:
    """Interleave both methods for ROUNDS rounds; return each one's per-round figures."""
    results: dict[str, list[tuple[float, ...]]] = {"before": [], "now": []}
    for _ in range(ROUNDS):
        results["before"].append(await measure(before, ffmpeg, data))
        results["now"].append(await measure(now, ffmpeg, data))
    return {name: np.array(rows) for name, rows in results.items()}


def ratios(base: np.ndarray, ours: np.ndarray) -> str:
    """now / before for the first chunk, the total and the CPU time."""
    return f"{ours[0] / base[0]:.3f} / {ours[1] / base[1]:.3f} / {ours[2] / base[2]:.3f}"


def cold_design_ms(rates: list[int]) -> list[str]:
    """Time to design each rate's filter the first time (cached afterwards)."""
    shown = []
    for rate in rates:
        start = time.perf_counter()
        _plan(rate, OUT_RATE)
        shown.append(f"{rate} Hz {(time.perf_counter() - start) * 1e3:.2f} ms")
    return shown


async def main() -> None:
    """Measure every case and print the table."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise SystemExit("ffmpeg is not installed: the baseline cannot be measured")
    rates = [16000, 22050, 44100, 48000]
    design = cold_design_ms(rates)
    cases: list[tuple[str, bytes, bool]] = []
    source = ""
    for rate in rates:
        pcm, source = speech(rate, SECONDS)
        cases.append((f"WAV {rate / 1000:g} kHz", wav_bytes(pcm, rate), True))
    pcm, _ = speech(22050, SECONDS)
    cases.append(("MP3 22.05 kHz", mp3_bytes(ffmpeg, pcm, 22050), False))
    rows = []
    for name, data, in_process in cases:
        figures = await run_case(ffmpeg, data)
        base = np.median(figures["before"], axis=0)
        ours = np.median(figures["now"], axis=0)
        steps = figures["now"][:, 3]
        # The longest step holds the loop only in-process; through ffmpeg it is waiting.
        step = f"{np.median(steps):.2f} ({steps.max():.2f})" if in_process else "(waits)"
        agreement = await agreement_db(ffmpeg, data)
        agree = "identical" if agreement > 150 else f"{agreement:.1f}"
        out_ms = ours[4] / 2 / OUT_RATE * 1e3
        base_ms = base[4] / 2 / OUT_RATE * 1e3
        # Goal: in-process at least 5x faster to first chunk and in CPU; MP3 no worse than 1.2x.
        if in_process:
            ok = base[0] / ours[0] >= 5 and base[2] / ours[2] >= 5 and np.median(steps) < 5
        else:
            ok = ours[0] / base[0] <= 1.2 and ours[2] / base[2] <= 1.2
        rows += [
            [name, "ffmpeg process", f"{base[0]:.1f}", f"{base[1]:.1f}", f"{base[2]:.1f}",
             "-", f"{base_ms:.0f}", "", "", ""],
            ["", "async_tts_to_pcm", f"{ours[0]:.2f}", f"{ours[1]:.1f}", f"{ours[2]:.1f}",
             step, f"{out_ms:.0f}", agree, ratios(base, ours), verdict(ok)],
        ]  # fmt: skip
    chain_rows = []
    chains = [
        ("WAV engine 22.05 kHz (Piper)", cases[1][1], wav_engine_before, candidate,
         "HA ffmpeg WAV->MP3 + ffmpeg MP3->PCM", "as sent, in-process"),
        ("MP3 engine 22.05 kHz", cases[-1][1], baseline, mp3_engine_now,
         "as sent, ffmpeg MP3->PCM", "HA ffmpeg MP3->WAV + in-process"),
    ]  # fmt: skip
    for name, data, before, now, before_name, now_name in chains:
        figures = await run_case(ffmpeg, data, before, now)
        base = np.median(figures["before"], axis=0)
        ours = np.median(figures["now"], axis=0)
        if before is wav_engine_before:
            ok = base[0] / ours[0] >= 5 and base[2] / ours[2] >= 5
        else:
            ok = ours[0] / base[0] <= 1.2 and ours[2] / base[2] <= 1.2
        chain_rows += [
            [name, f"before: {before_name}", f"{base[0]:.1f}", f"{base[1]:.1f}",
             f"{base[2]:.1f}", "", ""],
            ["", f"now: {now_name}", f"{ours[0]:.2f}", f"{ours[1]:.1f}", f"{ours[2]:.1f}",
             ratios(base, ours), verdict(ok)],
        ]  # fmt: skip
    print(f"signal: {source}, {SECONDS:g} s; {ROUNDS} interleaved rounds, medians")
    print(f"first filter design (once per rate, cached): {', '.join(design)}")
    print(table("TTS answer -> 24 kHz PCM16 mono",
                ["input", "method", "first chunk ms", "total ms", "CPU ms",
                 "longest step ms median (max)", "output ms", "vs ffmpeg output dB",
                 "ratio first / total / CPU", "result"], rows))  # fmt: skip
    print(
        "goals: WAV in-process >= 5x faster to the first chunk and in CPU, longest step (median"
        " of the rounds' longest) < 5 ms; MP3 (still ffmpeg) within 1.2x of the baseline.\n"
        "vs ffmpeg output: signal-to-difference of the two outputs (same length, no lag); they"
        " differ mostly in the transition band near the input's Nyquist frequency\n"
    )
    print(table("Whole chain as HA's TTS delivers the answer (before: no preferred format, HA "
                "converts non-MP3 answers to MP3; now: WAV preferred, HA converts non-WAV "
                "answers to WAV)",
                ["engine", "conversion", "first chunk ms", "total ms", "CPU ms",
                 "ratio first / total / CPU", "result"], chain_rows))  # fmt: skip
    print("goals: WAV engine >= 5x faster to the first chunk and in CPU; MP3 engine within 1.2x")


if __name__ == "__main__":
    asyncio.run(main())
