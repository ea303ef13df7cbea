"""Tests for reading a WAV header from the first bytes of a stream."""

from __future__ import annotations

import io
import struct
import wave

import pytest

from custom_components.openai_realtime_voice.audio import AudioFormatError
from custom_components.openai_realtime_voice.audio.wav import (
    WAVE_FORMAT_EXTENSIBLE,
    WAVE_FORMAT_PCM,
    WavHeader,
    parse_wav_header,
)

IEEE_FLOAT = 0x0003


def stdlib_wav(pcm: bytes, rate: int, channels: int = 1, width: int = 2) -> bytes:
    """A WAV file as Python's `wave` writes it (sizes known)."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(channels)
        writer.setsampwidth(width)
        writer.setframerate(rate)
        writer.writeframes(pcm)
    return buffer.getvalue()


def chunk(chunk_id: bytes, body: bytes) -> bytes:
    """A RIFF chunk, padded to an even length."""
    return struct.pack("<4sI", chunk_id, len(body)) + body + b"\0" * (len(body) & 1)


def fmt_body(tag: int, channels: int, rate: int, bits: int) -> bytes:
    """The 16 bytes of a plain `fmt ` chunk."""
    align = channels * bits // 8
    return struct.pack("<HHIIHH", tag, channels, rate, rate * align, align, bits)


def riff(*chunks: bytes, size: int = 0xFFFFFFFF) -> bytes:
    """A RIFF/WAVE stream of `chunks`."""
    return struct.pack("<4sI4s", b"RIFF", size, b"WAVE") + b"".join(chunks)


def test_stdlib_wav_with_known_size() -> None:
    """A file-like WAV: PCM16 mono, 22.05 kHz, audio right after the 44-byte header."""
    data = stdlib_wav(bytes(882), 22050)
    assert parse_wav_header(data) == WavHeader(WAVE_FORMAT_PCM, 1, 22050, 16, 44, 882)
    assert parse_wav_header(data).is_pcm16_mono  # type: ignore[union-attr]


@pytest.mark.parametrize("size", [0, 0xFFFFFFFF])
def test_streamed_wav_has_no_size(size: int) -> None:
    """Wyoming writes 0 frames, ffmpeg to a pipe 0xFFFFFFFF: the audio runs to the end."""
    data = riff(chunk(b"fmt ", fmt_body(1, 1, 16000, 16)), struct.pack("<4sI", b"data", size))
    header = parse_wav_header(data + b"\x01\x02")
    assert header is not None
    assert header.data_size is None
    assert header.data_offset == len(data)


def test_every_prefix_of_the_header_asks_for_more() -> None:
    """Until the `data` chunk starts, the answer is None, never an error."""
    data = riff(
        chunk(b"LIST", b"INFOISFT\x05\0\0\0Lavf\0"),  # odd length: padded
        chunk(b"fmt ", fmt_body(1, 1, 48000, 16)),
        chunk(b"fact", b"\0\0\0\0"),
        struct.pack("<4sI", b"data", 0),
    )
    for end in range(len(data)):
        assert parse_wav_header(data[:end]) is None, end
    header = parse_wav_header(data)
    assert header == WavHeader(WAVE_FORMAT_PCM, 1, 48000, 16, len(data), None)


def test_extensible_format_reads_its_subformat() -> None:
    """WAVE_FORMAT_EXTENSIBLE names the real format in its SubFormat GUID."""
    guid_tail = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
    base = fmt_body(WAVE_FORMAT_EXTENSIBLE, 1, 44100, 16)
    pcm = base + struct.pack("<HHI", 22, 16, 4) + struct.pack("<H", 1) + guid_tail
    floats = base + struct.pack("<HHI", 22, 32, 4) + struct.pack("<H", IEEE_FLOAT) + guid_tail
    header = parse_wav_header(riff(chunk(b"fmt ", pcm), chunk(b"data", b"")))
    assert header is not None
    assert header.is_pcm16_mono
    header = parse_wav_header(riff(chunk(b"fmt ", floats), chunk(b"data", b"")))
    assert header is not None
    assert header.format_tag == IEEE_FLOAT
    assert not header.is_pcm16_mono


@pytest.mark.parametrize(
    ("tag", "channels", "bits"),
    [(IEEE_FLOAT, 1, 32), (WAVE_FORMAT_PCM, 2, 16), (WAVE_FORMAT_PCM, 1, 8)],
)
def test_other_formats_are_read_but_not_pcm16_mono(tag: int, channels: int, bits: int) -> None:
    """Float, stereo and 8-bit WAVs parse; they are not raw PCM16 mono."""
    data = riff(chunk(b"fmt ", fmt_body(tag, channels, 22050, bits)), chunk(b"data", b""))
    header = parse_wav_header(data)
    assert header is not None
    assert (header.format_tag, header.channels, header.bits) == (tag, channels, bits)
    assert not header.is_pcm16_mono


@pytest.mark.parametrize(
    ("head", "message"),
    [
        (b"ID3\x04\0\0\0\0\0\0", "not a RIFF/WAVE stream"),  # an MP3
        (b"OggS", "not a RIFF/WAVE stream"),
        (b"RIFF\0\0\0\0AVI ", "not a RIFF/WAVE stream"),
        (riff(chunk(b"data", b"\0\0")), "WAV audio before its fmt chunk"),
        (riff(chunk(b"fmt ", b"\1\0\1\0")), "WAV fmt chunk of 4 bytes"),
        (riff(chunk(b"fmt ", fmt_body(1, 0, 16000, 16))), "0 channels"),
        (riff(chunk(b"fmt ", fmt_body(1, 1, 0, 16))), "at 0 Hz"),
    ],
)
def test_not_a_readable_wav(head: bytes, message: str) -> None:
    """Other containers and broken headers are typed errors as soon as they show."""
    with pytest.raises(AudioFormatError, match=message):
        parse_wav_header(head)
