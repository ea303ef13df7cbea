"""Audio core: Opus codec, framing, pacing and resampling for PCM16 mono streams.

No Home Assistant imports. Downlink composition: `FrameAssembler(frame_bytes(24000, 60))`
-> `OpusEncoder.encode` -> `Pacer.push`; uplink: `OpusDecoder.decode` per device packet.
Load libopus once from an executor with `load_opuslib()` before creating codecs.
"""

from .clock import Clock, LoopClock
from .errors import AudioError, AudioFormatError, OpusCodecError, OpusNotFoundError
from .framing import FrameAssembler
from .libopus import find_libopus, load_opuslib
from .opus import DecoderStats, OpusDecoder, OpusEncoder
from .pacing import DEFAULT_PREBUFFER, DEVICE_QUEUE_FRAMES, Pacer
from .pcm import (
    DEFAULT_FRAME_MS,
    DEVICE_SAMPLE_RATE,
    OPUS_FRAME_DURATIONS_MS,
    OPUS_SAMPLE_RATES,
    REALTIME_SAMPLE_RATE,
    SAMPLE_WIDTH,
    frame_bytes,
    frame_samples,
    pcm_duration_ms,
)
from .resampler import RESAMPLER_RATES, Resampler

__all__ = [
    "DEFAULT_FRAME_MS",
    "DEFAULT_PREBUFFER",
    "DEVICE_QUEUE_FRAMES",
    "DEVICE_SAMPLE_RATE",
    "OPUS_FRAME_DURATIONS_MS",
    "OPUS_SAMPLE_RATES",
    "REALTIME_SAMPLE_RATE",
    "RESAMPLER_RATES",
    "SAMPLE_WIDTH",
    "AudioError",
    "AudioFormatError",
    "Clock",
    "DecoderStats",
    "FrameAssembler",
    "LoopClock",
    "OpusCodecError",
    "OpusDecoder",
    "OpusEncoder",
    "OpusNotFoundError",
    "Pacer",
    "Resampler",
    "find_libopus",
    "frame_bytes",
    "frame_samples",
    "load_opuslib",
    "pcm_duration_ms",
]
