"""Session configuration as a typed value that renders GA or beta `session.update` payloads."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final, Literal

from .endpoint import Dialect

__all__ = [
    "FunctionTool",
    "Modality",
    "NoiseReduction",
    "SemanticVad",
    "ServerVad",
    "SessionConfig",
    "Transcription",
    "TurnDetection",
    "session_diff",
]

PCM_RATE: Final = 24000
_GA_PCM: Final = {"type": "audio/pcm", "rate": PCM_RATE}


class Modality(StrEnum):
    """What the model answers with: audio (plus its transcript) or text only."""

    AUDIO = "audio"
    TEXT = "text"


class NoiseReduction(StrEnum):
    """Input noise reduction: off, close-talking microphone, or far-field (room) microphone."""

    NONE = "none"
    NEAR_FIELD = "near_field"
    FAR_FIELD = "far_field"


@dataclass(frozen=True, kw_only=True)
class ServerVad:
    """Energy-based server turn detection."""

    threshold: float = 0.5
    prefix_padding_ms: int = 300
    silence_duration_ms: int = 500
    create_response: bool = True
    interrupt_response: bool = True
    idle_timeout_ms: int | None = None

    def render(self) -> dict[str, Any]:
        """Return the wire object (same shape in GA and beta, minus idle timeout in beta)."""
        payload: dict[str, Any] = {
            "type": "server_vad",
            "threshold": self.threshold,
            "prefix_padding_ms": self.prefix_padding_ms,
            "silence_duration_ms": self.silence_duration_ms,
            "create_response": self.create_response,
            "interrupt_response": self.interrupt_response,
        }
        if self.idle_timeout_ms is not None:
            payload["idle_timeout_ms"] = self.idle_timeout_ms
        return payload


@dataclass(frozen=True, kw_only=True)
class SemanticVad:
    """Model-based turn detection; eagerness bounds how long it waits (low 8 s ... high 2 s)."""

    eagerness: Literal["low", "medium", "high", "auto"] = "auto"
    create_response: bool = True
    interrupt_response: bool = True

    def render(self) -> dict[str, Any]:
        """Return the wire object."""
        return {
            "type": "semantic_vad",
            "eagerness": self.eagerness,
            "create_response": self.create_response,
            "interrupt_response": self.interrupt_response,
        }


type TurnDetection = ServerVad | SemanticVad | None
"""None means manual turns: the caller commits audio and creates responses."""


@dataclass(frozen=True, kw_only=True)
class Transcription:
    """Asynchronous transcription of the user's audio (billed separately)."""

    model: str = "gpt-4o-mini-transcribe"
    language: str | None = None
    prompt: str | None = None

    def render(self) -> dict[str, Any]:
        """Return the wire object without unset fields."""
        payload: dict[str, Any] = {"model": self.model}
        if self.language:
            payload["language"] = self.language
        if self.prompt:
            payload["prompt"] = self.prompt
        return payload


@dataclass(frozen=True, kw_only=True)
class FunctionTool:
    """A function the model may call; `parameters` is a JSON schema object."""

    name: str
    description: str = ""
    parameters: Mapping[str, Any] = field(
        default_factory=lambda: {"type": "object", "properties": {}}
    )

    def render(self) -> dict[str, Any]:
        """Return the wire object (identical in GA and beta)."""
        return {
            "type": "function",
            "name": self.name,
            "description": self.description,
            "parameters": dict(self.parameters),
        }


