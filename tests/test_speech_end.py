"""Where the user's speech ended in a pipeline's stream (speech.SpeechEnd): the start of a
shared turn's latency (issue 32)."""

from __future__ import annotations

import numpy as np

from custom_components.openai_realtime_voice.speech import SpeechEnd


def _chunk(amplitude: float, seed: int = 0) -> bytes:
    """10 ms of 16 kHz noise at an RMS of about `amplitude`."""
    noise = np.random.default_rng(seed).normal(0, amplitude, 160)
    return noise.clip(-32768, 32767).astype("<i2").tobytes()


def test_room_noise_after_the_speech_is_not_speech() -> None:
    """The quiet room the voice detection waited through (30 dB under the speech) is not
    speech: the end is the arrival of the last loud chunk."""
    end = SpeechEnd()
    for index in range(60):
        end.heard(_chunk(6000, index), index * 0.01)
    for index in range(60, 130):
        end.heard(_chunk(190, index), index * 0.01)
    assert end.at == 0.59


def test_quiet_start_then_louder_speech() -> None:
    """Speech that grows louder keeps its end at the last chunk near the loudest."""
    end = SpeechEnd()
    for index, amplitude in enumerate([300, 800, 3000, 6000, 5000, 2000, 100, 0, 0]):
        end.heard(_chunk(amplitude, index), float(index))
    assert end.at == 5.0


def test_silence_and_empty_chunks_have_no_end() -> None:
    """Digital silence, an odd byte and empty chunks: no speech (the stream's end is used)."""
    end = SpeechEnd()
    end.heard(bytes(320), 0.0)
    end.heard(b"\x01", 0.1)
    end.heard(b"", 0.2)
    assert end.at is None
