"""Where a device turn's latency starts: the service's end of speech mapped to the device's time."""

from __future__ import annotations

import pytest

from custom_components.openai_realtime_voice.bridge.latency import (
    UplinkClock,
    speech_end,
    speech_start,
)
from custom_components.openai_realtime_voice.realtime import SemanticVad, ServerVad

SESSION = ("client", 1.0)


def _streamed(seconds: float, start: float = 100.0) -> UplinkClock:
    """`seconds` of 100 ms batches that arrived at real time from `start`."""
    clock = UplinkClock()
    for index in range(round(seconds * 10)):
        clock.appended(SESSION, 100, start + (index + 1) * 0.1)
    return clock


def test_a_position_becomes_the_moment_its_audio_arrived() -> None:
    """Inside a batch, audio is taken to have streamed in at real time."""
    clock = _streamed(3.0)
    assert clock.arrival(SESSION, 1000) == pytest.approx(101.0)
    assert clock.arrival(SESSION, 1050) == pytest.approx(101.05)
    assert clock.arrival(SESSION, 3000) == pytest.approx(103.0)


def test_unknown_positions_and_other_sessions_have_no_arrival() -> None:
    """Beyond the audio sent, for another session, or before what is kept: None."""
    clock = _streamed(2.0)
    assert clock.arrival(SESSION, 2500) is None
    assert clock.arrival(("client", 2.0), 1000) is None
    assert clock.arrival(SESSION, -1) is None
    long = _streamed(120.0)  # more than is kept
    assert long.arrival(SESSION, 1000) is None
    assert long.arrival(SESSION, 119_000) == pytest.approx(219.0)


def test_a_new_session_counts_from_zero() -> None:
    """Positions are per session: the service's buffer starts again with a new session."""
    clock = _streamed(2.0)
    clock.appended(("client", 5.0), 100, 300.0)
    assert clock.arrival(("client", 5.0), 100) == pytest.approx(300.0)
    assert clock.arrival(SESSION, 1000) is None


def test_server_vad_speech_ended_its_silence_before_the_reported_position() -> None:
    """audio_end_ms includes the silence window (openai SDK docstring of speech_stopped)."""
    clock = _streamed(3.0)
    vad = ServerVad(silence_duration_ms=500)
    assert speech_end(clock, SESSION, 2500, vad, now=103.2) == pytest.approx(102.0)


def test_semantic_vad_and_unknown_audio_fall_back_honestly() -> None:
    """Semantic VAD's wait is not reported: the position itself; unknown audio: now - silence."""
    clock = _streamed(3.0)
    assert speech_end(clock, SESSION, 2500, SemanticVad(), now=103.2) == pytest.approx(102.5)
    assert speech_end(UplinkClock(), SESSION, 2500, ServerVad(silence_duration_ms=500), 50.0) == (
        pytest.approx(49.5)
    )
    assert speech_end(UplinkClock(), SESSION, 2500, None, 50.0) == 50.0


def test_speech_start_is_never_before_its_audio_arrived() -> None:
    """A turn starts when the batch holding the detected speech arrived: with server VAD the
    reported position is `prefix_padding_ms` early; audio sent in a burst is not credited
    with an earlier start."""
    clock = _streamed(3.0)
    vad = ServerVad(prefix_padding_ms=300)
    assert speech_start(clock, SESSION, 1000, vad, 50.0) == pytest.approx(101.3)
    assert speech_start(clock, SESSION, 1050, None, 50.0) == pytest.approx(101.1)
    burst = UplinkClock()
    burst.appended(SESSION, 1500, 200.0)  # 1.5 s of audio that came at once
    assert speech_start(burst, SESSION, 600, vad, 50.0) == 200.0
    assert burst.arrival(SESSION, 900) == pytest.approx(199.4)  # latency's own estimate
    assert speech_start(UplinkClock(), SESSION, 100, vad, 50.0) == 50.0
