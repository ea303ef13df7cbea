"""Tests for the Opus decoder and encoder wrappers, on the real libopus."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from custom_components.openai_realtime_voice.audio import (
    OPUS_FRAME_DURATIONS_MS,
    OPUS_SAMPLE_RATES,
    AudioFormatError,
    OpusDecoder,
    OpusEncoder,
    frame_bytes,
    frame_samples,
)
from tests.audio.signals import speech_like


def best_correlation(reference: np.ndarray, decoded: np.ndarray, max_lag: int) -> float:
    """Return the highest normalised correlation over codec delays up to `max_lag` samples."""
    ref = reference.astype(np.float64)
    out = decoded.astype(np.float64)
    best = 0.0
    n = min(len(ref), len(out)) - max_lag
    for lag in range(max_lag + 1):
        a, b = ref[:n], out[lag : lag + n]
        best = max(best, float(np.dot(a, b) / np.sqrt(np.dot(a, a) * np.dot(b, b))))
    return best


def encode_all(encoder: OpusEncoder, pcm: bytes) -> list[bytes]:
    """Encode `pcm` frame by frame, zero-padding the last one."""
    size = encoder.frame_bytes
    return [encoder.encode(pcm[i : i + size]) for i in range(0, len(pcm), size)]


@pytest.mark.parametrize("rate", OPUS_SAMPLE_RATES)
@pytest.mark.parametrize("frame_ms", OPUS_FRAME_DURATIONS_MS)
def test_round_trip_every_rate_and_duration(rate: int, frame_ms: int) -> None:
    """Encoded then decoded speech-like audio keeps its content at every rate and duration."""
    signal = speech_like(rate, 1.0)
    encoder = OpusEncoder(rate, frame_ms, bitrate=32000)
    decoder = OpusDecoder(rate, frame_ms)
    packets = encode_all(encoder, signal.tobytes())
    decoded = np.frombuffer(b"".join(decoder.decode(p) for p in packets), np.int16)
    assert len(decoded) == len(packets) * frame_samples(rate, frame_ms)
    assert best_correlation(signal, decoded, max_lag=rate // 100) > 0.9
    assert decoder.stats.packets == len(packets)
    assert decoder.stats.concealed == 0


def test_device_stream_decodes_directly_at_24k() -> None:
    """A 16 kHz / 60 ms device stream with DTX decodes to 1440-sample frames at 24 kHz."""
    signal = speech_like(16000, 1.2)
    pcm = signal.tobytes() + bytes(16000 * 2)  # a second of silence triggers DTX
    # Settings of the xiaozhi firmware: AUDIO, automatic bitrate, complexity 0, DTX.
    encoder = OpusEncoder(16000, 60, application="audio", bitrate=None, complexity=0, dtx=True)
    decoder = OpusDecoder(24000, 60)
    packets = encode_all(encoder, pcm)
    assert min(len(p) for p in packets) <= 2  # DTX packets during silence
    frames = [decoder.decode(p) for p in packets]
    assert {len(f) for f in frames} == {frame_bytes(24000, 60)}
    assert decoder.stats.dtx > 0
    assert decoder.stats.concealed == 0
    decoded = np.frombuffer(b"".join(frames), np.int16)
    ref = speech_like(24000, 1.2)  # the same analytic signal, sampled at 24 kHz
    assert best_correlation(ref, decoded[: len(ref)], max_lag=480) > 0.9
    tail = decoded[len(ref) + 2400 :]
    assert np.abs(tail.astype(np.int32)).max() < 300


def test_encoder_pads_short_tail() -> None:
    """A short final frame is zero-padded to the announced duration."""
    encoder = OpusEncoder(24000, 60)
    decoder = OpusDecoder(24000, 60)
    packet = encoder.encode(speech_like(24000, 0.02).tobytes())
    assert len(decoder.decode(packet)) == 2880
    assert len(encoder.encode(b"")) > 0


def test_encoder_accepts_buffers() -> None:
    """bytearray and memoryview frames are accepted."""
    encoder = OpusEncoder(24000, 20)
    frame = speech_like(24000, 0.02).tobytes()
    assert encoder.encode(bytearray(frame))
    assert encoder.encode(memoryview(frame))


@pytest.mark.parametrize("size", [2882, 3, 1441])
def test_encoder_rejects_bad_frame_length(size: int) -> None:
    """Longer-than-frame or odd-length PCM is a typed error."""
    encoder = OpusEncoder(24000, 60)
    with pytest.raises(AudioFormatError):
        encoder.encode(bytes(size))


@pytest.mark.parametrize(
    "kwargs",
    [{"complexity": 11}, {"complexity": -1}, {"bitrate": 100}, {"bitrate": 10**6}],
)
def test_encoder_rejects_bad_settings(kwargs: dict[str, int]) -> None:
    """Out-of-range settings are typed errors."""
    with pytest.raises(AudioFormatError):
        OpusEncoder(24000, 60, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(("rate", "ms"), [(44100, 60), (24000, 25)])
def test_codecs_reject_unsupported_formats(rate: int, ms: int) -> None:
    """Unsupported rates and durations are typed errors for both directions."""
    with pytest.raises(AudioFormatError):
        OpusDecoder(rate, ms)
    with pytest.raises(AudioFormatError):
        OpusEncoder(rate, ms)


@pytest.mark.parametrize("lost", [b"", None])
def test_lost_packet_is_concealed(lost: bytes | None) -> None:
    """An empty packet (or None) means lost: one frame of PLC at the device's duration."""
    decoder = OpusDecoder(24000, 40)
    encoder = OpusEncoder(24000, 40)
    decoder.decode(encoder.encode(speech_like(24000, 0.04).tobytes()))
    assert len(decoder.decode(lost)) == frame_bytes(24000, 40)
    assert decoder.stats.lost == 1
    assert decoder.stats.concealed == 1


