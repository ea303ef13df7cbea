"""Typed events the client hands to callers, and beta-to-GA event name aliases."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from .errors import RealtimeError
    from .response import RealtimeResponse

__all__ = [
    "BETA_ALIASES",
    "AudioDelta",
    "Closed",
    "FunctionCall",
    "InputCommitted",
    "InputTranscript",
    "InputTranscriptDelta",
    "Reconnected",
    "ResponseDone",
    "ResponseEvent",
    "ResponseStarted",
    "ServerError",
    "SessionEvent",
    "SpeechStarted",
    "SpeechStopped",
    "TextDelta",
    "TranscriptDelta",
    "ga_event_type",
]

# Legacy beta server event names (speaches, old Azure preview) -> GA names; one handler serves both.
BETA_ALIASES: Final = {
    "response.text.delta": "response.output_text.delta",
    "response.text.done": "response.output_text.done",
    "response.audio.delta": "response.output_audio.delta",
    "response.audio.done": "response.output_audio.done",
    "response.audio_transcript.delta": "response.output_audio_transcript.delta",
    "response.audio_transcript.done": "response.output_audio_transcript.done",
    "conversation.item.created": "conversation.item.added",
    "transcription_session.updated": "session.updated",
}


def ga_event_type(kind: str) -> str:
    """Return the GA name of a server event type (beta names are aliased)."""
    return BETA_ALIASES.get(kind, kind)


# -- per-response stream ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of text output (text modality)."""

    text: str
    item_id: str


@dataclass(frozen=True, slots=True)
class TranscriptDelta:
    """A piece of the transcript of the audio output."""

    text: str
    item_id: str


@dataclass(frozen=True, slots=True)
class AudioDelta:
    """PCM16 mono 24 kHz audio output."""

    pcm: bytes
    item_id: str

    @property
    def duration_ms(self) -> float:
        """Length of this chunk in milliseconds (48 bytes per ms)."""
        return len(self.pcm) / 48


@dataclass(frozen=True, slots=True)
class FunctionCall:
    """A completed function call of the model; `arguments` is a JSON string."""

    call_id: str
    name: str
    arguments: str
    item_id: str


type ResponseEvent = TextDelta | TranscriptDelta | AudioDelta | FunctionCall


# -- session-level stream --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """Server VAD heard the user start speaking (barge-in point)."""

    audio_start_ms: int
    item_id: str


@dataclass(frozen=True, slots=True)
class SpeechStopped:
    """Server VAD heard the user stop speaking."""

    audio_end_ms: int
    item_id: str


@dataclass(frozen=True, slots=True)
class InputCommitted:
    """The input audio buffer became a user item (a user turn)."""

    item_id: str


@dataclass(frozen=True, slots=True)
class InputTranscriptDelta:
    """A piece of the transcript of the user's audio."""

    item_id: str
    text: str


@dataclass(frozen=True, slots=True)
class InputTranscript:
    """The final transcript of one user audio item."""

    item_id: str
    text: str


@dataclass(frozen=True, slots=True)
class ResponseStarted:
    """A response began (created by the caller, by server VAD, or by the tool loop)."""

    response: RealtimeResponse


@dataclass(frozen=True, slots=True)
class ResponseDone:
    """A response ended; see `response.status`."""

    response: RealtimeResponse


@dataclass(frozen=True, slots=True)
class ServerError:
    """A non-fatal `error` event; the session stays open."""

    type: str
    code: str | None
    message: str
    event_id: str | None

    @classmethod
    def from_event(cls, event: dict[str, Any]) -> ServerError:
        """Build from a raw `error` event, tolerating missing fields."""
        error = event.get("error")
        error = error if isinstance(error, dict) else {}
        code = error.get("code")
        event_id = error.get("event_id")
        return cls(
            type=str(error.get("type", "")),
            code=code if isinstance(code, str) else None,
            message=str(error.get("message", "")),
            event_id=event_id if isinstance(event_id, str) else None,
        )


@dataclass(frozen=True, slots=True)
class Reconnected:
    """A new session replaced a lost or expired one (config and text history replayed)."""

    attempt: int
    renewal: bool


@dataclass(frozen=True, slots=True)
class Closed:
    """The client stopped for good; `error` is None after `close()`."""

    error: RealtimeError | None


type SessionEvent = (
    SpeechStarted
    | SpeechStopped
    | InputCommitted
    | InputTranscriptDelta
    | InputTranscript
    | ResponseStarted
    | ResponseDone
    | ServerError
    | Reconnected
    | Closed
)
