"""Binary audio framing v1/v2/v3."""

from __future__ import annotations

import pytest

from custom_components.openai_realtime_voice.xiaozhi import (
    AudioPacket,
    BinaryFrameError,
    FrameType,
    decode_audio_frame,
    encode_audio_frame,
)


def test_v1_is_raw_opus() -> None:
    """Version 1 has no header."""
    assert encode_audio_frame(1, b"abc") == b"abc"
    assert decode_audio_frame(1, b"abc") == AudioPacket(b"abc")


def test_v2_header_layout() -> None:
    """version u16, type u16, reserved u32, timestamp u32, payload_size u32, big-endian."""
    frame = encode_audio_frame(2, b"xy", timestamp=0x01020304)
    assert frame == bytes.fromhex("0002 0000 00000000 01020304 00000002") + b"xy"
    assert decode_audio_frame(2, frame) == AudioPacket(b"xy", 0x01020304, FrameType.OPUS)


def test_v3_header_layout() -> None:
    """type u8, reserved u8, payload_size u16, big-endian."""
    frame = encode_audio_frame(3, b"xyz", frame_type=FrameType.JSON)
    assert frame == bytes.fromhex("01 00 0003") + b"xyz"
    assert decode_audio_frame(3, bytearray(frame)) == AudioPacket(b"xyz", 0, 1)


@pytest.mark.parametrize(
    ("version", "frame"),
    [
        (2, b"\x00" * 15),
        (3, b"\x00\x00\x00"),
        (2, bytes.fromhex("0002 0000 00000000 00000000 00000005") + b"abc"),
        (3, bytes.fromhex("00 00 0001") + b"ab"),
        (4, b"abc"),
    ],
)
def test_decode_errors(version: int, frame: bytes) -> None:
    """Truncated headers, size mismatches and unknown versions are typed errors."""
    with pytest.raises(BinaryFrameError):
        decode_audio_frame(version, frame)


def test_encode_errors() -> None:
    """Payloads or timestamps that do not fit the header are refused."""
    with pytest.raises(BinaryFrameError):
        encode_audio_frame(3, bytes(70000))
    with pytest.raises(BinaryFrameError):
        encode_audio_frame(2, b"", timestamp=-1)
    with pytest.raises(BinaryFrameError):
        encode_audio_frame(0, b"")
