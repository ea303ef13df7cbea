"""Typed errors raised by the Realtime client; messages never carry the API key."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Final

__all__ = [
    "BENIGN_ERROR_CODES",
    "BUSY_CODE",
    "FATAL_ERROR_CODES",
    "QUOTA_ERROR_CODES",
    "RATE_LIMIT_CODE",
    "SESSION_EXPIRED_CODE",
    "RealtimeAuthError",
    "RealtimeConnectionError",
    "RealtimeError",
    "RealtimeInvalidEndpointError",
    "RealtimeProtocolError",
    "RealtimeQuotaError",
    "RealtimeRateLimitError",
    "RealtimeRequestError",
    "RealtimeSessionClosed",
    "RealtimeSettingRefused",
    "Setting",
    "error_event_exception",
    "error_for_code",
    "is_truncate_error",
    "redact",
]


class RealtimeError(Exception):
    """Base class of every error this package raises."""


class RealtimeInvalidEndpointError(RealtimeError, ValueError):
    """The endpoint settings cannot form a Realtime URL (bad base URL or model)."""


class RealtimeConnectionError(RealtimeError):
    """The server was unreachable, timed out or failed the handshake; worth retrying later."""


class RealtimeAuthError(RealtimeError):
    """The server rejected the credentials (HTTP 401/403, `invalid_api_key`); needs a new key."""


class RealtimeRateLimitError(RealtimeConnectionError):
    """The service is rate limiting requests (`rate_limit_exceeded`); retry after a backoff.

    `retry_after` is the wait the service asked for (seconds, already bounded), if it did.
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        """Keep the service's `retry-after`, for the backoff."""
        super().__init__(message)
        self.retry_after = retry_after


class RealtimeQuotaError(RealtimeError):
    """The account is out of quota or over its billing limit."""


class RealtimeRequestError(RealtimeError):
    """The service rejected one request (e.g. `response.create`); the session is fine."""

    def __init__(self, message: str, *, code: str | None = None) -> None:
        """Keep the service's error code for callers that map it."""
        super().__init__(message)
        self.code = code


class RealtimeSessionClosed(RealtimeError):  # noqa: N818 - name agreed with the HA side
    """The session ended for good: a fatal close code or the client was closed."""

    def __init__(self, message: str, *, code: int | None = None, reason: str = "") -> None:
        """Keep the WebSocket close code and reason for callers that map them."""
        super().__init__(message)
        self.code = code
        self.reason = reason


class RealtimeProtocolError(RealtimeSessionClosed):
    """The service refused the protocol dialect (the beta shape on the GA service)."""


class Setting(StrEnum):
    """A user setting the service can refuse."""

    MODEL = "model"
    VOICE = "voice"
    TRANSCRIPTION_MODEL = "transcription_model"
    TOOLS = "tools"


class RealtimeSettingRefused(RealtimeSessionClosed):
    """The service refused one of the user's settings; retrying the same session cannot help.

    `setting` names it (model, voice, transcription model, tools) so the user can be told
    which one to change.
    """

    def __init__(self, message: str, *, setting: Setting, reason: str = "") -> None:
        """Keep which setting was refused."""
        super().__init__(message, reason=reason)
        self.setting = setting


AUTH_ERROR_CODES: Final = frozenset({"invalid_api_key", "account_deactivated"})
QUOTA_ERROR_CODES: Final = frozenset({"insufficient_quota", "billing_hard_limit_reached"})
RATE_LIMIT_CODE: Final = "rate_limit_exceeded"
BETA_DISABLED_CODE: Final = "beta_api_shape_disabled"
MODEL_NOT_FOUND_CODE: Final = "model_not_found"
# Codes after which reconnecting cannot help (LiveKit and pipecat treat the first four as
# fatal); the service sends them as an error event, then closes the socket.
FATAL_ERROR_CODES: Final = frozenset(
    {
        *AUTH_ERROR_CODES,
        *QUOTA_ERROR_CODES,
        BETA_DISABLED_CODE,
        MODEL_NOT_FOUND_CODE,
    }
)

# Errors that only mean "nothing to cancel/truncate"; the session is fine.
BENIGN_ERROR_CODES: Final = frozenset(
    {
        "response_cancel_not_active",
        "input_audio_buffer_commit_empty",
        "unsupported_content_type",
    }
)
BUSY_CODE: Final = "conversation_already_has_active_response"
SESSION_EXPIRED_CODE: Final = "session_expired"


def error_for_code(code: str | None, message: str) -> RealtimeError | None:
    """Map an `error` event code to the typed exception it implies, or None if it is benign."""
    if code in AUTH_ERROR_CODES:
        return RealtimeAuthError(f"{code}: {message}")
    if code in QUOTA_ERROR_CODES:
        return RealtimeQuotaError(f"{code}: {message}")
    if code == RATE_LIMIT_CODE:
        return RealtimeRateLimitError(f"{code}: {message}")
    if code == BETA_DISABLED_CODE:
        return RealtimeProtocolError(
            f"{code}: the service no longer accepts the beta protocol; use the GA protocol",
            reason=code,
        )
    if code == MODEL_NOT_FOUND_CODE:
        # The session opens with any model; its first response fails with this code
        # (openai-realtime-console#561, realtime-protocol.md §3.1).
        return RealtimeSettingRefused(f"{code}: {message}", setting=Setting.MODEL, reason=code)
    return None


# Which setting a refused `session.update` names in `error.param` (GA paths, beta names).
_SETTING_PARAMS: Final = (
    ("transcription", Setting.TRANSCRIPTION_MODEL),
    ("voice", Setting.VOICE),
    ("tools", Setting.TOOLS),
    ("tool_choice", Setting.TOOLS),
)


def setting_refusal(code: str | None, param: str | None, message: str) -> RealtimeError | None:
    """The refusal of a `session.update` that names a setting, or None.

    A beta-shaped (flat) update on the GA service is answered `missing_required_parameter`,
    param `session.type`, and the socket stays open (TanStack/ai#586,
    microsoft/agent-framework#924): the dialect is refused. A value the service does not take
    (a voice, a transcription model, a tool's schema) names its path in `param`.
    """
    text = f"{code}: {message}"
    if param == "session.type" or (code == "missing_required_parameter" and not param):
        return RealtimeProtocolError(
            f"{text} (the service expects the GA protocol)", reason=code or ""
        )
    path = param or ""
    if code == "invalid_function_parameters":
        path = path or "session.tools"
    for part, setting in _SETTING_PARAMS:
        if part in path:
            return RealtimeSettingRefused(text, setting=setting, reason=code or "")
    return None


def error_event_exception(event: dict[str, Any], api_key: str) -> RealtimeError:
    """Turn an `error` event received during setup into the typed error it implies."""
    error = event.get("error")
    error = error if isinstance(error, dict) else {}
    code = error.get("code")
    code = code if isinstance(code, str) else None
    param = error.get("param")
    message = redact(str(error.get("message", "")), api_key)
    mapped = error_for_code(code, message) or setting_refusal(
        code, param if isinstance(param, str) else None, message
    )
    return mapped or RealtimeConnectionError(f"server error {code}: {message}")


def is_truncate_error(message: str) -> bool:
    """Whether an error only says a truncate went past the audio (nothing to cut)."""
    text = message.lower()
    return "truncat" in text or "shorter than" in text


def redact(text: str, secret: str) -> str:
    """Replace every occurrence of a secret (and its tail) in text before it is logged or raised."""
    if not secret:
        return text
    text = text.replace(secret, "***")
    if len(secret) > 8:
        text = text.replace(secret[-8:], "***")
    return text
