"""A protocol-faithful OpenAI Realtime server on 127.0.0.1 for tests.

It speaks the GA WebSocket protocol (or the legacy beta shape), validates every client event
against the `openai` SDK models with an unknown-key walk, validates every event it sends, and
plays scripted model responses (text, audio, transcripts, tool calls, cancellations, errors).
Violations are recorded in `server.violations`; the `realtime_server` fixture fails the test
on teardown when any were seen.

Offline use: `python -m tests.realtime_server --port 8765 --scenario config/scenario.yaml`
answers from a YAML scenario (see `Scenario`) with speech synthesised by espeak-ng.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator
import contextlib
import copy
from dataclasses import dataclass, field
import email.utils
from http import HTTPStatus
import itertools
import json
import logging
from pathlib import Path
import re
import signal
import socket
import sys
from typing import Annotated, Any

from openai.types.beta.realtime import (
    RealtimeClientEvent as BetaClientEvent,
    RealtimeServerEvent as BetaServerEvent,
)
from openai.types.realtime import RealtimeClientEvent, RealtimeServerEvent
from pydantic import BaseModel, Field, TypeAdapter, ValidationError
import pytest
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
import yaml

from simulator.changes import Changes, Listener
from simulator.outcome import describe_output
from simulator.speech import SpeechError, synthesize
from tests.realtime_discipline import ServiceDiscipline
from tests.speech_match import Features, best_match, features

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


def _rms(pcm: bytes) -> float:
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


@dataclass
class ScriptedCall:
    """A function call the scripted model makes."""

    name: str
    arguments: str = "{}"
    call_id: str | None = None
    status: str = "completed"


@dataclass
class ScriptedResponse:
    """One model response: message text/audio, tool calls, and how it ends.

    `hold` pauses the response after its deltas until the event is set or the client cancels;
    `late_deltas` audio deltas follow a cancellation before `response.done`.
    """

    text: str = ""
    audio: bytes = b""
    calls: list[ScriptedCall] = field(default_factory=list)
    chunks: int = 2
    hold: asyncio.Event | None = None
    late_deltas: int = 0
    status: str = "completed"
    error: dict[str, Any] | None = None
    usage: dict[str, Any] | None = None


@dataclass(eq=False)
class _Running:
    """A response in progress, in the default conversation or out of band (`conversation: none`)."""

    id: str
    out_of_band: bool
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)
    reason: str | None = None
    task: asyncio.Task[None] | None = None


def default_usage() -> dict[str, Any]:
    """A response.done usage block shaped like the spec example."""
    return {
        "total_tokens": 253,
        "input_tokens": 132,
        "output_tokens": 121,
        "input_token_details": {
            "text_tokens": 119,
            "audio_tokens": 13,
            "image_tokens": 0,
            "cached_tokens": 64,
            "cached_tokens_details": {"text_tokens": 64, "audio_tokens": 0, "image_tokens": 0},
        },
        "output_token_details": {"text_tokens": 30, "audio_tokens": 91},
    }


# A response that failed before the model ran bills nothing.
ZERO_USAGE = {
    "total_tokens": 0,
    "input_tokens": 0,
    "output_tokens": 0,
    "input_token_details": {
        "text_tokens": 0,
        "audio_tokens": 0,
        "image_tokens": 0,
        "cached_tokens": 0,
    },
    "output_token_details": {"text_tokens": 0, "audio_tokens": 0},
}


def _chunks(data: Any, count: int) -> list[Any]:
    if not data:
        return []
    count = max(1, min(count, len(data)))
    size = -(-len(data) // count)
    return [data[i : i + size] for i in range(0, len(data), size)]


class _Session:
    """State of one client connection."""

    def __init__(self, server: RealtimeServer, ws: ServerConnection) -> None:
        self.server = server
        self.ws = ws
        self.session = default_session(server.model, beta=server.beta)
        self.items: dict[str, dict[str, Any]] = {}
        self.audio_ms: dict[str, int] = {}
        self.last_item_id: str | None = None
        self.buffer = bytearray()
        self.speaking = False
        self.silence_ms = 0
        self.speech_item: str | None = None
        self.buffer_start_ms = 0
        self.running: dict[str, _Running] = {}
        self.pending_transcripts: list[dict[str, Any]] = []
        self.out_of_band_items: set[str] = set()
        self.tails: set[asyncio.Task[None]] = set()

    @property
    def response_id(self) -> str | None:
        """The response writing to the default conversation (only one at a time)."""
        return next((r.id for r in self.running.values() if not r.out_of_band), None)

    def cancel_tasks(self) -> None:
        """Stop every response task of this connection."""
        for running in self.running.values():
            if running.task is not None:
                running.task.cancel()
        for tail in self.tails:
            tail.cancel()

    # -- helpers -----------------------------------------------------------------------------

    @property
    def turn_detection(self) -> dict[str, Any] | None:
        if self.server.beta:
            return self.session.get("turn_detection")
        td: dict[str, Any] | None = self.session["audio"]["input"].get("turn_detection")
        return td

    @property
    def output_modalities(self) -> list[str]:
        if self.server.beta:
            return ["audio"] if "audio" in self.session["modalities"] else ["text"]
        modalities: list[str] = self.session["output_modalities"]
        return modalities

    async def send(self, event: dict[str, Any]) -> None:
        await self.server.send(event, ws=self.ws)

    async def error(self, code: str, message: str, event_id: str | None) -> None:
        await self.send(
            {
                "type": "error",
                "error": {
                    "type": "invalid_request_error",
                    "code": code,
                    "message": message,
                    "param": None,
                    "event_id": event_id,
                },
            }
        )

    async def refuse_setting(
        self, code: str, message: str, param: str, event_id: str | None
    ) -> None:
        """Refuse a session.update naming the field (`param`); the socket stays open."""
        await self.send(
            {
                "type": "error",
                "error": {
                    "type": "invalid_request_error",
                    "code": code,
                    "message": message,
                    "param": param,
                    "event_id": event_id,
                },
            }
        )

    def _add_item(self, item: dict[str, Any]) -> str | None:
        previous = self.last_item_id
        self.items[item["id"]] = item
        self.last_item_id = item["id"]
        return previous

    # -- client events -----------------------------------------------------------------------

    async def handle(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        handler = getattr(self, "on_" + kind.replace(".", "_"), None)
        if handler is not None:
            await handler(event)

    async def fatal(self, code: str, message: str, close_code: int, event_id: str | None) -> None:
        """Send a fatal error event, then close: the way the service ends a session it refuses."""
        await self.send(
            {
                "type": "error",
                "error": {
                    "type": "invalid_request_error",
                    "code": code,
                    "message": message,
                    "param": None,
                    "event_id": event_id,
                },
            }
        )
        await self.ws.close(close_code, code if close_code >= 4000 else "")

    async def expire(self) -> None:
        """End the session at its `expires_at` like the service: `session_expired`, close 1001."""
        minutes = round(self.server.session_lifetime / 60)
        message = f"Your session hit the maximum duration of {minutes} minutes."
        await self.error("session_expired", message, None)
        await self.ws.close(1001, message)

    async def on_session_update(self, event: dict[str, Any]) -> None:
        if (refused := setting_refusal(self.server, event["session"])) is not None:
            await self.refuse_setting(*refused, event.get("event_id"))
            return
        self.session = merge_session(self.session, event["session"])
        await self.send({"type": "session.updated", "session": copy.deepcopy(self.session)})

    async def on_input_audio_buffer_append(self, event: dict[str, Any]) -> None:
        pcm = base64.b64decode(event["audio"])
        self.buffer += pcm
        td = self.turn_detection
        if td is None:
            return
        chunk_ms = len(pcm) // BYTES_PER_MS
        if _rms(pcm) >= VAD_RMS:
            self.silence_ms = 0
            if not self.speaking:
                self.speaking = True
                self.speech_item = self.server.new_id("item")
                start_ms = self.buffer_start_ms + (len(self.buffer) - len(pcm)) // BYTES_PER_MS
                await self.send(
                    {
                        "type": "input_audio_buffer.speech_started",
                        "audio_start_ms": start_ms,
                        "item_id": self.speech_item,
                    }
                )
                if td.get("interrupt_response", True):
                    # `interrupt_response` cancels "any ongoing response with output to the
                    # default conversation (i.e. `conversation` of `auto`)" (SDK docstring of
                    # RealtimeAudioInputTurnDetection.ServerVad): out-of-band ones keep running.
                    for running in self.running.values():
                        if not running.out_of_band and not running.cancelled.is_set():
                            running.reason = "turn_detected"
                            running.cancelled.set()
            return
        if not self.speaking:
            return
        self.silence_ms += chunk_ms
        if self.silence_ms < int(td.get("silence_duration_ms") or 500):
            return
        self.speaking = False
        end_ms = self.buffer_start_ms + len(self.buffer) // BYTES_PER_MS
        item_id = self.speech_item or self.server.new_id("item")
        await self.send(
            {
                "type": "input_audio_buffer.speech_stopped",
                "audio_end_ms": end_ms,
                "item_id": item_id,
            }
        )
        await self._commit(item_id)
        if not td.get("create_response", True):
            return
        busy = [r for r in self.running.values() if not r.out_of_band]
        if any(not r.cancelled.is_set() for r in busy):
            # "If `interrupt_response` is set to `false` this may fail to create a response if
            # the model is already responding" (SDK docstring of ServerVad).
            return
        for running in busy:  # an interrupted response ends before the next one starts
            if running.task is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.shield(running.task)
        await self._start_response({})

    async def _commit(self, item_id: str) -> None:
        item = {
            "id": item_id,
            "type": "message",
            "role": "user",
            "object": "realtime.item",
            "status": "completed",
            "content": [{"type": "input_audio", "transcript": None}],
        }
        heard = bytes(self.buffer)
        self.buffer_start_ms += len(self.buffer) // BYTES_PER_MS
        self.buffer.clear()
        previous = self._add_item(item)
        await self.send(
            {
                "type": "input_audio_buffer.committed",
                "item_id": item_id,
                "previous_item_id": previous,
            }
        )
        await self._item_added(item, previous)
        transcript = self.server.user_transcript
        if self.server.scenario is not None:
            transcript = await self.server.scenario.hear_speech(self, heard)
        if transcript is not None and self.server.transcription_fails:
            await self.send(transcription_failed(item_id))
        elif transcript is not None:
            completed = {
                "type": "conversation.item.input_audio_transcription.completed",
                "item_id": item_id,
                "content_index": 0,
                "transcript": transcript,
                "usage": copy.deepcopy(self.server.discipline.transcription_usage),
            }
            # Transcription runs asynchronously to the response: the SDK docstring of
            # ConversationItemInputAudioTranscriptionCompletedEvent says it "can be emitted
            # before or after" other events; `transcript_after_response` scripts the late order.
            if self.server.commit_transcript_delay is not None:
                await self.transcribe_later(completed, self.server.commit_transcript_delay)
            elif self.server.transcript_after_response:
                self.pending_transcripts.append(completed)
            else:
                await self.send(completed)

    async def _item_added(self, item: dict[str, Any], previous: str | None) -> None:
        await self.send(
            {"type": "conversation.item.added", "item": item, "previous_item_id": previous}
        )
        if not self.server.beta:
            await self.send(
                {"type": "conversation.item.done", "item": item, "previous_item_id": previous}
            )

    async def on_input_audio_buffer_commit(self, event: dict[str, Any]) -> None:
        held_ms = len(self.buffer) / BYTES_PER_MS
        if held_ms < MIN_COMMIT_MS:
            # The service refuses commits under 100 ms (realtime-protocol.md §3.1; pipecat and
            # LiveKit treat `input_audio_buffer_commit_empty` as benign).
            message = (
                "Error committing input audio buffer: buffer too small. Expected at least "
                f"{MIN_COMMIT_MS}ms of audio, but buffer only has {held_ms:.2f}ms of audio."
            )
            await self.error("input_audio_buffer_commit_empty", message, event.get("event_id"))
            return
        await self._commit(self.server.new_id("item"))

    async def on_input_audio_buffer_clear(self, event: dict[str, Any]) -> None:
        self.buffer_start_ms += len(self.buffer) // BYTES_PER_MS
        self.buffer.clear()
        self.speaking = False
        await self.send({"type": "input_audio_buffer.cleared"})

    async def on_conversation_item_create(self, event: dict[str, Any]) -> None:
        if problem := image_problem(event["item"]):
            self.server.violations.append(f"client sent a bad input_image: {problem}")
            await self.error("invalid_value", problem, event.get("event_id"))
            return
        item = copy.deepcopy(event["item"])
        item.setdefault("id", self.server.new_id("item"))
        item["object"] = "realtime.item"
        item["status"] = "completed"
        previous = self._add_item(item)
        await self._item_added(item, previous)

    async def on_conversation_item_truncate(self, event: dict[str, Any]) -> None:
        item_id = event["item_id"]
        if item_id in self.out_of_band_items:
            # An out-of-band response's items are not in the conversation: nothing to truncate.
            await self.error(
                "item_truncate_invalid_item_id",
                f"Item with item_id '{item_id}' not found in the conversation",
                event.get("event_id"),
            )
            return
        if item_id not in self.audio_ms:
            await self.error(
                "invalid_value",
                "Only model output audio messages can be truncated",
                event.get("event_id"),
            )
            return
        length = self.audio_ms[item_id]
        if event["audio_end_ms"] > length:
            await self.error(
                "invalid_value",
                f"Audio content of {length}ms is already shorter than {event['audio_end_ms']}ms",
                event.get("event_id"),
            )
            return
        self.audio_ms[item_id] = event["audio_end_ms"]
        await self.send(
            {
                "type": "conversation.item.truncated",
                "item_id": item_id,
                "content_index": event["content_index"],
                "audio_end_ms": event["audio_end_ms"],
            }
        )

    async def on_conversation_item_delete(self, event: dict[str, Any]) -> None:
        if self.items.pop(event["item_id"], None) is None:
            await self.error("item_delete_invalid_item_id", "no such item", event.get("event_id"))
            return
        await self.send({"type": "conversation.item.deleted", "item_id": event["item_id"]})

    async def on_response_create(self, event: dict[str, Any]) -> None:
        params = event.get("response") or {}
        if (rejection := self._rejection(params)) is not None:
            # Rejected requests answer with an error naming the client's event_id (SDK
            # RealtimeError.event_id: "The event_id of the client event that caused the error").
            code, message = rejection
            await self.error(code, message, event.get("event_id"))
            return
        # "Only one Response can write to the default Conversation at a time, but otherwise
        # multiple Responses can be created in parallel" (SDK docstring of ResponseCreateEvent).
        if params.get("conversation") != "none" and self.response_id is not None:
            await self.error(
                "conversation_already_has_active_response",
                "Conversation already has an active response",
                event.get("event_id"),
            )
            return
        await self._start_response(params)

    def _rejection(self, params: dict[str, Any]) -> tuple[str, str] | None:
        """Why the service refuses a response.create (other than an active response)."""
        if self.server.reject_responses:
            return self.server.reject_responses.popleft()
        voice = (
            params.get("voice")
            if self.server.beta
            else params.get("audio", {}).get("output", {}).get("voice")
        )
        if isinstance(voice, str) and voice not in VOICES:
            return "invalid_value", f"Invalid value: '{voice}'. Supported values are: {VOICES}."
        for tool in params.get("tools") or []:
            schema = tool.get("parameters")
            if (
                tool.get("type") == "function"
                and schema is not None
                and (not isinstance(schema, dict) or schema.get("type") != "object")
            ):
                return "invalid_function_parameters", (
                    f"Invalid schema for function '{tool.get('name')}': schema must be a JSON "
                    "Schema of 'type: \"object\"'."
                )
        return None

    async def on_response_cancel(self, event: dict[str, Any]) -> None:
        # "A specific response ID to cancel - if not provided, will cancel an in-progress
        # response in the default conversation" (SDK docstring of ResponseCancelEvent).
        wanted = event.get("response_id") or self.response_id
        running = self.running.get(wanted or "")
        if running is None:
            await self.error(
                "response_cancel_not_active",
                "Cancellation failed: no active response found",
                event.get("event_id"),
            )
            return
        if not running.cancelled.is_set():
            running.reason = "client_cancelled"
            running.cancelled.set()

    # -- responses ---------------------------------------------------------------------------

    async def _start_response(self, params: dict[str, Any]) -> None:
        if (refused := model_refusal(self.server, self.ws)) is not None:
            script = refused
        elif self.server.responses:
            script = self.server.responses.popleft()
        elif self.server.scenario is not None:
            script = await self.server.scenario.respond(self, params)
        else:
            script = ScriptedResponse(text="Hello.", audio=silence(40))
        running = _Running(self.server.new_id("resp"), params.get("conversation") == "none")
        self.running[running.id] = running
        self.server.response_params.append(params)
        running.task = asyncio.create_task(self._run_response(script, params, running))

    async def _run_response(
        self, script: ScriptedResponse, params: dict[str, Any], running: _Running
    ) -> None:
        try:
            await self._play_response(script, params, running)
        finally:
            self.running.pop(running.id, None)

    async def _play_response(
        self, script: ScriptedResponse, params: dict[str, Any], running: _Running
    ) -> None:
        response_id = running.id
        in_conversation = not running.out_of_band
        modalities = params.get("output_modalities") or self.output_modalities
        if self.server.beta:
            modalities = params.get("modalities") or self.session["modalities"]
        audio_out = "audio" in modalities
        output: list[dict[str, Any]] = []
        status = script.status

        def base() -> dict[str, Any]:
            return {"response_id": response_id}

        await self.send(
            {
                "type": "response.created",
                "response": {
                    "id": response_id,
                    "object": "realtime.response",
                    "status": "in_progress",
                    "output": [],
                    "metadata": self.server.discipline.metadata(params),
                },
            }
        )
        if self.server.response_delay:
            await asyncio.sleep(self.server.response_delay)  # the model's time to first output
        if script.text or script.audio:
            index = len(output)
            item_id = self.server.new_id("item")
            item: dict[str, Any] = {
                "id": item_id,
                "type": "message",
                "role": "assistant",
                "object": "realtime.item",
                "status": "in_progress",
                "content": [],
            }
            output.append(item)
            where = {**base(), "item_id": item_id, "output_index": index, "content_index": 0}
            await self.send(
                {
                    "type": "response.output_item.added",
                    **base(),
                    "output_index": index,
                    "item": item,
                }
            )
            await self._output_item_added(item, in_conversation)
            part_type = "audio" if audio_out else "text"
            await self.send(
                {"type": "response.content_part.added", **where, "part": {"type": part_type}}
            )
            if audio_out:
                if in_conversation:
                    self.audio_ms[item_id] = 0
                for pcm in _chunks(script.audio, script.chunks):
                    if in_conversation:
                        self.audio_ms[item_id] += len(pcm) // BYTES_PER_MS
                    await self.send(
                        {
                            "type": "response.output_audio.delta",
                            **where,
                            "delta": base64.b64encode(pcm).decode(),
                        }
                    )
                for piece in _chunks(script.text, script.chunks):
                    await self.send(
                        {"type": "response.output_audio_transcript.delta", **where, "delta": piece}
                    )
            else:
                for piece in _chunks(script.text, script.chunks):
                    await self.send({"type": "response.output_text.delta", **where, "delta": piece})
            if await self._hold(script, running):
                for _ in range(script.late_deltas):
                    await self.send(
                        {
                            "type": "response.output_audio.delta",
                            **where,
                            "delta": base64.b64encode(silence(20)).decode(),
                        }
                    )
                status = "cancelled"
            if audio_out:
                await self.send({"type": "response.output_audio.done", **where})
                await self.send(
                    {
                        "type": "response.output_audio_transcript.done",
                        **where,
                        "transcript": script.text,
                    }
                )
                content = {"type": self._content_type("output_audio"), "transcript": script.text}
            else:
                await self.send({"type": "response.output_text.done", **where, "text": script.text})
                content = {"type": self._content_type("output_text"), "text": script.text}
            await self.send(
                {"type": "response.content_part.done", **where, "part": {"type": part_type}}
            )
            item["status"] = "completed" if status != "cancelled" else "incomplete"
            item["content"] = [content]
            await self.send(
                {"type": "response.output_item.done", **base(), "output_index": index, "item": item}
            )
            if not self.server.beta and in_conversation:
                await self.send({"type": "conversation.item.done", "item": item})
        elif not script.calls and await self._hold(script, running):
            status = "cancelled"
        for call in script.calls:
            index = len(output)
            item_id = self.server.new_id("item")
            call_id = call.call_id or self.server.new_id("call")
            item = {
                "id": item_id,
                "type": "function_call",
                "object": "realtime.item",
                "status": "in_progress",
                "name": call.name,
                "call_id": call_id,
                "arguments": "",
            }
            output.append(item)
            await self.send(
                {
                    "type": "response.output_item.added",
                    **base(),
                    "output_index": index,
                    "item": item,
                }
            )
            await self._output_item_added(item, in_conversation)
            where = {**base(), "item_id": item_id, "output_index": index, "call_id": call_id}
            for piece in _chunks(call.arguments, 2):
                await self.send(
                    {"type": "response.function_call_arguments.delta", **where, "delta": piece}
                )
            if call is script.calls[-1] and await self._hold(script, running):
                status = "cancelled"
            item_status = call.status if status != "cancelled" else "incomplete"
            await self.send(
                {
                    "type": "response.function_call_arguments.done",
                    **where,
                    "name": call.name,
                    "arguments": call.arguments,
                }
            )
            item = {**item, "status": item_status, "arguments": call.arguments}
            output[index] = item
            if in_conversation:
                self.items[item_id] = item
            await self.send(
                {"type": "response.output_item.done", **base(), "output_index": index, "item": item}
            )
            if not self.server.beta and in_conversation:
                await self.send({"type": "conversation.item.done", "item": item})
        response: dict[str, Any] = {
            "id": response_id,
            "object": "realtime.response",
            "status": status,
            "output": output,
            "usage": script.usage if script.usage is not None else default_usage(),
            "metadata": self.server.discipline.metadata(params),
        }
        if status == "cancelled":
            response["status_details"] = {
                "type": "cancelled",
                "reason": running.reason or "client_cancelled",
            }
        elif status == "failed":
            response["status_details"] = {
                "type": "failed",
                "error": script.error or {"type": "server_error", "code": "server_error"},
            }
        elif status == "incomplete":
            response["status_details"] = {"type": "incomplete", "reason": "max_output_tokens"}
        if params.get("conversation") is not None:
            response["conversation_id"] = None if running.out_of_band else "conv_default"
        self.running.pop(response_id, None)
        await self.send({"type": "response.done", "response": response})
        self.server.responses_done += 1
        self.server.changes.notify()
        # The service reports the (adjusted) limits once a response is done; the SDK docstring
        # of RateLimitsUpdatedEvent says "at the beginning of a Response", observed traffic has
        # it after response.done: clients must not rely on its position.
        await self.send({"type": "rate_limits.updated", "rate_limits": RATE_LIMITS})
        pending, self.pending_transcripts = self.pending_transcripts, []
        if pending:
            tail = asyncio.create_task(self._send_later(pending, self.server.transcript_delay))
            self.tails.add(tail)
            tail.add_done_callback(self.tails.discard)

    async def transcribe_later(self, completed: dict[str, Any], delay: float) -> None:
        """Send an input transcript `delay` s after its commit, whatever else runs meanwhile.

        The service transcribes asynchronously (SDK docstring of
        ConversationItemInputAudioTranscriptionCompletedEvent: "can be emitted before or after"
        other events); issue 28 measured it 400 ms after the commit.
        """
        tail = asyncio.create_task(self._send_later([completed], delay))
        self.tails.add(tail)
        tail.add_done_callback(self.tails.discard)

    async def _send_later(self, events: list[dict[str, Any]], delay: float) -> None:
        """Late transcripts: transcription can take longer than a short reply."""
        await asyncio.sleep(delay)
        for event in events:
            await self.send(event)

    async def _output_item_added(self, item: dict[str, Any], in_conversation: bool) -> None:
        """An output item joins the conversation, or stays out of it (out-of-band response)."""
        if not in_conversation:
            self.out_of_band_items.add(item["id"])
            return
        previous = self._add_item(item)
        await self.send(
            {"type": "conversation.item.added", "item": item, "previous_item_id": previous}
        )

    def _content_type(self, ga: str) -> str:
        return ga.removeprefix("output_") if self.server.beta else ga

    async def _hold(self, script: ScriptedResponse, running: _Running) -> bool:
        """Wait for the script's hold event; return True when the response got cancelled."""
        if running.cancelled.is_set():
            return True
        if script.hold is None:
            return False
        waiters = [
            asyncio.ensure_future(script.hold.wait()),
            asyncio.ensure_future(running.cancelled.wait()),
        ]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
        return running.cancelled.is_set()


