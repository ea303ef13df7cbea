"""The Realtime wire format: server frames to typed values, typed values to client events.

Pure functions, no state: `protocol.py` decides when, these decide how it looks on the wire.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
import json
import logging
from typing import Any, Final

from .config import FunctionTool, Modality
from .endpoint import Dialect
from .errors import (
    BUSY_CODE,
    RATE_LIMIT_CODE,
    RealtimeError,
    RealtimeRequestError,
    error_for_code,
    redact,
    setting_refusal,
)
from .events import RequestRefused, ServerError, ga_event_type
from .response import AudioDelta, FunctionCall, ResponseEvent, TextDelta, TranscriptDelta
from .tracker import Cut

__all__ = [
    "DELTA_EVENTS",
    "cut_events",
    "decode",
    "expires_at",
    "int_field",
    "message_item",
    "object_field",
    "parse_delta",
    "redacted_details",
    "refusal",
    "response_params",
]

_LOGGER = logging.getLogger(__name__)

# Server events that carry one piece of a response (GA names; beta names are aliased first).
DELTA_EVENTS: Final = frozenset(
    {
        "response.output_audio.delta",
        "response.output_text.delta",
        "response.output_audio_transcript.delta",
        "response.output_item.done",
    }
)


def decode(raw: str | bytes) -> dict[str, Any] | None:
    """One server frame as an event with its GA type; None (logged) for a frame to ignore."""
    try:
        event = json.loads(raw)
    except ValueError:
        _LOGGER.debug("Ignoring a non-JSON frame of %d bytes", len(raw))
        return None
    if not isinstance(event, dict) or not isinstance(event.get("type"), str):
        _LOGGER.debug("Ignoring a frame without an event type")
        return None
    event["type"] = ga_event_type(event["type"])
    return event


def parse_delta(event: dict[str, Any]) -> ResponseEvent | None:
    """The typed piece of a response a delta event carries; None (logged) for nothing usable."""
    kind = event["type"]
    item_id = str(event.get("item_id", ""))
    if kind == "response.output_audio.delta":
        try:
            pcm = base64.b64decode(str(event.get("delta", "")), validate=True)
        except binascii.Error:
            _LOGGER.debug("Dropping an audio delta with invalid base64")
            return None
        return AudioDelta(pcm, item_id)
    if kind == "response.output_text.delta":
        return TextDelta(str(event.get("delta", "")), item_id)
    if kind == "response.output_audio_transcript.delta":
        return TranscriptDelta(str(event.get("delta", "")), item_id)
    item = object_field(event, "item")
    if item.get("type") != "function_call":
        return None
    if item.get("status") != "completed":
        _LOGGER.debug("Skipping function call %s (%s)", item.get("name"), item.get("status"))
        return None
    return FunctionCall(
        call_id=str(item.get("call_id", "")),
        name=str(item.get("name", "")),
        arguments=str(item.get("arguments", "")),
        item_id=str(item.get("id", "")),
    )


def expires_at(event: dict[str, Any]) -> float | None:
    """session.created's `expires_at` (epoch seconds), if the service gave a valid one."""
    value = object_field(event, "session").get("expires_at")
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
        return None
    return float(value)


def object_field(event: dict[str, Any], key: str) -> dict[str, Any]:
    """A member that should be an object; empty when it is missing or malformed."""
    value = event.get(key)
    return value if isinstance(value, dict) else {}


def int_field(event: dict[str, Any], key: str) -> int:
    """A member that should be an integer; 0 when it is missing or malformed."""
    value = event.get(key)
    return value if isinstance(value, int) else 0


def refusal(event_id: str, error: ServerError, message: str, *, update: bool) -> RequestRefused:
    """What a refused request means: retry later (busy, rate limited) or a typed error."""
    text = f"{error.code}: {message}"
    if update:  # a session.update: a refused setting is named
        refused = setting_refusal(error.code, error.param, message)
        return RequestRefused(event_id, refused or RealtimeError(text))
    if error.code == BUSY_CODE:
        busy = RealtimeRequestError(text, code=error.code)
        return RequestRefused(event_id, busy, retry=True, busy=True)
    if error.code == RATE_LIMIT_CODE and (limited := error_for_code(error.code, message)):
        return RequestRefused(event_id, limited, retry=True)
    return RequestRefused(event_id, RealtimeRequestError(text, code=error.code))


def cut_events(cut: Cut) -> list[dict[str, Any]]:
    """A barge-in on the wire: `response.cancel` for each response, then the truncate."""
    events: list[dict[str, Any]] = [
        {"type": "response.cancel", "response_id": rid} for rid in cut.cancel
    ]
    if cut.item_id is not None:
        events.append(
            {
                "type": "conversation.item.truncate",
                "item_id": cut.item_id,
                "content_index": 0,
                "audio_end_ms": cut.end_ms,
            }
        )
    return events


def redacted_details(details: Any, api_key: str) -> dict[str, Any] | None:
    """A response's `status_details` with the API key taken out of its error message."""
    if not isinstance(details, dict):
        return None
    error = details.get("error")
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        error = {**error, "message": redact(error["message"], api_key)}
        return {**details, "error": error}
    return details


def message_item(role: str, text: str, dialect: Dialect) -> dict[str, Any]:
    """A `conversation.item.create` of one text message (the beta shape names parts `text`)."""
    part = "output_text" if dialect is Dialect.GA else "text"
    if role == "user":
        part = "input_text"
    return {
        "type": "conversation.item.create",
        "item": {"type": "message", "role": role, "content": [{"type": part, "text": text}]},
    }


def response_params(
    dialect: Dialect,
    *,
    instructions: str | None,
    modality: Modality | None,
    out_of_band: bool,
    tools: Sequence[FunctionTool] | None,
    tool_choice: str | None = None,
    input_items: Sequence[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The `response` overrides of a response.create (this response only).

    `input_items` replaces the conversation as the response's context (`[]`: none at all, so
    the conversation is not billed as input again).
    """
    params: dict[str, Any] = {}
    if instructions is not None:
        params["instructions"] = instructions
    if modality is not None:
        if dialect is Dialect.BETA:
            params["modalities"] = ["text"] if modality is Modality.TEXT else ["text", "audio"]
        else:
            params["output_modalities"] = [str(modality)]
    if out_of_band:
        params["conversation"] = "none"
    if tools is not None:
        params["tools"] = [tool.render() for tool in tools]
    if tool_choice is not None:
        params["tool_choice"] = tool_choice
    if input_items is not None:
        params["input"] = list(input_items)
    return params
