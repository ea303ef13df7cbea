"""Binary audio frames: v1 raw Opus, v2 16-byte and v3 4-byte big-endian headers."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
import struct

from .errors import BinaryFrameError

_V2_HEADER = struct.Struct(">HHIII")  # version, type, reserved, timestamp, payload_size
_V3_HEADER = struct.Struct(">BBH")  # type, reserved, payload_size

V2_HEADER_SIZE = _V2_HEADER.size
V3_HEADER_SIZE = _V3_HEADER.size
MAX_V3_PAYLOAD = 0xFFFF


class FrameType(IntEnum):
    """Payload type in the v2/v3 header (the firmware ignores it on receive)."""

    OPUS = 0
    JSON = 1


@dataclass(frozen=True, slots=True)
class AudioPacket:
    """One Opus packet with the header fields that travelled with it (v2 has a timestamp)."""

    payload: bytes
    timestamp: int = 0
    frame_type: int = FrameType.OPUS


def encode_audio_frame(
    version: int, payload: bytes, *, timestamp: int = 0, frame_type: int = FrameType.OPUS
) -> bytes:
    """Wrap one Opus packet in the binary framing of protocol `version` (1, 2 or 3)."""
    if version == 1:
        return bytes(payload)
    if version == 2:
        if not 0 <= timestamp <= 0xFFFFFFFF:
            raise BinaryFrameError(f"timestamp {timestamp} does not fit in 32 bits")
        return _V2_HEADER.pack(2, frame_type, 0, timestamp, len(payload)) + payload
    if version == 3:
        if len(payload) > MAX_V3_PAYLOAD:
            raise BinaryFrameError(f"payload of {len(payload)} bytes exceeds the v3 limit")
        return _V3_HEADER.pack(frame_type, 0, len(payload)) + payload
    raise BinaryFrameError(f"unknown binary protocol version {version}")


def decode_audio_frame(version: int, frame: bytes | bytearray | memoryview) -> AudioPacket:
    """Unwrap one binary frame; a short header or a `payload_size` mismatch is an error.

    Like the firmware, the v2 `version` and the v2/v3 `type` fields are read but not enforced.
    """
    data = bytes(frame)
    if version == 1:
        return AudioPacket(data)
    if version == 2:
        if len(data) < V2_HEADER_SIZE:
            raise BinaryFrameError(f"v2 frame of {len(data)} bytes is shorter than its header")
        _, frame_type, _, timestamp, size = _V2_HEADER.unpack_from(data)
        header_size = V2_HEADER_SIZE
    elif version == 3:
        if len(data) < V3_HEADER_SIZE:
            raise BinaryFrameError(f"v3 frame of {len(data)} bytes is shorter than its header")
        frame_type, _, size = _V3_HEADER.unpack_from(data)
        timestamp = 0
        header_size = V3_HEADER_SIZE
    else:
        raise BinaryFrameError(f"unknown binary protocol version {version}")
    if size != len(data) - header_size:
        raise BinaryFrameError(
            f"payload_size {size} does not match the {len(data) - header_size} bytes received"
        )
    return AudioPacket(data[header_size:], timestamp, frame_type)
