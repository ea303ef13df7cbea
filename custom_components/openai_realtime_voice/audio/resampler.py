"""Streaming polyphase windowed-sinc resampler for PCM16 mono between 8 and 48 kHz.

The ratio out/in is reduced to L/M. Conceptually the input is upsampled by L, low-pass
filtered by a Kaiser-windowed sinc (cut-off below the lower Nyquist frequency) and decimated
by M. Every output sample is one dot product of a filter phase with past input, so outputs
are grouped in blocks of L (which advance the input by M) and each chunk is one matrix
product: no Python loop per sample. Input history is carried between calls, so any chunking
gives the one-shot result; `flush()` pads with zeros and returns the tail.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
import math
from typing import Final

import numpy as np
import numpy.typing as npt

from .errors import AudioFormatError
from .pcm import SAMPLE_WIDTH

RESAMPLER_RATES: Final = (8000, 16000, 22050, 24000, 44100, 48000)
"""Rates the resampler converts between (any pair): the device, Opus and Realtime rates, and
22.05/44.1 kHz, which TTS engines deliver (Piper voices, for one, speak at 22.05 kHz)."""

PASSBAND: Final = 0.9
"""Passband edge as a fraction of the lower Nyquist frequency."""

STOPBAND_DB: Final = 90.0
"""Kaiser design attenuation; leaves margin above the 80 dB rejection goal."""

type Float64Array = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class FilterDesign:
    """A prototype low-pass filter at the rate `up * in_rate`, cut into `up` phases."""

    up: int
    down: int
    taps: Float64Array
    """Prototype impulse response (odd length), gain `up` at DC."""
    delay: int
    """Group delay of the prototype in high-rate samples."""
    passband_hz: float
    stopband_hz: float


@cache
def design_filter(in_rate: int, out_rate: int) -> FilterDesign:
    """Design the anti-imaging/anti-aliasing filter for `in_rate` -> `out_rate`."""
    g = math.gcd(in_rate, out_rate)
    up, down = out_rate // g, in_rate // g
    high_rate = in_rate * up
    nyquist = min(in_rate, out_rate) / 2
    passband, stopband = PASSBAND * nyquist, nyquist
    width = (stopband - passband) / (high_rate / 2)
    numtaps = math.ceil((STOPBAND_DB - 7.95) / (2.285 * math.pi * width)) + 1
    numtaps += 1 - numtaps % 2
    beta = 0.1102 * (STOPBAND_DB - 8.7)
    cutoff = (passband + stopband) / 2 / high_rate
    n = np.arange(numtaps, dtype=np.float64) - (numtaps - 1) / 2
    taps = 2 * cutoff * np.sinc(2 * cutoff * n) * np.kaiser(numtaps, beta)
    taps *= up / taps.sum()
    return FilterDesign(up, down, taps, (numtaps - 1) // 2, passband, stopband)


BLOCK_OUTPUTS: Final = 24
"""Outputs computed per matrix row: wide rows amortise the window copy and suit GEMM kernels."""

SEGMENT_ROWS: Final = 256
"""Rows per matrix product, so a long chunk's working set stays in the CPU cache."""


@dataclass(frozen=True, slots=True)
class _Plan:
    """Block form of a design: outputs of block q = x[q*step + start :][:width] @ matrix."""

    outputs: int
    """Outputs per block (a multiple of the design's `up`)."""
    step: int
    """Input samples per block (the same multiple of `down`)."""
    start: int
    """First input index of block 0's window (negative: reaches before the stream)."""
    newest: tuple[int, ...]
    """For each output of block 0, the newest input index it reads (nondecreasing)."""
    matrix: npt.NDArray[np.float32]


