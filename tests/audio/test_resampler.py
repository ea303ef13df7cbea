"""Tests for the streaming polyphase resampler."""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest

from custom_components.openai_realtime_voice.audio import (
    RESAMPLER_RATES,
    AudioFormatError,
    Resampler,
)
from custom_components.openai_realtime_voice.audio.resampler import design_filter
from tests.audio.signals import speech_like

PAIRS = [(a, b) for a, b in itertools.permutations(RESAMPLER_RATES, 2)]


def one_shot(in_rate: int, out_rate: int, pcm: bytes) -> np.ndarray:
    """Resample a whole buffer in one call."""
    resampler = Resampler(in_rate, out_rate)
    return np.frombuffer(resampler.process(pcm) + resampler.flush(), np.int16)


def tone(rate: int, freq: float, seconds: float = 0.5, amplitude: float = 16000) -> np.ndarray:
    """Return a sine as int16."""
    t = np.arange(int(rate * seconds)) / rate
    return np.rint(amplitude * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def level_db(signal: np.ndarray, freq: float, rate: int) -> float:
    """Return the level of `freq` in `signal` relative to int16 full scale (Hann window)."""
    x = signal.astype(np.float64)
    window = np.hanning(len(x))
    spectrum = np.abs(np.fft.rfft(x * window)) / (window.sum() / 2)
    bins = np.fft.rfftfreq(len(x), 1 / rate)
    near = np.abs(bins - freq) <= 3 * rate / len(x)
    return float(20 * np.log10(max(spectrum[near].max(), 1e-9) / 32768))


@pytest.mark.parametrize(("in_rate", "out_rate"), PAIRS)
def test_streaming_equals_one_shot(in_rate: int, out_rate: int) -> None:
    """Chunks of random sizes (odd byte counts included) give the one-shot result within 1 LSB."""
    pcm = speech_like(in_rate, 0.7, seed=3).tobytes()
    reference = one_shot(in_rate, out_rate, pcm)
    assert len(reference) == -(-len(pcm) // 2 * out_rate // in_rate)
    rng = random.Random(in_rate * 7 + out_rate)
    for _ in range(3):
        resampler = Resampler(in_rate, out_rate)
        parts: list[bytes] = []
        pos = 0
        while pos < len(pcm):
            size = rng.choice([1, 3, 17, 160, 961, 1920, 4801, 20000])
            parts.append(resampler.process(pcm[pos : pos + size]))
            pos += size
        parts.append(resampler.flush())
        streamed = np.frombuffer(b"".join(parts), np.int16)
        assert len(streamed) == len(reference)
        assert np.abs(streamed.astype(np.int32) - reference).max() <= 1


@pytest.mark.parametrize(("in_rate", "out_rate"), PAIRS)
def test_passband_tone_is_preserved(in_rate: int, out_rate: int) -> None:
    """A tone inside the passband comes out at the right level, aligned in time."""
    freq = 0.6 * min(in_rate, out_rate) / 2
    out = one_shot(in_rate, out_rate, tone(in_rate, freq).tobytes()).astype(np.float64)
    expected = tone(out_rate, freq).astype(np.float64)
    middle = slice(len(out) // 5, len(out) * 4 // 5)
    error = out[middle] - expected[middle]
    snr = 10 * np.log10(np.sum(expected[middle] ** 2) / (np.sum(error**2) + 1e-9))
    assert snr > 60


@pytest.mark.parametrize(("in_rate", "out_rate"), [p for p in PAIRS if p[0] > p[1]])
def test_downsampling_rejects_aliases(in_rate: int, out_rate: int) -> None:
    """Content above the output Nyquist frequency is suppressed by at least 80 dB."""
    freq = 0.5 * (out_rate / 2 + in_rate / 2)
    x = tone(in_rate, freq)
    out = one_shot(in_rate, out_rate, x.tobytes())
    alias = abs(out_rate * round(freq / out_rate) - freq)
    middle = out[len(out) // 5 : len(out) * 4 // 5]
    assert level_db(middle, alias, out_rate) - level_db(x, freq, in_rate) < -80


@pytest.mark.parametrize(("in_rate", "out_rate"), [p for p in PAIRS if p[0] < p[1]])
def test_upsampling_rejects_images(in_rate: int, out_rate: int) -> None:
    """Spectral images above the input Nyquist frequency are at least 80 dB down."""
    freq = 0.8 * in_rate / 2
    x = tone(in_rate, freq)
    out = one_shot(in_rate, out_rate, x.tobytes())
    middle = out[len(out) // 5 : len(out) * 4 // 5]
    # The image at in_rate - freq; above the output Nyquist frequency (22.05 -> 24 kHz) it
    # folds back into the output band.
    image = abs(out_rate * round((in_rate - freq) / out_rate) - (in_rate - freq))
    assert level_db(middle, freq, out_rate) == pytest.approx(level_db(x, freq, in_rate), abs=0.1)
    assert level_db(middle, image, out_rate) - level_db(x, freq, in_rate) < -80


@pytest.mark.parametrize(("in_rate", "out_rate"), PAIRS)
def test_filter_design_stopband(in_rate: int, out_rate: int) -> None:
    """The prototype filter's stopband is at least 80 dB below its passband gain."""
    design = design_filter(in_rate, out_rate)
    high_rate = in_rate * design.up
    response = np.abs(np.fft.rfft(design.taps, 1 << 18))
    freqs = np.fft.rfftfreq(1 << 18, 1 / high_rate)
    passband = response[freqs <= design.passband_hz]
    stopband = response[freqs >= design.stopband_hz]
    assert 20 * np.log10(stopband.max() / design.up) < -80
    assert 20 * np.log10(passband.max() / passband.min()) < 0.01


def test_same_rate_passes_through() -> None:
    """Equal rates return the input unchanged, odd bytes carried over."""
    resampler = Resampler(16000, 16000)
    assert resampler.process(b"\x01\x02\x03") == b"\x01\x02"
    assert resampler.process(b"\x04") == b"\x03\x04"
    assert resampler.flush() == b""


def test_small_chunks_and_flush_reset() -> None:
    """Tiny chunks return nothing until enough input arrived; flush starts a new stream."""
    resampler = Resampler(16000, 24000)
    assert resampler.process(b"") == b""
    assert resampler.process(b"\x10") == b""
    first = resampler.process(b"\x00" * 3) + resampler.flush()
    assert len(first) == 2 * 3  # two input samples -> three output samples
    again = resampler.process(b"\x10\x00\x00\x00") + resampler.flush()
    assert again == first
    resampler.process(b"\x10\x00" * 100)
    resampler.reset()
    assert resampler.flush() == b""


def test_full_scale_input_is_clipped_not_wrapped() -> None:
    """Overshoot near full scale saturates instead of wrapping around."""
    square = np.where(np.arange(4800) % 40 < 20, 32767, -32768).astype(np.int16)
    out = one_shot(48000, 16000, square.tobytes())
    assert out.max() == 32767
    assert out.min() == -32768


@pytest.mark.parametrize(("in_rate", "out_rate"), [(11025, 16000), (16000, 12000), (0, 8000)])
def test_unsupported_rates(in_rate: int, out_rate: int) -> None:
    """Rates outside 8/16/22.05/24/44.1/48 kHz are typed errors."""
    with pytest.raises(AudioFormatError):
        Resampler(in_rate, out_rate)
