"""OpenAI Realtime API client over WebSocket (GA protocol, legacy beta dialect); no HA imports."""

from __future__ import annotations

from .client import ClientOptions, RealtimeClient, ToolExecutor
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
from .connection import async_probe
from .endpoint import AuthStyle, Dialect, RealtimeEndpoint
from .errors import (
    RealtimeAuthError,
    RealtimeConnectionError,
    RealtimeError,
    RealtimeInvalidEndpointError,
    RealtimeQuotaError,
    RealtimeSessionClosed,
)
from .events import (
    AudioDelta,
    Closed,
    FunctionCall,
    InputCommitted,
    InputTranscript,
    InputTranscriptDelta,
    Reconnected,
    ResponseDone,
    ResponseEvent,
    ResponseStarted,
    ServerError,
    SessionEvent,
    SpeechStarted,
    SpeechStopped,
    TextDelta,
    TranscriptDelta,
)
from .response import RealtimeResponse
from .usage import DEFAULT_PRICES, ModelPrices, Usage, prices_for

__all__ = [
    "DEFAULT_PRICES",
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
    "RealtimeQuotaError",
    "RealtimeResponse",
    "RealtimeSessionClosed",
    "Reconnected",
    "ResponseDone",
    "ResponseEvent",
    "ResponseStarted",
    "SemanticVad",
    "ServerError",
    "ServerVad",
    "SessionConfig",
    "SessionEvent",
    "SpeechStarted",
    "SpeechStopped",
    "TextDelta",
    "ToolExecutor",
    "TranscriptDelta",
    "Transcription",
    "TurnDetection",
    "Usage",
    "async_probe",
    "prices_for",
    "session_diff",
]
