"""Benchmarks for the audio core; run each with `python -m benchmarks.<name>`.

Shared helpers: speech-like test audio (espeak-ng + sox, or a synthetic fallback) and a
table printer with PASS/MISS against each goal.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
import shutil
import subprocess
import tempfile

import numpy as np

RESULTS = Path(__file__).parent / "results"

SPEECH_TEXT = (
    "Good evening. The living room lights are now off, and the front door is locked. "
    "Tomorrow will be cloudy with a high of fourteen degrees and light rain after noon. "
    "Would you like me to set an alarm for seven thirty, or play some quiet music?"
)


def speech(rate: int, seconds: float = 10.0) -> tuple[np.ndarray, str]:
    """Return about `seconds` of speech at `rate` as int16, and where it came from."""
    with tempfile.TemporaryDirectory() as tmp:
        wav, raw = Path(tmp) / "speech.wav", Path(tmp) / "speech.raw"
        try:
            if not (shutil.which("espeak-ng") and shutil.which("sox")):
                raise FileNotFoundError("espeak-ng or sox missing")
            subprocess.run(["espeak-ng", "-w", str(wav), SPEECH_TEXT], check=True)
            subprocess.run(
                ["sox", str(wav), "-r", str(rate), "-c", "1", "-b", "16", "-e", "signed", str(raw)],
                check=True,
            )
            voice = np.fromfile(raw, dtype="<i2")
            source = "espeak-ng + sox"
        except OSError, subprocess.CalledProcessError:
            voice = synthetic_voice(rate, 8.0)
            source = "synthetic voice-like signal"
    repeats = int(np.ceil(seconds * rate / len(voice)))
    return np.tile(voice, repeats)[: int(seconds * rate)], source


def synthetic_voice(rate: int, seconds: float) -> np.ndarray:
    """Return a gliding harmonic signal with syllable-rate envelope, as int16."""
    t = np.arange(int(rate * seconds)) / rate
    pitch = 130 + 40 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    harmonics = sum(np.sin(k * phase) / k for k in range(1, 30) if k * 170 < rate / 2 * 0.9)
    envelope = np.clip(np.sin(2 * np.pi * 2.5 * t), 0, None) ** 0.5
    x = harmonics * envelope
    return np.rint(x / np.abs(x).max() * 14000).astype(np.int16)


def table(title: str, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Format rows as a fixed-width text table."""
    cells = [[str(c) for c in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [title, "  ".join(h.ljust(w) for h, w in zip(cells[0], widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells[1:]]
    return "\n".join(lines)


def verdict(ok: bool) -> str:
    """Return PASS or MISS."""
    return "PASS" if ok else "MISS"
