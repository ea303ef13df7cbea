"""Tests for the PCM constants and frame-size helpers."""

from __future__ import annotations

import pytest

from custom_components.openai_realtime_voice.audio import (
    AudioFormatError,
    frame_bytes,
    frame_samples,
    pcm_duration_ms,
)
from custom_components.openai_realtime_voice.audio.pcm import check_opus_format


@pytest.mark.parametrize(
    ("rate", "ms", "samples"),
    [(24000, 60, 1440), (16000, 60, 960), (8000, 10, 80), (48000, 20, 960), (12000, 40, 480)],
)
def test_frame_samples(rate: int, ms: int, samples: int) -> None:
    """Frame sizes follow rate x duration."""
    assert frame_samples(rate, ms) == samples
    assert frame_bytes(rate, ms) == samples * 2


@pytest.mark.parametrize(("rate", "ms"), [(0, 60), (24000, 0), (11025, 1), (-8000, 10)])
def test_frame_samples_rejects_fractional_or_invalid(rate: int, ms: int) -> None:
    """A frame that is not a whole, positive number of samples is a typed error."""
    with pytest.raises(AudioFormatError):
        frame_samples(rate, ms)


def test_duration() -> None:
    """Byte counts convert back to milliseconds."""
    assert pcm_duration_ms(24000, 2880) == 60.0


@pytest.mark.parametrize(("rate", "ms"), [(44100, 20), (24000, 30), (16000, 5)])
def test_check_opus_format(rate: int, ms: int) -> None:
    """Rates and durations outside libopus' set are rejected."""
    with pytest.raises(AudioFormatError):
        check_opus_format(rate, ms)
