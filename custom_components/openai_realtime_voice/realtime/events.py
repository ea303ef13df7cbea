"""Typed events: the session events callers get, the protocol's events for its driver, aliases."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from .errors import RealtimeError
from .response import RealtimeResponse

__all__ = [
    "BETA_ALIASES",
    "Closed",
    "InputCommitted",
    "InputTranscript",
    "InputTranscriptDelta",
    "ProtocolEvent",
    "Reconnected",
    "RequestAccepted",
    "RequestRefused",
    "ResponseDone",
    "ResponseStarted",
    "ServerError",
    "SessionEvent",
    "SessionExpired",
    "SessionFailed",
    "SessionReady",
    "SessionUpdated",
    "SpeechStarted",
    "SpeechStopped",
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
    """The final transcript of one user audio item; `usage` is its own (billed apart)."""

    item_id: str
    text: str
    usage: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class ResponseStarted:
    """A response began (created by the caller or by server VAD)."""

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
    param: str | None = None  # the request field refused, e.g. `session.audio.output.voice`

    @classmethod
    def from_event(cls, event: dict[str, Any]) -> ServerError:
        """Build from a raw `error` event, tolerating missing fields."""
        error = event.get("error")
        error = error if isinstance(error, dict) else {}
        code = error.get("code")
        event_id = error.get("event_id")
        param = error.get("param")
        return cls(
            type=str(error.get("type", "")),
            code=code if isinstance(code, str) else None,
            message=str(error.get("message", "")),
            event_id=event_id if isinstance(event_id, str) else None,
            param=param if isinstance(param, str) else None,
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


# -- what the protocol core tells its driver besides the session events ---------------------


@dataclass(frozen=True, slots=True)
class SessionReady:
    """The session is configured (and the history replay queued): commands may flow."""


@dataclass(frozen=True, slots=True)
class SessionFailed:
    """The session cannot go on: a setup error, or a fatal error code (auth, quota, ...)."""

    error: RealtimeError


@dataclass(frozen=True, slots=True)
class SessionExpired:
    """The service ended the session (`session_expired`); a new one should replace it."""


@dataclass(frozen=True, slots=True)
class RequestAccepted:
    """The response.create sent as `event_id` produced `response`."""

    event_id: str
    response: RealtimeResponse


@dataclass(frozen=True, slots=True)
class RequestRefused:
    """The service refused the client event `event_id` (a response.create or session.update).

    `retry` when asking again later may work (busy, rate limited); `busy` when another
    response is still active, so the request can be resent once that one is done.
    """

    event_id: str
    error: RealtimeError
    retry: bool = False
    busy: bool = False


@dataclass(frozen=True, slots=True)
class SessionUpdated:
    """The session.update sent as `event_id` was applied."""

    event_id: str


type ProtocolEvent = (
    SessionEvent
    | SessionReady
    | SessionFailed
    | SessionExpired
    | RequestAccepted
    | RequestRefused
    | SessionUpdated
)