# The server's own handshake log would show the client's key; the client side is what the
# integration's tests check for leaks, so the stand-in service logs its wire at INFO only.
_WIRE_LOGGER = logging.getLogger("tests.realtime_server.wire")
_WIRE_LOGGER.setLevel(logging.INFO)


class RealtimeServer:
    """Scriptable Realtime server on 127.0.0.1 (see the module docstring)."""

    def __init__(
        self,
        *,
        api_key: str = API_KEY,
        model: str = "gpt-realtime",
        beta: bool = False,
        port: int = 0,
        scenario: Scenario | None = None,
    ) -> None:
        """Configure; call `start()` to listen (on `port`, 0 picks a free one)."""
        self.api_key = api_key
        self.model = model
        self.beta = beta
        self.scenario = scenario
        self.reject_auth = False
        self.handshake_status: int | None = None
        self.stall = False
        # Seconds from the WebSocket upgrade to `session.created`: the real service takes
        # 0.3-0.8 s from connect to a configured session; 0 answers at once.
        self.accept_delay = 0.0
        self.on_connect_error: dict[str, Any] | None = None
        self.close_on_connect: tuple[int, str] | None = None
        self.user_transcript: str | None = None
        # Behaviours of the real service a test can switch on:
        self.transcript_after_response = False  # input transcripts follow the turn's response
        self.transcript_delay = 0.0  # ... by this many seconds after its response.done
        self.reject_responses: deque[tuple[str, str]] = deque()  # next response.create errors
        # Setup refusals as the service sends them (`setting_refusal`, `model_refusal`):
        self.known_models: set[str] | None = None  # other models fail their responses
        self.transcription_models: set[str] | None = None  # others are `invalid_value`
        # Input transcription `commit_transcript_delay` s after the commit (None: at once,
        # or after the response with `transcript_after_response`).
        self.commit_transcript_delay: float | None = None
        self.transcription_fails = False  # `.failed` instead of each input transcript
        # Seconds from response.created to the first output: the model's time (0: at once).
        self.response_delay = 0.0
        self.session_lifetime = SESSION_LIFETIME  # seconds until `expires_at`
        # Session discipline (issue 28 items 1-3, 9, 10 and issue 29 item 10), each modelled
        # the way the service (or a compatible server) sends it; see `ServiceDiscipline`.
        self.discipline = ServiceDiscipline()
        self.received: list[dict[str, Any]] = []
        self.violations: list[str] = []
        self.responses: deque[ScriptedResponse] = deque()
        self.response_params: list[dict[str, Any]] = []
        self.responses_done = 0
        self.connections = 0
        self.models: list[str] = []  # the `model` of each handshake, in order
        self.sessions: list[_Session] = []
        self.hooks: dict[str, Callable[[dict[str, Any]], Awaitable[bool | None]]] = {}
        self._ids = itertools.count(1)
        self._server: Server | None = None
        self._port = port
        self._changed = asyncio.Condition()
        self.changes = Changes()
        """Notified after each connection, received event and its handling, finished response
        and closed connection (`async_add_listener`, for event-driven waits in tests)."""

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen on 127.0.0.1 (the same port again after `refuse_connections`)."""
        self._server = await serve(
            self._handler,
            "127.0.0.1",
            self._port,
            process_request=self._process_request,
            process_response=self._process_response,
            max_size=None,
            compression=None,
            logger=_WIRE_LOGGER,
        )
        self._port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening and close every connection."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for session in self.sessions:
            tasks = [r.task for r in session.running.values() if r.task is not None]
            tasks += session.tails
            session.cancel_tasks()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def refuse_connections(self) -> None:
        """Stop listening but keep `url`: new connections are refused."""
        await self.stop()

    @property
    def url(self) -> str:
        """The http:// base URL, e.g. http://127.0.0.1:PORT/v1."""
        return f"http://127.0.0.1:{self._port}/v1"

    @property
    def session(self) -> _Session:
        """The most recent connection's state."""
        return self.sessions[-1]

    def new_id(self, prefix: str) -> str:
        """A fresh id such as `item_7`."""
        return f"{prefix}_{next(self._ids)}"

    # -- test controls -----------------------------------------------------------------------

    def script(self, *responses: ScriptedResponse) -> None:
        """Queue responses played by the next `response.create` (or VAD-created response)."""
        self.responses.extend(responses)

    async def send(
        self, event: dict[str, Any], *, ws: ServerConnection | None = None, validate: bool = True
    ) -> None:
        """Send a server event (validated against the SDK types) to a connection."""
        event = {"event_id": self.new_id("event"), **event}
        kind = event["type"]
        if self.beta:
            if kind in GA_ONLY_EVENTS:
                return
            event["type"] = BETA_EVENT_NAMES.get(kind, kind)
        if validate:
            problems = server_event_problems(event, beta=self.beta)
            if problems:
                self.violations.append(f"server sent invalid {kind}: {problems}")
        target = ws or self.session.ws
        with contextlib.suppress(ConnectionClosed):
            await target.send(json.dumps(event))

    async def drop(self) -> None:
        """Abort the current connection without a close frame (a network drop)."""
        transport = self.session.ws.transport
        transport.abort()

    async def close_connection(self, code: int, reason: str = "") -> None:
        """Close the current connection with a close frame."""
        await self.session.ws.close(code, reason)

    async def session_expired(self) -> None:
        """Send the `session_expired` error and close with 1001, like the 60-minute limit."""
        message = "Your session hit the maximum duration of 60 minutes."
        await self.session.error("session_expired", message, None)
        await self.close_connection(1001, message)

    async def wait_for(self, kind: str, count: int = 1) -> dict[str, Any]:
        """Wait until `count` client events of a type arrived; return the last one."""
        async with self._changed:
            await self._changed.wait_for(lambda: len(self.of_type(kind)) >= count)
        return self.of_type(kind)[count - 1]

    async def wait_connections(self, count: int) -> None:
        """Wait until `count` connections have been accepted."""
        async with self._changed:
            await self._changed.wait_for(lambda: self.connections >= count)

    def images(self) -> list[bytes]:
        """Every picture the client added to the conversation, in order."""
        return [
            image
            for event in self.of_type("conversation.item.create")
            for image in input_images(event["item"])
        ]

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        """Received client events of one type."""
        return [event for event in self.received if event["type"] == kind]

    def async_add_listener(self, update: Listener) -> Callable[[], None]:
        """Call `update` after each change `changes` is notified of; returns the remover."""
        return self.changes.async_add_listener(update)

    async def _notify(self) -> None:
        self.changes.notify()
        async with self._changed:
            self._changed.notify_all()

    # -- connection handling -----------------------------------------------------------------

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        self.discipline.handshakes.append(dict(request.headers.raw_items()))
        if (response := self.discipline.refuse_handshake(connection, request)) is not None:
            return response
        if self.handshake_status is not None:
            return connection.respond(HTTPStatus(self.handshake_status), "refused\n")
        if not request.path.split("?")[0].endswith("/realtime"):
            return connection.respond(HTTPStatus.NOT_FOUND, "not found\n")
        bearer = request.headers.get("Authorization")
        api_key = request.headers.get("api-key")
        ok = bearer == f"Bearer {self.api_key}" or api_key == self.api_key
        if self.reject_auth or not ok:
            return connection.respond(HTTPStatus.UNAUTHORIZED, "invalid api key\n")
        if "model=" not in request.path:
            return connection.respond(HTTPStatus.BAD_REQUEST, "model is required\n")
        return None

    def _process_response(
        self, connection: ServerConnection, request: Request, response: Response
    ) -> Response | None:
        # The `Date` of the upgrade is the service's clock, skewed like `expires_at`.
        if "Date" in response.headers:
            del response.headers["Date"]
            response.headers["Date"] = email.utils.formatdate(self.discipline.now(), usegmt=True)
        return None

    async def _handler(self, ws: ServerConnection) -> None:
        session = _Session(self, ws)
        self.sessions.append(session)
        self.connections += 1
        await self._notify()
        if self.stall:
            await ws.wait_closed()
            return
        if self.close_on_connect is not None:
            await ws.close(*self.close_on_connect)
            return
        if self.on_connect_error is not None:
            await session.send({"type": "error", "error": self.on_connect_error})
            await ws.close(1000)
            return
        if (refusal := self._refusal(ws)) is not None:
            await session.fatal(*refusal)
            return
        if self.accept_delay:
            await asyncio.sleep(self.accept_delay)
        # "expires_at: Expiration timestamp for the session, in seconds since epoch" (SDK
        # RealtimeSessionCreateResponse); the service ends the session at that moment.
        if not self.beta:
            session.session["expires_at"] = self.discipline.expires_at(self.session_lifetime)
        self.discipline.opened.append(asyncio.get_running_loop().time())
        await session.send({"type": "session.created", "session": copy.deepcopy(session.session)})
        if (drop := self.discipline.drop_after_open) is not None:
            dropper = asyncio.create_task(self.discipline.drop_later(ws, drop))
            session.tails.add(dropper)
            dropper.add_done_callback(session.tails.discard)
        try:
            async with asyncio.timeout(self.session_lifetime) as lifetime:
                async for raw in ws:
                    await self._receive(session, raw)
        except ConnectionClosed:
            pass
        except TimeoutError:
            if not lifetime.expired():
                raise
            await session.expire()
        finally:
            session.cancel_tasks()
            self.changes.notify()

    def _refusal(self, ws: ServerConnection) -> tuple[str, str, int, str | None] | None:
        """Why the service ends a new connection at once: (code, message, close code, event)."""
        request = ws.request
        if request is None:  # pragma: no cover - a handler always has its request
            return None
        if not self.beta and request.headers.get("OpenAI-Beta"):
            # The beta interface is shut down: langwatch/scenario#604 saw the error, then close
            # 4000 `beta_api_shape_disabled` (realtime-protocol.md §1.2).
            return BETA_DISABLED
        model = request.path.partition("model=")[2].partition("&")[0]
        self.models.append(model)
        return None

    async def _receive(self, session: _Session, raw: str | bytes) -> None:
        try:
            event = json.loads(raw)
        except ValueError:
            self.violations.append(f"client sent invalid JSON: {raw[:80]!r}")
            await session.error("invalid_json", "invalid JSON", None)
            return
        problems = client_event_problems(event, beta=self.beta)
        event_id = event.get("event_id") if isinstance(event, dict) else None
        if problems and not self.beta and not client_event_problems(event, beta=True):
            self.received.append(event)
            await refuse_beta_shape(session, event)
            self.changes.notify()
            return
        if problems:
            kind = event.get("type") if isinstance(event, dict) else None
            self.violations.append(f"client sent invalid {kind}: {problems}")
            await session.error("invalid_event", "; ".join(problems), event_id)
            return
        self.received.append(event)
        await self._notify()
        hook = self.hooks.get(event["type"])
        if hook is not None and await hook(event):
            self.changes.notify()
            return
        await session.handle(event)
        self.changes.notify()


