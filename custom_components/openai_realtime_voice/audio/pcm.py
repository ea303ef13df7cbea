"""PCM16 mono constants and frame-size helpers shared by the codec, framing and pacing."""

from __future__ import annotations

from typing import Final

from .errors import AudioFormatError

SAMPLE_WIDTH: Final = 2
"""Bytes per sample: signed 16-bit little-endian, mono."""

REALTIME_SAMPLE_RATE: Final = 24000
"""Rate of OpenAI Realtime `audio/pcm` in both directions."""

DEVICE_SAMPLE_RATE: Final = 16000
"""Rate at which xiaozhi devices encode their microphone audio."""

DEFAULT_FRAME_MS: Final = 60
"""Frame duration xiaozhi devices use and expect by default."""

OPUS_SAMPLE_RATES: Final = (8000, 12000, 16000, 24000, 48000)
"""Rates libopus can encode and decode at."""

OPUS_FRAME_DURATIONS_MS: Final = (10, 20, 40, 60)
"""Frame durations accepted for device streams."""

MAX_OPUS_PACKET_MS: Final = 120
"""Longest duration a single Opus packet can carry."""


def frame_samples(sample_rate: int, frame_ms: int) -> int:
    """Return the samples in one mono frame, e.g. 1440 for 24 kHz and 60 ms."""
    samples, rest = divmod(sample_rate * frame_ms, 1000)
    if sample_rate <= 0 or frame_ms <= 0 or rest:
        raise AudioFormatError(
            f"{frame_ms} ms is not a whole number of samples at {sample_rate} Hz"
        )
    return samples


def frame_bytes(sample_rate: int, frame_ms: int) -> int:
    """Return the bytes in one PCM16 mono frame, e.g. 2880 for 24 kHz and 60 ms."""
    return frame_samples(sample_rate, frame_ms) * SAMPLE_WIDTH


def pcm_duration_ms(sample_rate: int, n_bytes: int) -> float:
    """Return the duration in milliseconds of `n_bytes` of PCM16 mono audio."""
    return n_bytes / SAMPLE_WIDTH * 1000 / sample_rate


def check_opus_format(sample_rate: int, frame_ms: int) -> None:
    """Raise `AudioFormatError` unless libopus supports this rate and frame duration."""
    if sample_rate not in OPUS_SAMPLE_RATES:
        raise AudioFormatError(f"Opus does not support {sample_rate} Hz")
    if frame_ms not in OPUS_FRAME_DURATIONS_MS:
        raise AudioFormatError(f"unsupported Opus frame duration {frame_ms} ms")