@dataclass(frozen=True, kw_only=True)
class SessionConfig:
    """Everything the client sets with `session.update`. Audio is PCM16 mono 24 kHz both ways.

    The voice cannot change once the model has produced audio in a session; the client then keeps
    the old voice until the next session (reconnect or renewal) and logs it.
    """

    instructions: str = ""
    output_modality: Modality = Modality.AUDIO
    voice: str = "marin"
    speed: float = 1.0
    turn_detection: TurnDetection = field(default_factory=ServerVad)
    noise_reduction: NoiseReduction = NoiseReduction.NONE
    transcription: Transcription | None = None
    tools: tuple[FunctionTool, ...] = ()
    tool_choice: str = "auto"
    max_output_tokens: int | None = None

    def render(self, dialect: Dialect = Dialect.GA) -> dict[str, Any]:
        """Return the complete `session` object of a `session.update` in the given dialect."""
        if dialect is Dialect.BETA:
            return self._render_beta()
        noise = (
            None
            if self.noise_reduction is NoiseReduction.NONE
            else {"type": str(self.noise_reduction)}
        )
        return {
            "type": "realtime",
            "instructions": self.instructions,
            "output_modalities": [str(self.output_modality)],
            "audio": {
                "input": {
                    "format": dict(_GA_PCM),
                    "turn_detection": self._turn_detection(),
                    "noise_reduction": noise,
                    "transcription": self.transcription.render() if self.transcription else None,
                },
                "output": {
                    "format": dict(_GA_PCM),
                    "voice": _ga_voice(self.voice),
                    "speed": self.speed,
                },
            },
            "tools": [tool.render() for tool in self.tools],
            "tool_choice": self.tool_choice,
            "max_output_tokens": self._max_tokens(),
        }

    def _render_beta(self) -> dict[str, Any]:
        turn_detection = self._turn_detection()
        if turn_detection is not None:
            turn_detection.pop("idle_timeout_ms", None)
        modalities = ["text", "audio"] if self.output_modality is Modality.AUDIO else ["text"]
        noise = (
            None
            if self.noise_reduction is NoiseReduction.NONE
            else {"type": str(self.noise_reduction)}
        )
        return {
            "instructions": self.instructions,
            "modalities": modalities,
            "voice": self.voice,
            "speed": self.speed,
            "input_audio_format": "pcm16",
            "output_audio_format": "pcm16",
            "turn_detection": turn_detection,
            "input_audio_noise_reduction": noise,
            "input_audio_transcription": (
                self.transcription.render() if self.transcription else None
            ),
            "tools": [tool.render() for tool in self.tools],
            "tool_choice": self.tool_choice,
            "max_response_output_tokens": self._max_tokens(),
        }

    def _turn_detection(self) -> dict[str, Any] | None:
        return None if self.turn_detection is None else self.turn_detection.render()

    def _max_tokens(self) -> int | Literal["inf"]:
        return "inf" if self.max_output_tokens is None else self.max_output_tokens

    @property
    def server_interrupts(self) -> bool:
        """Whether server turn detection cancels a response itself when the user speaks."""
        return self.turn_detection is not None and self.turn_detection.interrupt_response


# Objects whose members are diffed one by one; every other value is replaced wholesale.
_NESTED: Final = frozenset({("audio",), ("audio", "input"), ("audio", "output")})


def _diff(old: dict[str, Any], new: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    for key, value in new.items():
        sub = (*path, key)
        if sub in _NESTED:
            nested = _diff(old.get(key, {}), value, sub)
            if nested:
                changes[key] = nested
        elif old.get(key, object()) != value:
            changes[key] = value
    return changes


def session_diff(
    old: SessionConfig, new: SessionConfig, dialect: Dialect = Dialect.GA
) -> dict[str, Any] | None:
    """Return the `session` payload carrying only what changed, or None when nothing did."""
    changes = _diff(old.render(dialect), new.render(dialect), ())
    if not changes:
        return None
    if dialect is Dialect.GA:
        changes["type"] = "realtime"
    return changes


def _ga_voice(voice: str) -> str | dict[str, str]:
    """A custom voice (an id such as `voice_1234`, made from audio samples) goes as an object
    `{"id": ...}`, built-in voices by name (SDK docstring of `RealtimeAudioConfigOutput.voice`;
    openai-agents-python's `RealtimeCustomVoice` does the same)."""
    return {"id": voice} if voice.startswith("voice_") else voice
