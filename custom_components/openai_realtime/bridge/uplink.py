"""Microphone audio from a device: Opus packets -> PCM at the target rate, in ~100 ms batches.

Realtime wants PCM16 24 kHz and the Assist pipeline 16 kHz; libopus decodes straight to
either rate, so no resampler runs here. Batching keeps the number of JSON events low.
"""

from __future__ import annotations

from typing import Final

from ..audio import SAMPLE_WIDTH, OpusDecoder

BATCH_MS: Final = 100
"""Audio collected before one batch is handed on."""


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
