"""OpenAI Realtime API client over WebSocket (GA protocol, legacy beta dialect); no HA imports."""

from __future__ import annotations

from .client import RealtimeClient
from .config import (
    FunctionTool,
    Modality,
    NoiseReduction,
    SemanticVad,
    ServerVad,
    SessionConfig,
    Transcription,
    TurnDetection,
    session_diff,
)
from .endpoint import AuthStyle, Dialect, RealtimeEndpoint, redact_url
from .errors import (
    RealtimeAuthError,
    RealtimeConnectionError,
    RealtimeError,
    RealtimeInvalidEndpointError,
    RealtimeProtocolError,
    RealtimeQuotaError,
    RealtimeRateLimitError,
    RealtimeRequestError,
    RealtimeSessionClosed,
    RealtimeSettingRefused,
    Setting,
)
from .events import (
    Closed,
    InputCommitted,
    InputTranscript,
    InputTranscriptDelta,
    Reconnected,
    ResponseDone,
    ResponseStarted,
    ServerError,
    SessionEvent,
    SpeechStarted,
    SpeechStopped,
)
from .options import ClientOptions
from .probe import async_probe
from .protocol import RealtimeProtocol
from .reconnect import ReconnectPolicy
from .response import (
    AudioDelta,
    FunctionCall,
    RealtimeResponse,
    ResponseEvent,
    TextDelta,
    TranscriptDelta,
)
from .usage import (
    TRANSCRIPTION_PRICES,
    ModelPrices,
    TranscriptionPrices,
    Usage,
    prices_for,
)

__all__ = [
    "TRANSCRIPTION_PRICES",
    "AudioDelta",
    "AuthStyle",
    "ClientOptions",
    "Closed",
    "Dialect",
    "FunctionCall",
    "FunctionTool",
    "InputCommitted",
    "InputTranscript",
    "InputTranscriptDelta",
    "Modality",
    "ModelPrices",
    "NoiseReduction",
    "RealtimeAuthError",
    "RealtimeClient",
    "RealtimeConnectionError",
    "RealtimeEndpoint",
    "RealtimeError",
    "RealtimeInvalidEndpointError",
    "RealtimeProtocol",
    "RealtimeProtocolError",
    "RealtimeQuotaError",
    "RealtimeRateLimitError",
    "RealtimeRequestError",
    "RealtimeResponse",
    "RealtimeSessionClosed",
    "RealtimeSettingRefused",
    "ReconnectPolicy",
    "Reconnected",
    "ResponseDone",
    "ResponseEvent",
    "ResponseStarted",
    "SemanticVad",
    "ServerError",
    "ServerVad",
    "SessionConfig",
    "SessionEvent",
    "Setting",
    "SpeechStarted",
    "SpeechStopped",
    "TextDelta",
    "TranscriptDelta",
    "Transcription",
    "TranscriptionPrices",
    "TurnDetection",
    "Usage",
    "async_probe",
    "prices_for",
    "redact_url",
    "session_diff",
]
