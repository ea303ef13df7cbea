"""Typed errors raised by the Realtime client; messages never carry the API key."""

from __future__ import annotations

from typing import Final

__all__ = [
    "FATAL_ERROR_CODES",
    "RealtimeAuthError",
    "RealtimeConnectionError",
    "RealtimeError",
    "RealtimeInvalidEndpointError",
    "RealtimeQuotaError",
    "RealtimeSessionClosed",
    "error_for_code",
]


class RealtimeError(Exception):
    """Base class of every error this package raises."""


class RealtimeInvalidEndpointError(RealtimeError, ValueError):
    """The endpoint settings cannot form a Realtime URL (bad base URL or model)."""


class RealtimeConnectionError(RealtimeError):
    """The server was unreachable, timed out or failed the handshake; worth retrying later."""


class RealtimeAuthError(RealtimeError):
    """The server rejected the credentials (HTTP 401/403, `invalid_api_key`); needs a new key."""


class RealtimeQuotaError(RealtimeError):
    """The account is out of quota, over its billing limit or rate limited."""


class RealtimeSessionClosed(RealtimeError):  # noqa: N818 - name agreed with the HA side
    """The session ended for good: a fatal close code or the client was closed."""

    def __init__(self, message: str, *, code: int | None = None, reason: str = "") -> None:
        """Keep the WebSocket close code and reason for callers that map them."""
        super().__init__(message)
        self.code = code
        self.reason = reason


AUTH_ERROR_CODES: Final = frozenset({"invalid_api_key", "account_deactivated"})
QUOTA_ERROR_CODES: Final = frozenset(
    {"insufficient_quota", "billing_hard_limit_reached", "rate_limit_exceeded"}
)
# Codes after which reconnecting cannot help (LiveKit and pipecat treat the same set as fatal).
FATAL_ERROR_CODES: Final = frozenset(
    {"invalid_api_key", "account_deactivated", "insufficient_quota", "billing_hard_limit_reached"}
)


def error_for_code(code: str | None, message: str) -> RealtimeError | None:
    """Map an `error` event code to the typed exception it implies, or None if it is benign."""
    if code in AUTH_ERROR_CODES:
        return RealtimeAuthError(f"{code}: {message}")
    if code in QUOTA_ERROR_CODES:
        return RealtimeQuotaError(f"{code}: {message}")
    return None


def redact(text: str, secret: str) -> str:
    """Replace every occurrence of a secret (and its tail) in text before it is logged or raised."""
    if not secret:
        return text
    text = text.replace(secret, "***")
    if len(secret) > 8:
        text = text.replace(secret[-8:], "***")
    return text