# -- setup refusals (issue 28 item 4; realtime-protocol.md §3.1) -------------------------------


def _voice_refused(voice: Any) -> bool:
    """A voice the service does not have: built-in names, or a custom `{"id": "voice_..."}`."""
    if isinstance(voice, dict):
        return not str(voice.get("id", "")).startswith("voice_")
    return voice is not None and voice not in VOICES


def setting_refusal(server: RealtimeServer, update: dict[str, Any]) -> tuple[str, str, str] | None:
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


def model_refusal(server: RealtimeServer, ws: ServerConnection) -> ScriptedResponse | None:
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


async def refuse_beta_shape(session: _Session, event: dict[str, Any]) -> None:
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


# -- scenario mode (offline use: `python -m tests.realtime_server --scenario FILE`) -----------


# What the integration asks the model to say word for word: `Actions.async_speak` (speak,
# announce, ask) and `RealtimeEngine`'s greeting. A model does as told; the scenario too.
SAY_EXACTLY = re.compile(
    r"\bsay(?:ing)? exactly(?: this to the user, and nothing else)?:\s*(.+?)(?:\n\n|$)",
    re.IGNORECASE | re.DOTALL,
)


class ScenarioError(Exception):
    """A scenario file is missing, malformed, or its speech could not be synthesised."""


