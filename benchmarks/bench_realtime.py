"""Benchmark the Realtime client's event dispatch and per-second audio CPU cost.

Run: .venv/bin/python -m benchmarks.bench_realtime
Figures are compared with raw `json` + `base64` work on the same payloads (the floor).
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from typing import Any

from custom_components.openai_realtime_voice.realtime import (
    RealtimeClient,
    RealtimeEndpoint,
    SessionConfig,
)

CHUNK_MS = 20
BYTES_PER_MS = 48
SECONDS = 60


class _Sink:
    """Stands in for the socket so only the client's own work is measured."""

    async def send(self, data: str) -> None:
        """Drop the frame."""


def _delta_frames(count: int) -> list[str]:
    pcm = bytes(range(256)) * (CHUNK_MS * BYTES_PER_MS // 256) + bytes(
        CHUNK_MS * BYTES_PER_MS % 256
    )
    delta = base64.b64encode(pcm).decode()
    return [
        json.dumps(
            {
                "type": "response.output_audio.delta",
                "event_id": f"event_{i}",
                "response_id": "resp_1",
                "item_id": "item_1",
                "output_index": 0,
                "content_index": 0,
                "delta": delta,
            }
        )
        for i in range(count)
    ]


async def _dispatch(client: RealtimeClient, frames: list[str]) -> float:
    """Frames through the protocol core, as the link's receive loop feeds them."""
    start = time.process_time()
    for raw in frames:
        client.protocol.receive(raw)
    return time.process_time() - start


def _raw_decode(frames: list[str]) -> float:
    start = time.process_time()
    for raw in frames:
        base64.b64decode(json.loads(raw)["delta"])
    return time.process_time() - start


async def _append(client: RealtimeClient, chunks: list[bytes]) -> float:
    sink: Any = _Sink()
    start = time.process_time()
    for pcm in chunks:
        client.protocol.append_audio(pcm)
        for event in client.protocol.data_to_send():
            await client.link._send_on(sink, event)
    return time.process_time() - start


def _raw_append(chunks: list[bytes]) -> float:
    start = time.process_time()
    for pcm in chunks:
        json.dumps({"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm).decode()})
    return time.process_time() - start


async def main() -> None:
    """Print events/s and CPU ms per second of audio, with ratios to raw json+base64."""
    client = RealtimeClient(RealtimeEndpoint(api_key="k", model="gpt-realtime"), SessionConfig())
    count = SECONDS * 1000 // CHUNK_MS
    frames = _delta_frames(count)
    _open(client)
    client.protocol.receive(json.dumps({"type": "response.created", "response": {"id": "resp_1"}}))
    response = client.active_response
    assert response is not None
    drain = asyncio.create_task(_drain(response))
    dispatch_s = await _dispatch(client, frames)
    raw_s = _raw_decode(frames)
    chunks = [bytes(CHUNK_MS * BYTES_PER_MS)] * count
    append_s = await _append(client, chunks)
    raw_append_s = _raw_append(chunks)
    drain.cancel()
    print(f"audio deltas: {count} x {CHUNK_MS} ms ({SECONDS} s of audio)")
    print(
        f"dispatch: {count / dispatch_s:,.0f} events/s "
        f"(raw json+base64 {count / raw_s:,.0f}/s, ratio {dispatch_s / raw_s:.2f}x)"
    )
    per_second = (dispatch_s + append_s) / SECONDS * 1000
    raw_per_second = (raw_s + raw_append_s) / SECONDS * 1000
    print(
        f"CPU per second of streamed audio (append + deltas): {per_second:.3f} ms "
        f"(raw {raw_per_second:.3f} ms, ratio {per_second / raw_per_second:.2f}x)"
    )


def _open(client: RealtimeClient) -> None:
    """Take the protocol core through its setup exchange (no socket is involved)."""
    client.protocol.start_session(replay=False)
    for kind in ("session.created", "session.updated"):
        client.protocol.receive(json.dumps({"type": kind, "session": {}}))
    client.protocol.data_to_send()


async def _drain(response: Any) -> None:
    async for _event in response:
        pass


if __name__ == "__main__":
    asyncio.run(main())
