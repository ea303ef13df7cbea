"""Microphone audio from a device: Opus packets -> PCM at the target rate, in ~100 ms batches.

Realtime wants PCM16 24 kHz and the Assist pipeline 16 kHz; libopus decodes straight to
either rate, so no resampler runs here. Batching keeps the number of JSON events low.
`UplinkQueue` holds the batches (and the end of a manual turn) until they can be sent.
"""

from __future__ import annotations

import asyncio
from typing import Final

from ..audio import SAMPLE_WIDTH, OpusDecoder
from .latency import UplinkClock

BATCH_MS: Final = 100
"""Audio collected before one batch is handed on."""

UPLINK_QUEUE: Final = 50
"""Uplink batches (~100 ms each) waiting to be sent before the oldest are dropped; they also
hold what the user says while the Realtime session opens (the service takes 0.3-0.8 s)."""


class Uplink:
    """Decode one device's packets and return a batch whenever `BATCH_MS` is collected."""

    __slots__ = ("_batch", "_batch_bytes", "_decoder", "sample_rate")

    def __init__(self, sample_rate: int, device_frame_ms: int) -> None:
        """Decode at `sample_rate`; `device_frame_ms` is the device's packet duration."""
        self._decoder = OpusDecoder(sample_rate, device_frame_ms, name="uplink")
        self._batch = bytearray()
        self._batch_bytes = sample_rate * SAMPLE_WIDTH * BATCH_MS // 1000
        self.sample_rate = sample_rate

    def feed(self, packet: bytes) -> bytes | None:
        """Decode one packet; return a full batch when one is ready, else None."""
        self._batch += self._decoder.decode(packet)
        if len(self._batch) < self._batch_bytes:
            return None
        batch = bytes(self._batch)
        self._batch.clear()
        return batch

    def flush(self) -> bytes | None:
        """Return the partial batch (at the end of a turn), if any."""
        if not self._batch:
            return None
        batch = bytes(self._batch)
        self._batch.clear()
        return batch

    def reset(self) -> None:
        """Forget buffered audio and decoder history (a new listening turn)."""
        self._batch.clear()
        self._decoder.reset()


class Commit:
    """Uplink marker: end the user's turn (manual mode)."""


type UplinkItem = bytes | Commit


class UplinkQueue:
    """A device's decoded speech waiting to be sent, bounded: the oldest batches go first.

    Each item is kept with when it arrived from the device (it may wait for a session), and
    `clock` remembers when the audio that was sent had arrived (for the latency figure).
    """

    def __init__(self, sample_rate: int, device_frame_ms: int, limit: int = UPLINK_QUEUE) -> None:
        """Decode at `sample_rate`; keep at most `limit` batches."""
        self._uplink = Uplink(sample_rate, device_frame_ms)
        self._queue: asyncio.Queue[tuple[UplinkItem, float]] = asyncio.Queue()
        self._loop = asyncio.get_running_loop()
        self._limit = limit
        self.clock = UplinkClock()
        self.dropped_batches = 0

    @property
    def queued(self) -> int:
        """Items waiting to be sent."""
        return self._queue.qsize()

    def feed(self, packet: bytes) -> None:
        """Decode one packet; queue a batch when one is complete."""
        if (batch := self._uplink.feed(packet)) is not None:
            self._put(batch)

    def end_turn(self) -> None:
        """Queue the partial batch and the end of the turn."""
        if (rest := self._uplink.flush()) is not None:
            self._put(rest)
        self._put(Commit())

    def reset(self) -> None:
        """A new listening turn: forget the partial batch and the decoder history."""
        self._uplink.reset()

    def take(self) -> list[UplinkItem]:
        """Everything not sent yet, oldest first, with the partial batch (for a handover)."""
        items: list[UplinkItem] = []
        while not self._queue.empty():
            items.append(self._queue.get_nowait()[0])
        if (rest := self._uplink.flush()) is not None:
            items.append(rest)
        return items

    async def get(self) -> tuple[UplinkItem, float]:
        """The next item and when it arrived."""
        return await self._queue.get()

    def _put(self, item: UplinkItem) -> None:
        queue = self._queue
        if isinstance(item, bytes) and queue.qsize() >= self._limit:
            queue.get_nowait()
            self.dropped_batches += 1
        queue.put_nowait((item, self._loop.time()))