def test_corrupt_packets_are_concealed_counted_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Packets libopus rejects are concealed, counted and logged only the first time."""
    decoder = OpusDecoder(24000, 60, name="device aa:bb")
    corrupt = [b"\xff\xff\xff\xff\x00", b"\x03\xff", b"\x0b" + bytes(1300), bytes(2000)]
    with caplog.at_level(logging.WARNING):
        frames = [decoder.decode(p) for p in corrupt]
    assert all(len(f) == 2880 for f in frames)
    assert decoder.stats.corrupt == 4
    assert decoder.stats.dtx == 0
    warnings = [r for r in caplog.records if "corrupt Opus packet" in r.getMessage()]
    assert len(warnings) == 1
    assert "device aa:bb" in warnings[0].getMessage()


def test_decoder_and_encoder_reset() -> None:
    """Reset keeps the codecs usable for a new stream."""
    encoder = OpusEncoder(16000, 20)
    decoder = OpusDecoder(16000, 20)
    frame = speech_like(16000, 0.02).tobytes()
    decoder.decode(encoder.encode(frame))
    encoder.reset()
    decoder.reset()
    assert len(decoder.decode(encoder.encode(frame))) == len(frame)


def test_music_signal_and_auto_bitrate() -> None:
    """The music signal hint and automatic bitrate are accepted."""
    encoder = OpusEncoder(48000, 20, signal="music", bitrate=None, complexity=10)
    assert encoder.encode(speech_like(48000, 0.02).tobytes())


def test_decoder_accepts_buffers() -> None:
    """bytearray and memoryview packets decode like bytes."""
    encoder = OpusEncoder(24000, 60)
    packet = encoder.encode(speech_like(24000, 0.06).tobytes())
    first = OpusDecoder(24000, 60).decode(packet)
    assert OpusDecoder(24000, 60).decode(bytearray(packet)) == first
    assert OpusDecoder(24000, 60).decode(memoryview(packet)) == first
