"""Setup refusals as the service sends them (issue 28 item 4; realtime-protocol.md §3.1).

A voice, transcription model or tool schema the service does not take is refused with an
`error` naming the field; an unknown model opens the session and fails its first response; a
beta-shaped event on the GA interface is refused without closing the socket.
"""

from __future__ import annotations

from typing import Any

from websockets.asyncio.server import ServerConnection

from .interfaces import Connection, Service
from .protocol import VOICES
from .scripts import ZERO_USAGE, ScriptedResponse


def _voice_refused(voice: Any) -> bool:
    """A voice the service does not have: built-in names, or a custom `{"id": "voice_..."}`."""
    if isinstance(voice, dict):
        return not str(voice.get("id", "")).startswith("voice_")
    return voice is not None and voice not in VOICES


def setting_refusal(server: Service, update: dict[str, Any]) -> tuple[str, str, str] | None:
    """Why the service refuses a session.update's value: (code, message, param), or None.

    The service answers an `error` event naming the refused field in `param` and keeps the
    socket open; nothing of the update is applied (a voice, transcription model or tool schema
    it does not take).
    """
    if server.beta:
        voice = update.get("voice")
        transcription = update.get("input_audio_transcription")
        prefix = "session"
        voice_param = "session.voice"
        transcription_param = "session.input_audio_transcription.model"
    else:
        audio = update.get("audio") or {}
        voice = (audio.get("output") or {}).get("voice")
        transcription = (audio.get("input") or {}).get("transcription")
        prefix = "session"
        voice_param = "session.audio.output.voice"
        transcription_param = "session.audio.input.transcription.model"
    if _voice_refused(voice):
        return (
            "invalid_value",
            f"Invalid value: '{voice}'. Supported values are: {VOICES}.",
            (voice_param),
        )
    known = server.transcription_models
    if isinstance(transcription, dict) and known is not None:
        model = transcription.get("model")
        if model not in known:
            return (
                "invalid_value",
                f"Invalid value: '{model}'. Supported values are: {sorted(known)}.",
                transcription_param,
            )
    for index, tool in enumerate(update.get("tools") or []):
        schema = tool.get("parameters")
        if schema is not None and (not isinstance(schema, dict) or schema.get("type") != "object"):
            message = f"Invalid schema for function '{tool.get('name')}': not a JSON object schema."
            return "invalid_function_parameters", message, f"{prefix}.tools[{index}].parameters"
    return None


def model_refusal(server: Service, ws: ServerConnection) -> ScriptedResponse | None:
    """The response of a session whose model is unknown: failed, `model_not_found`.

    The service opens the session for any model and fails its first response
    (openai-realtime-console#561, realtime-protocol.md §3.1).
    """
    request = ws.request
    if server.known_models is None or request is None:
        return None
    model = request.path.partition("model=")[2].partition("&")[0]
    if model in server.known_models:
        return None
    return ScriptedResponse(
        status="failed",
        error={
            "type": "invalid_request_error",
            "code": "model_not_found",
            "message": f"The model '{model}' does not exist or you do not have access to it.",
        },
        usage=ZERO_USAGE,
    )


def transcription_failed(item_id: str) -> dict[str, Any]:
    """The event of an input transcription that failed (SDK
    ConversationItemInputAudioTranscriptionFailedEvent: item_id, content_index, error)."""
    return {
        "type": "conversation.item.input_audio_transcription.failed",
        "item_id": item_id,
        "content_index": 0,
        "error": {
            "type": "transcription_error",
            "code": "audio_unintelligible",
            "message": "The audio could not be transcribed.",
            "param": None,
        },
    }


async def refuse_beta_shape(session: Connection, event: dict[str, Any]) -> None:
    """A beta-shaped (flat) session.update on the GA service, without the beta header.

    Answered `missing_required_parameter`, param `session.type`, with no `error.event_id`;
    the socket stays open and the settings are not applied (TanStack/ai#586,
    microsoft/agent-framework#924). Another beta-shaped event gets `invalid_request_error`.
    """
    missing = event.get("type") == "session.update"
    await session.send(
        {
            "type": "error",
            "error": {
                "type": "invalid_request_error",
                "code": "missing_required_parameter" if missing else "unknown_parameter",
                "message": (
                    "Missing required parameter: 'session.type'."
                    if missing
                    else f"Unknown event shape: {event.get('type')}"
                ),
                "param": "session.type" if missing else None,
            },
        }
    )
