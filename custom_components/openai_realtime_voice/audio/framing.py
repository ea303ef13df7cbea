"""Cut a stream of PCM deltas of any size into exact, fixed-size frames."""

from __future__ import annotations

from collections.abc import Buffer

from .errors import AudioFormatError

_COMPACT_AT = 1 << 16
"""Consumed bytes kept before the buffer is compacted; bounds memory, keeps O(n) amortised."""


class FrameAssembler:
    """Collect deltas and hand out whole frames of `frame_bytes` each.

    Data is appended once to a bytearray and frames are sliced from a moving offset, so each
    byte is copied a constant number of times however small or large the deltas are.
    """

    __slots__ = ("_buffer", "_offset", "frame_bytes")

    def __init__(self, frame_bytes: int) -> None:
        """Create an empty assembler producing frames of `frame_bytes` (e.g. 2880 for 60 ms)."""
        if frame_bytes <= 0:
            raise AudioFormatError(f"frame size must be positive, not {frame_bytes}")
        self.frame_bytes = frame_bytes
        self._buffer = bytearray()
        self._offset = 0

    def __len__(self) -> int:
        """Return the bytes buffered but not yet handed out."""
        return len(self._buffer) - self._offset

    def push(self, data: Buffer) -> list[bytes]:
        """Append `data` and return every frame that is now complete (possibly none)."""
        buffer = self._buffer
        buffer += data
        size = self.frame_bytes
        offset = self._offset
        end = offset + (len(buffer) - offset) // size * size
        with memoryview(buffer) as view:
            frames = [bytes(view[i : i + size]) for i in range(offset, end, size)]
        if end >= _COMPACT_AT or end == len(buffer):
            del buffer[:end]
            end = 0
        self._offset = end
        return frames

    def flush(self) -> bytes | None:
        """Return the remainder zero-padded to a whole frame, or None when nothing is left."""
        remainder = len(self)
        if not remainder:
            return None
        frame = bytes(self._buffer[self._offset :]) + bytes(self.frame_bytes - remainder)
        self.clear()
        return frame

    def clear(self) -> None:
        """Drop everything buffered, e.g. on barge-in."""
        self._buffer.clear()
        self._offset = 0
