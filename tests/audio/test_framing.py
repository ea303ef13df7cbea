"""Tests for the PCM frame assembler."""

from __future__ import annotations

import random

import pytest

from custom_components.openai_realtime_voice.audio import AudioFormatError, FrameAssembler
from custom_components.openai_realtime_voice.audio.framing import _COMPACT_AT


def test_exact_frames_from_random_deltas() -> None:
    """Deltas of any size come out as exact frames, in order, with nothing lost."""
    rng = random.Random(5)
    data = rng.randbytes(200_000)
    assembler = FrameAssembler(2880)
    frames: list[bytes] = []
    pos = 0
    while pos < len(data):
        size = rng.choice([1, 2, 7, 960, 2880, 2881, 9000, 40000])
        frames += assembler.push(data[pos : pos + size])
        pos += size
    assert all(len(f) == 2880 for f in frames)
    tail = assembler.flush()
    assert tail is not None
    joined = b"".join(frames) + tail
    assert joined[: len(data)] == data
    assert joined[len(data) :] == bytes(len(joined) - len(data))
    assert len(assembler) == 0


def test_flush_pads_with_zeros_and_empties() -> None:
    """The tail is zero-padded to a whole frame; flushing again gives nothing."""
    assembler = FrameAssembler(4)
    assert assembler.push(b"\x01\x02\x03\x04\x05\x06") == [b"\x01\x02\x03\x04"]
    assert len(assembler) == 2
    assert assembler.flush() == b"\x05\x06\x00\x00"
    assert assembler.flush() is None


def test_memoryview_and_bytearray_input() -> None:
    """Any buffer is accepted."""
    assembler = FrameAssembler(2)
    assert assembler.push(memoryview(b"abc")) == [b"ab"]
    assert assembler.push(bytearray(b"d")) == [b"cd"]


def test_clear_drops_buffered_audio() -> None:
    """Barge-in clears what was buffered."""
    assembler = FrameAssembler(10)
    assembler.push(b"12345")
    assembler.clear()
    assert len(assembler) == 0
    assert assembler.flush() is None


def test_offset_compaction_keeps_memory_bounded() -> None:
    """Consumed bytes are released once the offset passes the compaction threshold."""
    assembler = FrameAssembler(3)
    for _ in range(_COMPACT_AT // 2):
        assembler.push(b"\x00\x01\x02\x03")
    assert len(assembler._buffer) < _COMPACT_AT + 3
    assert len(assembler) == (_COMPACT_AT // 2 * 4) % 3


@pytest.mark.parametrize("size", [0, -1])
def test_invalid_frame_size(size: int) -> None:
    """A non-positive frame size is a typed error."""
    with pytest.raises(AudioFormatError):
        FrameAssembler(size)
