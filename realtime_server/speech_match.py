"""Which known phrase a recording says, for the offline Realtime server's scenario mode.

The offline server has no speech recognition. What it hears is what `scripts/simulate --say`
synthesised with espeak-ng, carried over Opus and resampled by Home Assistant; the scenario's
phrases are synthesised with the same voice when it loads. Comparing the two as sequences of
log band energies (10 ms frames, 24 bands from 100 Hz to 7 kHz, each recording's mean removed)
aligned by dynamic time warping tells the phrases apart, e.g. "turn on" from "turn off" the
kitchen light; a recording far from every phrase (another voice, other words) matches none.
"""

from __future__ import annotations

import itertools

import numpy as np
from numpy.typing import NDArray

RATE = 24000
FRAME = RATE * 25 // 1000
HOP = RATE * 10 // 1000
FFT = 1024
BAND_EDGES = np.geomspace(100.0, 7000.0, 25)
SILENCE = 1e-3
"""Frames quieter than this fraction of the loudest one are left out (pauses, silence)."""
MATCH_DISTANCE = 5.0
"""The largest mean frame distance a match may have. Measured: the same sentence through Opus
scores about 3, a sentence that differs in one word about 3.3-3.5 (the best one wins), and
other words 7 or more."""

Features = NDArray[np.float64]


def features(pcm: bytes) -> Features:
    """Log band energies of the voiced 10 ms frames of 24 kHz PCM16 (empty for silence)."""
    samples = np.frombuffer(pcm[: len(pcm) // 2 * 2], "<i2").astype(np.float64) / 32768
    if len(samples) < FRAME:
        return np.zeros((0, len(BAND_EDGES) - 1))
    count = 1 + (len(samples) - FRAME) // HOP
    frames = samples[np.arange(FRAME)[None, :] + HOP * np.arange(count)[:, None]]
    power = np.abs(np.fft.rfft(frames * np.hanning(FRAME), FFT)) ** 2
    freqs = np.fft.rfftfreq(FFT, 1 / RATE)
    bands = np.stack(
        [
            power[:, (freqs >= low) & (freqs < high)].sum(axis=1)
            for low, high in itertools.pairwise(BAND_EDGES)
        ],
        axis=1,
    )
    energy = bands.sum(axis=1)
    voiced = bands[energy > energy.max() * SILENCE] if energy.max() > 0 else bands[:0]
    logs = np.log(voiced + 1e-10)
    return logs - logs.mean(axis=0) if len(logs) else logs


def distance(heard: Features, phrase: Features) -> float:
    """Mean frame distance along the best time alignment (dynamic time warping)."""
    if not len(heard) or not len(phrase):
        return float("inf")
    cost = np.sqrt(((heard[:, None, :] - phrase[None, :, :]) ** 2).sum(axis=-1))
    rows, cols = cost.shape
    acc = np.full((rows + 1, cols + 1), np.inf)
    acc[0, 0] = 0.0
    for i in range(1, rows + 1):
        # Within a row, each cell also depends on its left neighbour: one pass per row for the
        # diagonal and upper moves, then a running minimum for the horizontal ones.
        step = cost[i - 1] + np.minimum(acc[i - 1, 1:], acc[i - 1, :-1])
        row = acc[i]
        for j in range(1, cols + 1):
            row[j] = min(step[j - 1], cost[i - 1, j - 1] + row[j - 1])
    return float(acc[rows, cols] / (rows + cols))


def best_match(heard: bytes, phrases: list[Features]) -> tuple[int | None, float]:
    """The index of the phrase `heard` says (None if none is close enough) and its distance."""
    spoken = features(heard)
    scores = [distance(spoken, phrase) for phrase in phrases]
    if not scores:
        return None, float("inf")
    best = int(np.argmin(scores))
    return (best if scores[best] <= MATCH_DISTANCE else None), scores[best]
