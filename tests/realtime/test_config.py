"""Tests for SessionConfig rendering and diffs, validated against the SDK types."""

from __future__ import annotations

from custom_components.openai_realtime_voice.realtime import (
    Dialect,
    FunctionTool,
    Modality,
    NoiseReduction,
    SemanticVad,
    ServerVad,
    SessionConfig,
    Transcription,
    session_diff,
)
from realtime_server import client_event_problems

FULL = SessionConfig(
    instructions="You control a home.",
    output_modality=Modality.TEXT,
    voice="cedar",
    speed=1.1,
    turn_detection=ServerVad(threshold=0.6, idle_timeout_ms=6000),
    noise_reduction=NoiseReduction.FAR_FIELD,
    transcription=Transcription(model="whisper-1", language="de", prompt="Küche"),
    tools=(FunctionTool(name="HassTurnOn", description="Turn on"),),
    tool_choice="required",
    max_output_tokens=512,
)


def _update(session: dict[str, object], beta: bool = False) -> list[str]:
    return client_event_problems({"type": "session.update", "session": session}, beta=beta)


def test_ga_render_is_valid() -> None:
    """Full and default configs render SDK-valid GA session.update payloads."""
    for config in (
        FULL,
        SessionConfig(),
        SessionConfig(turn_detection=SemanticVad(eagerness="low")),
    ):
        assert not _update(config.render())
    session = FULL.render()
    assert session["output_modalities"] == ["text"]
    assert session["audio"]["input"]["noise_reduction"] == {"type": "far_field"}
    assert session["audio"]["input"]["turn_detection"]["idle_timeout_ms"] == 6000
    assert session["audio"]["input"]["transcription"] == {
        "model": "whisper-1",
        "language": "de",
        "prompt": "Küche",
    }
    default = SessionConfig().render()
    assert default["max_output_tokens"] == "inf"
    assert default["audio"]["input"]["noise_reduction"] is None


def test_custom_voice_is_sent_as_an_object() -> None:
    """A custom voice id goes as `{"id": ...}` (what the GA service takes for it); a built-in
    voice by its name."""
    custom = SessionConfig(voice="voice_1234").render()
    assert custom["audio"]["output"]["voice"] == {"id": "voice_1234"}
    assert not _update(custom)
    assert SessionConfig(voice="marin").render()["audio"]["output"]["voice"] == "marin"


def test_beta_render_is_valid() -> None:
    """The beta dialect renders the flat legacy session."""
    for config in (FULL, SessionConfig(), SessionConfig(turn_detection=None)):
        assert not _update(config.render(Dialect.BETA), beta=True)
    session = FULL.render(Dialect.BETA)
    assert session["modalities"] == ["text"]
    assert "idle_timeout_ms" not in session["turn_detection"]
    assert session["input_audio_format"] == "pcm16"
    assert SessionConfig().render(Dialect.BETA)["modalities"] == ["text", "audio"]


def test_diff() -> None:
    """Diffs carry only changed members, nested under audio.input/output, plus session.type."""
    base = SessionConfig()
    assert session_diff(base, base) is None
    changed = SessionConfig(speed=1.2, turn_detection=None)
    diff = session_diff(base, changed)
    assert diff == {
        "type": "realtime",
        "audio": {"input": {"turn_detection": None}, "output": {"speed": 1.2}},
    }
    assert diff is not None
    assert not _update(diff)
    beta = session_diff(base, SessionConfig(instructions="x"), Dialect.BETA)
    assert beta == {"instructions": "x"}


def test_server_interrupts() -> None:
    """Only turn detection with interrupt_response cancels server-side."""
    assert SessionConfig().server_interrupts
    assert not SessionConfig(turn_detection=None).server_interrupts
    assert not SessionConfig(turn_detection=ServerVad(interrupt_response=False)).server_interrupts
