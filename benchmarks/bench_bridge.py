"""Latency the speech bridge adds on each side, against bare Opus encode/decode in the same run.

- downlink: a Realtime audio delta (60 ms of 24 kHz PCM) enters `Downlink.audio()` -> the Opus
  packet reaches the device link (framing, encoding, the pacer's hand-off; no pacing wait).
- reply: the service creates a response whose first audio delta (60 ms) comes with it ->
  the first Opus packet reaches the device link through the `Speaker` (the reply's task, its
  response stream, `tts start`, framing, encoding, the pacer's hand-off).
- uplink: a device packet enters `Uplink.feed()` -> the `input_audio_buffer.append` event text
  is ready to send (decoding at 24 kHz, ~100 ms batching, base64 and JSON).

Run: `.venv/bin/python -m benchmarks.bench_bridge`
"""

from __future__ import annotations

import asyncio
import base64
from functools import partial
import gc
import json
import time
from typing import Any

import numpy as np

from custom_components.openai_realtime_voice.audio import OpusDecoder, OpusEncoder, load_opuslib
from custom_components.openai_realtime_voice.bridge import Downlink, Speaker, Uplink
from custom_components.openai_realtime_voice.realtime import AudioDelta, RealtimeResponse

ROUNDS = 2000
GOAL_MS = 10.0


class _Session:
    speaking = False
    listening = False
    listen_mode = None

    def send_tts_start(self) -> None:
        self.speaking = True

    def send_tts_stop(self) -> None:
        self.speaking = False

    def send_sentence(self, text: str) -> None:
        """Unused."""

    def send_emotion(self, emotion: str, text: str | None = None) -> None:
        """Unused."""

    def send_stt(self, text: str) -> None:
        """Unused."""

    def send_alert(self, status: str, message: str, emotion: str) -> None:
        """Unused."""


class _Link:
    """A device link that timestamps every packet it is given."""

    def __init__(self) -> None:
        self.session = _Session()
        self.closed = False
        self.arrived: asyncio.Future[float] | None = None

    async def flush(self) -> None:
        """Nothing to transmit."""

    async def send_audio(self, opus_packet: bytes) -> bool:
        if self.arrived is not None and not self.arrived.done():
            self.arrived.set_result(time.perf_counter())
        return True


def _speechlike(ms: int, rate: int) -> bytes:
    t = np.arange(rate * ms // 1000) / rate
    wave = np.sin(2 * np.pi * 180 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
    noise = np.random.default_rng(1).normal(0, 0.05, len(t))
    return ((wave + noise) * 9000).astype("<i2").tobytes()


async def downlink_ms() -> list[float]:
    """Delta in -> packet out at the start of a reply (the pre-buffer sends at once).

    Each round uses a fresh downlink (created outside the timed part), so the figure is the
    bridge's processing, not the real-time pacing that follows the pre-buffer by design.
    """
    delta = _speechlike(60, 24000)
    loop = asyncio.get_running_loop()
    samples = []
    for _ in range(ROUNDS):
        link = _Link()
        downlink = Downlink(link, sample_rate=24000, frame_ms=60)  # type: ignore[arg-type]
        await downlink.start()
        link.arrived = loop.create_future()
        start = time.perf_counter()
        downlink.audio(delta)
        samples.append((await link.arrived - start) * 1000)
        await downlink.close()
    return samples


class _Bridge:
    """The router's part a `Speaker` uses, without Home Assistant (tasks start eagerly, as
    `ConfigEntry.async_create_background_task` starts them)."""

    def __init__(self, link: _Link) -> None:
        self.connection = link

    def spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        return asyncio.Task(coro, name=name, eager_start=True)

    def set_phase(self, phase: Any) -> None:
        """Not followed here."""


async def reply_ms() -> list[float]:
    """Response created with its first delta -> first packet out, through the `Speaker`.

    Each round uses a fresh speaker (made outside the timed part, its garbage collected there
    too), as `downlink_ms` does.
    """
    delta = _speechlike(60, 24000)
    loop = asyncio.get_running_loop()
    samples = []
    for index in range(ROUNDS):
        link = _Link()
        speaker = Speaker(_Bridge(link))  # type: ignore[arg-type]
        speaker.open(sample_rate=24000, frame_ms=60, waits_for_playback=True, aec=False)
        response = RealtimeResponse(f"resp_{index}")
        link.arrived = loop.create_future()
        gc.collect(1)
        start = time.perf_counter()
        speaker.queue_reply(response, partial(_play, speaker, response), lambda _: None)
        response.push(AudioDelta(delta, "item"))
        samples.append((await link.arrived - start) * 1000)
        response.finish("completed")
        await speaker.close()
    return samples


async def _play(speaker: Speaker, response: RealtimeResponse) -> None:
    await speaker.start_reply(response)
    await speaker.stream(response)


def uplink_ms() -> list[float]:
    """Packet in -> append event ready, measured on packets that complete a batch."""
    encoder = OpusEncoder(16000, 60, application="audio", bitrate=None, complexity=0, dtx=True)
    pcm = _speechlike(60 * ROUNDS, 16000)
    packets = [encoder.encode(pcm[i : i + 1920]) for i in range(0, len(pcm), 1920)]
    uplink = Uplink(24000, 60)
    samples = []
    for packet in packets:
        start = time.perf_counter()
        if (batch := uplink.feed(packet)) is not None:
            event = {"type": "input_audio_buffer.append", "audio": base64.b64encode(batch).decode()}
            json.dumps(event)
            samples.append((time.perf_counter() - start) * 1000)
    return samples


def bare_ms() -> tuple[list[float], list[float]]:
    """Bare per-frame encode (24 kHz) and decode (16 kHz packet -> 24 kHz) for comparison."""
    encoder = OpusEncoder(24000, 60)
    frame = _speechlike(60, 24000)
    enc = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        encoder.encode(frame)
        enc.append((time.perf_counter() - start) * 1000)
    packet = OpusEncoder(16000, 60).encode(_speechlike(60, 16000))
    decoder = OpusDecoder(24000, 60)
    dec = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        decoder.decode(packet)
        dec.append((time.perf_counter() - start) * 1000)
    return enc, dec


def _pct(samples: list[float]) -> tuple[float, float]:
    return float(np.percentile(samples, 50)), float(np.percentile(samples, 95))


async def main() -> dict[str, Any]:
    """Measure and print the table."""
    load_opuslib()
    down = await downlink_ms()
    reply = await reply_ms()
    up = uplink_ms()
    enc, dec = bare_ms()
    rows = [
        ("downlink: delta in -> Opus frame out", _pct(down), _pct(enc)),
        ("reply: response created -> Opus frame out", _pct(reply), _pct(enc)),
        ("uplink: device frame in -> append out", _pct(up), _pct(dec)),
    ]
    print(f"{'path':42} {'p50 ms':>8} {'p95 ms':>8} {'bare p95':>9} {'ratio':>6}")
    worst = 0.0
    for name, (p50, p95), (_, bare95) in rows:
        ratio = p95 / bare95 if bare95 else float("inf")
        worst = max(worst, p95)
        print(f"{name:42} {p50:8.3f} {p95:8.3f} {bare95:9.3f} {ratio:6.1f}x")
    print(f"goal p95 < {GOAL_MS} ms: {'met' if worst < GOAL_MS else 'MISSED'}")
    print("(uplink bare = one packet decoded; a batch holds about two 60 ms packets)")
    return {"rows": rows}


if __name__ == "__main__":
    asyncio.run(main())