def normalize_phrase(text: str) -> str:
    """Lower-case words without punctuation, single-spaced (what `when` phrases match on)."""
    kept = "".join(c if c.isalnum() else " " for c in text.lower())
    return " ".join(kept.split())


@dataclass(slots=True)
class ScenarioRule:
    """When the user says or types one of `when`, call `call(arguments)`, then say `say`."""

    when: tuple[str, ...]
    say: str
    call: str | None = None
    arguments: dict[str, Any] = field(default_factory=dict)
    audio: bytes = b""
    heard: list[Features] = field(default_factory=list)
    """How each `when` phrase sounds in the scenario's voice (see tests/speech_match.py)."""

    def matches(self, text: str) -> bool:
        """Whether one of the phrases occurs in `text` (both normalised)."""
        heard = f" {normalize_phrase(text)} "
        return any(f" {phrase} " in heard for phrase in self.when)


def _parse_rule(index: int, raw: Any) -> ScenarioRule:
    if not isinstance(raw, dict):
        raise ScenarioError(f"rule {index + 1}: expected a mapping")
    unknown = set(raw) - {"when", "say", "call", "arguments"}
    if unknown:
        raise ScenarioError(f"rule {index + 1}: unknown keys {sorted(unknown)}")
    when = raw.get("when")
    phrases = [when] if isinstance(when, str) else when
    if (
        not isinstance(phrases, list)
        or not phrases
        or not all(isinstance(p, str) and normalize_phrase(p) for p in phrases)
    ):
        raise ScenarioError(f"rule {index + 1}: `when` must be a phrase or a list of phrases")
    say, call, arguments = raw.get("say"), raw.get("call"), raw.get("arguments", {})
    if not isinstance(say, str) or not say.strip():
        raise ScenarioError(f"rule {index + 1}: `say` must be a sentence")
    if call is not None and (not isinstance(call, str) or not call):
        raise ScenarioError(f"rule {index + 1}: `call` must be a tool name")
    if not isinstance(arguments, dict):
        raise ScenarioError(f"rule {index + 1}: `arguments` must be a mapping")
    return ScenarioRule(
        when=tuple(normalize_phrase(p) for p in phrases),
        say=say.strip(),
        call=call,
        arguments=arguments,
    )


