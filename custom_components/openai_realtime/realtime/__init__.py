"""OpenAI Realtime API client over WebSocket (GA protocol, legacy beta dialect); no HA imports."""

from __future__ import annotations

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

__all__ = [
    "AuthStyle",
    "Dialect",
    "RealtimeAuthError",
    "RealtimeConnectionError",
    "RealtimeEndpoint",
    "RealtimeError",
    "RealtimeInvalidEndpointError",
    "RealtimeQuotaError",
    "RealtimeSessionClosed",
    "async_probe",
]
