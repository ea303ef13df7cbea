"""The Realtime wire as the service speaks it: SDK validation, the session shape, PCM16, images.

Every client event is validated against the `openai` SDK models with an unknown-key walk
(`client_event_problems`), every event the server sends against the server models
(`server_event_problems`). `default_session` is the session a fresh connection reports;
`merge_session` applies a `session.update` the way the service does.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
import copy
from typing import Annotated, Any

from openai.types.beta.realtime import (
    RealtimeClientEvent as BetaClientEvent,
    RealtimeServerEvent as BetaServerEvent,
)
from openai.types.realtime import RealtimeClientEvent, RealtimeServerEvent
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

CLIENT_EVENT: TypeAdapter[Any] = TypeAdapter(
    Annotated[RealtimeClientEvent, Field(discriminator="type")]
)
SERVER_EVENT: TypeAdapter[Any] = TypeAdapter(
    Annotated[RealtimeServerEvent, Field(discriminator="type")]
)
BETA_CLIENT_EVENT: TypeAdapter[Any] = TypeAdapter(
    Annotated[BetaClientEvent, Field(discriminator="type")]
)
BETA_SERVER_EVENT: TypeAdapter[Any] = TypeAdapter(
    Annotated[BetaServerEvent, Field(discriminator="type")]
)

API_KEY = "sk-test-0123456789abcdefSECRET"
# Built-in voices (SDK RealtimeAudioConfigOutput.voice); another name is an `invalid_value`.
VOICES = ("alloy", "ash", "ballad", "coral", "echo", "sage", "shimmer", "verse", "marin", "cedar")
BETA_DISABLED = (
    "beta_api_shape_disabled",
    "The Realtime beta API shape is no longer supported; use the GA interface.",
    4000,
    None,
)
SESSION_LIFETIME = 60 * 60.0  # GA sessions end after 60 minutes (realtime-protocol.md §3.3)
RATE_LIMITS = [
    {"name": "requests", "limit": 1000, "remaining": 999, "reset_seconds": 0.06},
    {"name": "tokens", "limit": 40000, "remaining": 39000, "reset_seconds": 1.5},
]
BYTES_PER_MS = 48  # PCM16 mono 24 kHz
MIN_COMMIT_MS = 100  # the service refuses to commit less audio
VAD_RMS = 500.0  # energy above which the toy VAD hears speech

# GA name -> beta name for events the beta server sends.
BETA_EVENT_NAMES = {
    "response.output_text.delta": "response.text.delta",
    "response.output_text.done": "response.text.done",
    "response.output_audio.delta": "response.audio.delta",
    "response.output_audio.done": "response.audio.done",
    "response.output_audio_transcript.delta": "response.audio_transcript.delta",
    "response.output_audio_transcript.done": "response.audio_transcript.done",
    "conversation.item.added": "conversation.item.created",
}
GA_ONLY_EVENTS = {"conversation.item.done"}


def unknown_fields(obj: Any, path: str = "$") -> Iterator[str]:
    """Yield paths of keys the SDK models did not declare (they allow extras silently)."""
    if isinstance(obj, BaseModel):
        for key in obj.__pydantic_extra__ or {}:
            yield f"{path}.{key}"
        for name in type(obj).model_fields:
            yield from unknown_fields(getattr(obj, name), f"{path}.{name}")
    elif isinstance(obj, (list, tuple)):
        for index, value in enumerate(obj):
            yield from unknown_fields(value, f"{path}[{index}]")
    elif isinstance(obj, dict):
        for key, value in obj.items():
            yield from unknown_fields(value, f"{path}.{key}")


def client_event_problems(payload: Any, *, beta: bool = False) -> list[str]:
    """Return why a client event is invalid for the SDK types (empty when it is valid)."""
    adapter = BETA_CLIENT_EVENT if beta else CLIENT_EVENT
    try:
        event = adapter.validate_python(payload)
    except ValidationError as err:
        return [f"{e['loc']}: {e['msg']}" for e in err.errors()]
    return [f"unknown key {path}" for path in unknown_fields(event)]


def server_event_problems(payload: Any, *, beta: bool = False) -> list[str]:
    """Return why a server event is invalid for the SDK types (extras allowed, as on the wire)."""
    adapter = BETA_SERVER_EVENT if beta else SERVER_EVENT
    try:
        adapter.validate_python(payload)
    except ValidationError as err:
        return [f"{e['loc']}: {e['msg']}" for e in err.errors()]
    return []


def default_session(model: str, *, beta: bool = False) -> dict[str, Any]:
    """The effective session a fresh connection starts with (as the service reports it)."""
    if beta:
        return {
            "id": "sess_beta",
            "object": "realtime.session",
            "model": model,
            "modalities": ["text", "audio"],
            "instructions": "",
            "voice": "alloy",
            "input_audio_format": "pcm16",
            "output_audio_format": "pcm16",
            "input_audio_transcription": None,
            "turn_detection": {
                "type": "server_vad",
                "threshold": 0.5,
                "prefix_padding_ms": 300,
                "silence_duration_ms": 200,
                "create_response": True,
                "interrupt_response": True,
            },
            "tools": [],
            "tool_choice": "auto",
            "temperature": 0.8,
            "max_response_output_tokens": "inf",
        }
    return {
        "type": "realtime",
        "object": "realtime.session",
        "id": "sess_test",
        "model": model,
        "output_modalities": ["audio"],
        "instructions": "",
        "tools": [],
        "tool_choice": "auto",
        "max_output_tokens": "inf",
        "tracing": None,
        "truncation": "auto",
        "prompt": None,
        "include": None,
        "expires_at": 0,
        "audio": {
            "input": {
                "format": {"type": "audio/pcm", "rate": 24000},
                "transcription": None,
                "noise_reduction": None,
                "turn_detection": {
                    "type": "server_vad",
                    "threshold": 0.5,
                    "prefix_padding_ms": 300,
                    "silence_duration_ms": 200,
                    "idle_timeout_ms": None,
                    "create_response": True,
                    "interrupt_response": True,
                },
            },
            "output": {
                "format": {"type": "audio/pcm", "rate": 24000},
                "voice": "alloy",
                "speed": 1.0,
            },
        },
    }


def merge_session(current: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Apply a session.update: present fields replace, `audio.input/output` merge key by key."""
    merged = copy.deepcopy(current)
    for key, value in update.items():
        if key == "audio" and isinstance(value, dict):
            audio = merged.setdefault("audio", {})
            for side in ("input", "output"):
                if isinstance(value.get(side), dict):
                    audio.setdefault(side, {}).update(copy.deepcopy(value[side]))
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def tone(ms: int, amplitude: int = 8000) -> bytes:
    """Loud PCM16 audio (a square wave) that the toy VAD hears as speech."""
    samples = ms * 24
    return b"".join(
        (amplitude if (i // 24) % 2 else -amplitude).to_bytes(2, "little", signed=True)
        for i in range(samples)
    )


def silence(ms: int) -> bytes:
    """PCM16 silence of the given duration."""
    return bytes(ms * BYTES_PER_MS)


def rms(pcm: bytes) -> float:
    count = len(pcm) // 2
    if not count:
        return 0.0
    total = sum(
        int.from_bytes(pcm[i : i + 2], "little", signed=True) ** 2 for i in range(0, count * 2, 2)
    )
    return float((total / count) ** 0.5)


def input_images(item: dict[str, Any]) -> list[bytes]:
    """The decoded pictures of an item's `input_image` parts."""
    content = item.get("content") if item.get("type") == "message" else None
    return [
        base64.b64decode(part["image_url"].partition(",")[2])
        for part in content or []
        if part.get("type") == "input_image"
    ]


def image_problem(item: dict[str, Any]) -> str | None:
    """Why the service would refuse an item's `input_image` part, if it would.

    The SDK's `Content.image_url` docstring: base64 image bytes as a data URI, PNG or JPEG.
    """
    content = item.get("content") if item.get("type") == "message" else None
    for part in content or []:
        if part.get("type") != "input_image":
            continue
        url = part.get("image_url")
        if not isinstance(url, str):
            return "input_image without image_url"
        head, _, data = url.partition(",")
        if head not in ("data:image/jpeg;base64", "data:image/png;base64"):
            return "image_url is not a base64 JPEG or PNG data URI"
        try:
            raw = base64.b64decode(data, validate=True)
        except ValueError:
            return "image_url is not valid base64"
        if not raw.startswith((b"\xff\xd8\xff", b"\x89PNG")):
            return "image_url does not hold a JPEG or PNG"
    return None
