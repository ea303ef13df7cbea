"""Test signals for the audio core tests."""

from __future__ import annotations

import numpy as np


def speech_like(rate: int, seconds: float, seed: int = 0) -> np.ndarray:
    """Return a voiced, amplitude-modulated harmonic signal as int16, band-limited below 4 kHz."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(rate * seconds)) / rate
    pitch = 140 + 30 * np.sin(2 * np.pi * 1.5 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    signal = sum(
        np.sin(k * phase + rng.uniform(0, 2 * np.pi)) / k
        for k in range(1, 20)
        if k * 170 < min(3800, rate / 2 * 0.8)
    )
    envelope = 0.55 + 0.45 * np.sin(2 * np.pi * 3 * t)
    out = signal * envelope
    return np.rint(out / np.abs(out).max() * 12000).astype(np.int16)
