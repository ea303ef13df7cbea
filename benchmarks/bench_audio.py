"""Uplink/downlink cost per 60 ms frame: our wrappers vs bare opuslib-next, side by side.

Run: `.venv/bin/python -m benchmarks.bench_audio`
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
import os
import time

import matplotlib as mpl

mpl.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from benchmarks import RESULTS, speech, table, verdict
from custom_components.openai_realtime_voice.audio import (
    FrameAssembler,
    OpusDecoder,
    OpusEncoder,
    Pacer,
    frame_bytes,
    load_opuslib,
)

ROUNDS = 15
FRAME_US = 60_000
DELTA_BYTES = 4800  # ~100 ms deltas, like Realtime's response.output_audio.delta


def per_frame_us(run: Callable[[], int]) -> float:
    """Return the best-of-one-round cost in microseconds per frame of `run`."""
    start = time.perf_counter()
    frames = run()
    return (time.perf_counter() - start) / frames * 1e6


def interleaved(runs: dict[str, Callable[[], int]]) -> dict[str, float]:
    """Run the candidates alternately and keep each one's median per-frame cost."""
    samples: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(ROUNDS):
        for name, run in runs.items():
            samples[name].append(per_frame_us(run))
    return {name: float(np.median(values)) for name, values in samples.items()}


class InstantClock:
    """A clock whose sleeps return at once after moving time: measures CPU cost only."""

    def __init__(self) -> None:
        """Start at zero."""
        self.time = 0.0

    def now(self) -> float:
        """Return simulated time."""
        return self.time

    async def sleep_until(self, deadline: float) -> None:
        """Jump to the deadline."""
        self.time = max(self.time, deadline)
        await asyncio.sleep(0)


def pacer_cost(packets: list[bytes]) -> float:
    """Return the pacer's CPU cost per frame (push, schedule, send) in microseconds."""

    async def run() -> float:
        async def send(frame: bytes) -> None:
            """Discard the frame."""

        pacer = Pacer(send, clock=InstantClock())
        start = time.perf_counter()
        for packet in packets:
            pacer.push(packet)
        await pacer.drained()
        elapsed = time.perf_counter() - start
        await pacer.close()
        return elapsed / len(packets) * 1e6

    return min(asyncio.run(run()) for _ in range(5))


def main() -> None:
    """Measure, print the table and write the plot."""
    opuslib = load_opuslib()
    uplink_pcm, source = speech(16000, 12.0)
    downlink_pcm, _ = speech(24000, 12.0)

    # Encode the uplink as a xiaozhi device does: 16 kHz, 60 ms, AUDIO, auto bitrate, DTX.
    device = OpusEncoder(16000, 60, application="audio", bitrate=None, complexity=0, dtx=True)
    size = frame_bytes(16000, 60)
    up_bytes = uplink_pcm.tobytes()
    packets = [device.encode(up_bytes[i : i + size]) for i in range(0, len(up_bytes), size)]

    def ours_decode() -> int:
        decoder = OpusDecoder(24000, 60)
        for packet in packets:
            decoder.decode(packet)
        return len(packets)

    def bare_decode() -> int:
        decoder = opuslib.Decoder(24000, 1)
        for packet in packets:
            decoder.decode(packet, 1440)
        return len(packets)

    down_bytes = downlink_pcm.tobytes()
    deltas = [down_bytes[i : i + DELTA_BYTES] for i in range(0, len(down_bytes), DELTA_BYTES)]
    frame = frame_bytes(24000, 60)
    frames = [down_bytes[i : i + frame] for i in range(0, len(down_bytes) - frame + 1, frame)]

    def ours_encode() -> int:
        encoder = OpusEncoder(24000, 60)
        assembler = FrameAssembler(frame)
        count = 0
        for delta in deltas:
            for pcm in assembler.push(delta):
                encoder.encode(pcm)
                count += 1
        return count

    def bare_encode() -> int:
        encoder = opuslib.Encoder(24000, 1, opuslib.APPLICATION_AUDIO)
        encoder.bitrate = 24000
        encoder.complexity = 5
        for pcm in frames:
            encoder.encode(pcm, 1440)
        return len(frames)

    costs = interleaved(
        {
            "uplink ours": ours_decode,
            "uplink bare": bare_decode,
            "downlink ours": ours_encode,
            "downlink bare": bare_encode,
        }
    )
    pacing = pacer_cost(packets)
    up_ratio = costs["uplink ours"] / costs["uplink bare"]
    down_ratio = costs["downlink ours"] / costs["downlink bare"]
    stream_us = costs["uplink ours"] + costs["downlink ours"] + pacing
    share = stream_us / FRAME_US * 100
    dtx = sum(len(p) <= 2 for p in packets)
    rows = [
        ["uplink decode 16k->24k (us/frame)", f"{costs['uplink ours']:.1f}",
         f"{costs['uplink bare']:.1f}", f"{up_ratio:.2f}x", "<= 1.3x", verdict(up_ratio <= 1.3)],
        ["downlink frame+encode 24k (us/frame)", f"{costs['downlink ours']:.1f}",
         f"{costs['downlink bare']:.1f}", f"{down_ratio:.2f}x", "<= 1.3x",
         verdict(down_ratio <= 1.3)],
        ["pacer (us/frame)", f"{pacing:.1f}", "-", "-", "-", "-"],
        ["one device stream (share of a core)", f"{share:.3f}%", "-", "-", "< 0.5%",
         verdict(share < 0.5)],
    ]  # fmt: skip
    print(f"audio: {source}; {len(packets)} uplink packets ({dtx} DTX), "
          f"{len(frames)} downlink frames; median of {ROUNDS} interleaved rounds; "
          f"CPU: {os.cpu_count()} cores")  # fmt: skip
    print(table("Audio path cost per 60 ms frame",
                ["measure", "ours", "bare opuslib", "ratio", "goal", "result"], rows))  # fmt: skip

    RESULTS.mkdir(exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, 4))
    labels = ["uplink decode", "downlink encode"]
    ours = [costs["uplink ours"], costs["downlink ours"]]
    bare = [costs["uplink bare"], costs["downlink bare"]]
    x = np.arange(2)
    ax.bar(x - 0.2, bare, 0.4, label="bare opuslib-next")
    ax.bar(x + 0.2, ours, 0.4, label="audio core")
    ax.set_xticks(x, labels)
    ax.set_ylabel("microseconds per 60 ms frame")
    ax.set_title(f"Per-frame cost; one stream = {share:.3f}% of a core")
    ax.legend()
    fig.tight_layout()
    out = RESULTS / "audio_cost.png"
    fig.savefig(out, dpi=110)
    print(f"plot: {out}")


if __name__ == "__main__":
    main()