class Scenario:
    """Scripted answers for offline use, chosen from what the client sends.

    Typed text (a user `input_text` item) picks the first rule whose `when` phrase occurs in
    it. The server has no speech recognition: a spoken turn (committed audio) is compared with
    each `when` phrase as the scenario's espeak-ng voice says it (what `scripts/simulate --say`
    sends) and plays the closest rule, reporting that phrase as the input transcript; speech
    like no phrase (another voice, other words) gets `fallback` and no transcript. Without
    synthesised phrases (`load(speak=False)`) spoken turns take the rules in file order.
    A response whose instructions give a sentence to say word for word (the integration's
    speak, announce and greeting) says that sentence. A rule with `call` first answers with that
    function call; once the client returns its output, the rule's `say` follows when the tool
    worked, else `failure` with `{error}` replaced by what went wrong (synthesised then), as a
    model reads a failed tool's output and says so. Anything else gets `fallback`; a response
    with no user input yet (a greeting) gets `greeting`.
    """

    def __init__(
        self, rules: list[ScenarioRule], fallback: ScenarioRule, greeting: ScenarioRule
    ) -> None:
        """Use parsed rules; `load` builds them from a file with their speech."""
        self.rules = rules
        self.fallback = fallback
        self.greeting = greeting
        self.failure = "Sorry, that did not work: {error}"
        self.voice = "en-us"
        self.speak = False
        self.log: list[str] = []
        self._spoken: dict[int, int] = {}
        self._heard: dict[int, ScenarioRule] = {}
        self._calls: dict[str, ScenarioRule] = {}

    @classmethod
    def parse(cls, data: Any) -> tuple[Scenario, str]:
        """Build a scenario (without audio) from parsed YAML; also return the espeak voice."""
        if not isinstance(data, dict) or not isinstance(data.get("rules"), list):
            raise ScenarioError("a scenario is a mapping with a `rules` list")
        unknown = set(data) - {"rules", "fallback", "greeting", "voice", "failure"}
        if unknown:
            raise ScenarioError(f"unknown keys {sorted(unknown)}")
        rules = [_parse_rule(i, raw) for i, raw in enumerate(data["rules"])]
        if not rules:
            raise ScenarioError("a scenario needs at least one rule")
        texts = {}
        for key, default in (
            ("fallback", "Sorry, this offline demo does not know how to answer that."),
            ("greeting", "Hello! How can I help?"),
            ("voice", "en-us"),
            ("failure", "Sorry, that did not work: {error}"),
        ):
            value = data.get(key, default)
            if not isinstance(value, str) or not value.strip():
                raise ScenarioError(f"`{key}` must be text")
            texts[key] = value.strip()
        scenario = cls(
            rules,
            ScenarioRule(when=(), say=texts["fallback"]),
            ScenarioRule(when=(), say=texts["greeting"]),
        )
        scenario.failure = texts["failure"]
        scenario.voice = texts["voice"]
        return scenario, texts["voice"]

    @classmethod
    async def load(cls, path: Path, *, speak: bool = True) -> Scenario:
        """Read a YAML scenario and synthesise every sentence as 24 kHz PCM16 (espeak-ng, sox)."""
        try:
            data = yaml.safe_load(await asyncio.to_thread(path.read_text))
        except (OSError, yaml.YAMLError) as err:
            raise ScenarioError(f"cannot read {path}: {err}") from err
        scenario, voice = cls.parse(data)
        scenario.speak = speak
        if speak:
            rules = [*scenario.rules, scenario.fallback, scenario.greeting]
            try:
                audio = await asyncio.gather(
                    *(synthesize(rule.say, 24000, voice=voice) for rule in rules)
                )
            except SpeechError as err:
                raise ScenarioError(str(err)) from err
            for rule, pcm in zip(rules, audio, strict=True):
                rule.audio = pcm
            for rule in scenario.rules:
                try:
                    phrases = await asyncio.gather(
                        *(synthesize(phrase, 24000, voice=voice) for phrase in rule.when)
                    )
                except SpeechError as err:
                    raise ScenarioError(str(err)) from err
                rule.heard = [await asyncio.to_thread(features, pcm) for pcm in phrases]
        return scenario

    def match(self, text: str) -> ScenarioRule:
        """The first rule matching typed text, or the fallback."""
        return next((rule for rule in self.rules if rule.matches(text)), self.fallback)

    async def hear_speech(self, session: _Session, audio: bytes) -> str | None:
        """A spoken turn was committed: pick its rule; the transcript, if transcribing."""
        phrase: str | None
        if any(rule.heard for rule in self.rules):
            known = [(rule, i) for rule in self.rules for i in range(len(rule.heard))]
            index, score = await asyncio.to_thread(
                best_match, audio, [rule.heard[i] for rule, i in known]
            )
            if index is None:
                rule, phrase = self.fallback, None
                self.log.append(f"heard speech like no rule's phrase ({score:.1f}): fallback")
            else:
                rule, i = known[index]
                phrase = rule.when[i]
                number = self.rules.index(rule) + 1
                self.log.append(f"heard {phrase!r} ({score:.1f}), playing rule {number}")
        else:
            turn = self._spoken.get(id(session), 0)
            self._spoken[id(session)] = turn + 1
            rule = self.rules[turn % len(self.rules)]
            phrase = rule.when[0]
            self.log.append(f"heard speech, playing rule {turn % len(self.rules) + 1}")
        self._heard[id(session)] = rule
        audio_in = session.session.get("audio", {}).get("input", {})
        transcribing = (
            session.session.get("input_audio_transcription")
            if session.server.beta
            else audio_in.get("transcription")
        )
        return phrase if transcribing else None

    async def respond(
        self, session: _Session, params: dict[str, Any] | None = None
    ) -> ScriptedResponse:
        """The response to play now: a sentence the instructions give, else from the latest
        items of the conversation."""
        instructions = (params or {}).get("instructions")
        if isinstance(instructions, str) and (match := SAY_EXACTLY.search(instructions)):
            return await self._say_now(match.group(1).strip(), "as instructed")
        last = session.items.get(session.last_item_id or "", {})
        answered = last.get("type") == "function_call_output"
        rule = self._rule_for(session)
        if answered:
            ok, outcome = describe_output(str(last.get("output", "")))
            if not ok:
                return await self._failed(outcome.removeprefix("failed: "))
        if rule.call is not None and not answered:
            call_id = session.server.new_id("call")
            self._calls[call_id] = rule
            self.log.append(f"calling {rule.call} {json.dumps(rule.arguments)}")
            return ScriptedResponse(
                calls=[ScriptedCall(rule.call, json.dumps(rule.arguments), call_id)]
            )
        self.log.append(f"saying {rule.say!r}")
        chunks = max(1, len(rule.audio) // (BYTES_PER_MS * 100))  # 100 ms deltas
        return ScriptedResponse(text=rule.say, audio=rule.audio, chunks=chunks)

    async def _failed(self, error: str) -> ScriptedResponse:
        """Say what failed (the sentence is synthesised now: it names the error)."""
        text = self.failure.replace("{error}", error.rstrip(".") + ".")
        return await self._say_now(text, "the tool failed")

    async def _say_now(self, text: str, why: str) -> ScriptedResponse:
        """Say a sentence that is not in the scenario, synthesised now."""
        self.log.append(f"{why}, saying {text!r}")
        audio = b""
        if self.speak:
            try:
                audio = await synthesize(text, 24000, voice=self.voice)
            except SpeechError as err:
                self.log.append(f"cannot speak {text!r}: {err}")
        return ScriptedResponse(
            text=text, audio=audio, chunks=max(1, len(audio) // (BYTES_PER_MS * 100))
        )

    def _rule_for(self, session: _Session) -> ScenarioRule:
        items = list(session.items.values())
        if items and items[-1].get("type") == "function_call_output":
            self.log.append(f"tool output {str(items[-1].get('output'))[:300]}")
            return self._calls.pop(items[-1].get("call_id", ""), self.fallback)
        for item in reversed(items):
            if item.get("type") != "message" or item.get("role") != "user":
                continue
            for part in item.get("content") or []:
                if part.get("type") == "input_text" and isinstance(part.get("text"), str):
                    self.log.append(f"typed {part['text']!r}")
                    return self.match(part["text"])
                if part.get("type") == "input_audio":
                    return self._heard.pop(id(session), self.fallback)
        return self.greeting


def closed_port_url() -> str:
    """A base URL whose port nobody listens on (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


@pytest.fixture
async def realtime_server(socket_enabled: None) -> AsyncGenerator[RealtimeServer]:
    """A started RealtimeServer; fails the test if any protocol violation was recorded."""
    server = RealtimeServer()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
    assert not server.violations, "\n".join(server.violations)


# -- command line ------------------------------------------------------------------------------


async def serve_forever(args: argparse.Namespace) -> None:
    """Run the server (with the scenario, if given) until SIGINT or SIGTERM."""
    scenario = await Scenario.load(Path(args.scenario)) if args.scenario else None
    server = RealtimeServer(api_key=args.api_key, port=args.port, scenario=scenario)
    await server.start()
    print(f"Realtime server on {server.url} (API key {args.api_key!r})", flush=True)
    if scenario is not None:
        print(f"scenario {args.scenario}: {len(scenario.rules)} rules", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    shown = 0
    try:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.2):
                    await stop.wait()
            news = (scenario.log if scenario else [])[shown:] + server.violations
            shown += len(news) - len(server.violations)
            for line in news:
                print(line, flush=True)
            server.violations.clear()
    finally:
        await server.stop()


def main(argv: list[str] | None = None) -> int:
    """`python -m tests.realtime_server [--port N] [--scenario FILE] [--api-key KEY]`."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.realtime_server",
        description="A local stand-in for the OpenAI Realtime service on 127.0.0.1.",
    )
    parser.add_argument("--port", type=int, default=8765, help="port (default: %(default)s)")
    parser.add_argument("--scenario", help="a YAML scenario (see config/scenario.yaml)")
    parser.add_argument(
        "--api-key", default="offline", help="the key clients must send (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    try:
        asyncio.run(serve_forever(args))
    except ScenarioError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except OSError as err:
        print(f"error: cannot listen on 127.0.0.1:{args.port}: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
