"""Read the header of a WAV stream as it arrives, to decide whether its audio can be used raw.

A streamed WAV (Home Assistant's Wyoming TTS, ffmpeg writing to a pipe) does not know its
length when the header is written: its `data` size is 0 or 0xFFFFFFFF, and the audio runs
to the end of the stream.
"""

from __future__ import annotations

from dataclasses import dataclass
import struct
from typing import Final

from .errors import AudioFormatError

WAVE_FORMAT_PCM: Final = 0x0001
WAVE_FORMAT_EXTENSIBLE: Final = 0xFFFE

_UNKNOWN_SIZES: Final = (0, 0xFFFFFFFF)
_FMT = struct.Struct("<HHIIHH")
_CHUNK = struct.Struct("<4sI")


@dataclass(frozen=True, slots=True)
class WavHeader:
    """What a WAV header says about the audio after it."""

    format_tag: int
    """WAVE_FORMAT_PCM for integer PCM (also when the header is WAVE_FORMAT_EXTENSIBLE)."""
    channels: int
    sample_rate: int
    bits: int
    data_offset: int
    """Where the audio starts in the stream."""
    data_size: int | None
    """Bytes of audio, or None when the writer did not know them (a streamed WAV)."""

    @property
    def is_pcm16_mono(self) -> bool:
        """Whether the audio is raw PCM16 mono."""
        return self.format_tag == WAVE_FORMAT_PCM and self.bits == 16 and self.channels == 1


def parse_wav_header(head: bytes) -> WavHeader | None:
    """Read the header from the first bytes of a stream, up to the start of the `data` chunk.

    Return None while `head` ends before the `data` chunk starts. Raise `AudioFormatError`
    when `head` is not a RIFF/WAVE stream or its `fmt ` chunk is missing or malformed.
    """
    if head[:4] != b"RIFF"[: len(head)] or head[8:12] != b"WAVE"[: max(0, len(head) - 8)]:
        raise AudioFormatError("not a RIFF/WAVE stream")
    position = 12
    fmt: tuple[int, int, int, int] | None = None
    while position + _CHUNK.size <= len(head):
        chunk_id, size = _CHUNK.unpack_from(head, position)
        body = position + _CHUNK.size
        if chunk_id == b"data":
            if fmt is None:
                raise AudioFormatError("WAV audio before its fmt chunk")
            known = None if size in _UNKNOWN_SIZES else size
            return WavHeader(*fmt, data_offset=body, data_size=known)
        if chunk_id == b"fmt ":
            if body + size > len(head):
                return None
            fmt = _read_fmt(head[body : body + size])
        position = body + size + (size & 1)  # chunks are padded to an even length
    return None


def _read_fmt(chunk: bytes) -> tuple[int, int, int, int]:
    """Return (format tag, channels, sample rate, bits per sample) of a `fmt ` chunk."""
    if len(chunk) < _FMT.size:
        raise AudioFormatError(f"WAV fmt chunk of {len(chunk)} bytes")
    tag, channels, rate, _byte_rate, _align, bits = _FMT.unpack_from(chunk)
    if tag == WAVE_FORMAT_EXTENSIBLE and len(chunk) >= 40:
        # WAVEFORMATEXTENSIBLE: the real format tag opens the SubFormat GUID at offset 24.
        (tag,) = struct.unpack_from("<H", chunk, 24)
    if channels == 0 or rate == 0:
        raise AudioFormatError(f"WAV fmt chunk with {channels} channels at {rate} Hz")
    return tag, channels, rate, bits