@cache
def _plan(in_rate: int, out_rate: int) -> _Plan:
    """Arrange the filter phases as one (width x outputs) matrix over a sliding input window."""
    design = design_filter(in_rate, out_rate)
    up, down, taps = design.up, design.down, design.taps
    group = -(-BLOCK_OUTPUTS // up)
    outputs, step = group * up, group * down
    per_phase = -(-len(taps) // up)
    padded = np.zeros(per_phase * up)
    padded[: len(taps)] = taps
    # Output r reads input up to (r*down + delay) // up with phase (r*down + delay) % up.
    newest = tuple((r * down + design.delay) // up for r in range(outputs))
    start = newest[0] - per_phase + 1
    matrix = np.zeros((newest[-1] - start + 1, outputs), dtype=np.float64)
    for r in range(outputs):
        phase = (r * down + design.delay) % up
        end = newest[r] - start + 1
        matrix[end - per_phase : end, r] = padded[phase::up][::-1]
    return _Plan(outputs, step, start, newest, matrix.astype(np.float32))


class Resampler:
    """Convert a PCM16 mono stream from `in_rate` to `out_rate`, chunk by chunk.

    Output sample k is aligned with input time k / out_rate; the total output of a stream is
    ceil(n_in * out_rate / in_rate) samples once `flush()` has been called.
    """

    def __init__(self, in_rate: int, out_rate: int) -> None:
        """Prepare the filter for the rate pair; raise `AudioFormatError` for other rates."""
        for rate in (in_rate, out_rate):
            if rate not in RESAMPLER_RATES:
                raise AudioFormatError(f"resampler does not support {rate} Hz")
        self.in_rate = in_rate
        self.out_rate = out_rate
        self._plan = _plan(in_rate, out_rate)
        self._odd = b""
        self.reset()

    def reset(self) -> None:
        """Start a new stream: forget history and position."""
        plan = self._plan
        # History holds x[base:received]; x is zero before 0.
        self._base = min(0, plan.start)
        self._history = np.zeros(-self._base, dtype=np.float32)
        self._received = 0
        self._produced = 0
        self._odd = b""

    def process(self, pcm: bytes | bytearray | memoryview) -> bytes:
        """Feed PCM16 bytes and return every output sample that is now computable."""
        data = self._odd + bytes(pcm) if self._odd else pcm
        usable = len(data) - len(data) % SAMPLE_WIDTH
        self._odd = bytes(data[usable:])
        samples = np.frombuffer(data, dtype="<i2", count=usable // SAMPLE_WIDTH)
        if self.in_rate == self.out_rate:
            self._received += len(samples)
            return samples.tobytes()
        return self._run(samples, final=False)

    def flush(self) -> bytes:
        """Return the rest of the stream (input padded with zeros) and reset for a new one."""
        if self.in_rate == self.out_rate:
            self.reset()
            return b""
        out = self._run(np.zeros(0, dtype="<i2"), final=True)
        self.reset()
        return out

    def _run(self, samples: npt.NDArray[np.int16], *, final: bool) -> bytes:
        """Append samples to the history and compute the outputs they complete."""
        plan = self._plan
        per_block, step = plan.outputs, plan.step
        self._history = np.concatenate((self._history, samples.astype(np.float32)))
        self._received += len(samples)
        last = self._received - 1
        if final:
            total = -(-self._received * self.out_rate // self.in_rate)
        else:
            # Output q*per_block + r needs x up to q*step + newest[r]: the computable ones
            # form a prefix of the stream.
            q = max(0, (last - plan.newest[-1]) // step + 1)
            total = q * per_block + sum(1 for n in plan.newest if q * step + n <= last)
        first = self._produced
        if total <= first:
            return b""
        q0, q1 = first // per_block, (total - 1) // per_block + 1
        width = plan.matrix.shape[0]
        lo = q0 * step + plan.start - self._base
        need = lo + (q1 - q0 - 1) * step + width
        history = self._history
        if need > len(history):
            history = np.concatenate((history, np.zeros(need - len(history), np.float32)))
        out = np.empty((q1 - q0, per_block), dtype=np.float32)
        item = history.itemsize
        for row in range(0, q1 - q0, SEGMENT_ROWS):
            rows = min(SEGMENT_ROWS, q1 - q0 - row)
            windows = np.lib.stride_tricks.as_strided(
                history[lo + row * step :],
                shape=(rows, width),
                strides=(step * item, item),
                writeable=False,
            )
            np.matmul(np.ascontiguousarray(windows), plan.matrix, out=out[row : row + rows])
        flat = out.reshape(-1)[first - q0 * per_block : total - q0 * per_block]
        self._produced = total
        # Keep only the history that the next block can still reach.
        drop = (total // per_block) * step + plan.start - self._base
        if drop > 0:
            self._history = self._history[drop:]
            self._base += drop
        return np.clip(np.rint(flat), -32768, 32767).astype("<i2").tobytes()
