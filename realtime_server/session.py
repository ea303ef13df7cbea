"""One client connection of the test server: its session, input audio buffer and items.

`Session` answers each client event the way the service does (`on_<event type>`): the toy
server VAD over the input buffer, commits and their transcripts, conversation items, and the
start of responses (played by `responses.run_response`).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
from typing import Any

from websockets.asyncio.server import ServerConnection

from .interfaces import Service
from .protocol import (
    BYTES_PER_MS,
    MIN_COMMIT_MS,
    VAD_RMS,
    VOICES,
    default_session,
    image_problem,
    merge_session,
    rms,
    silence,
)
from .refusals import model_refusal, setting_refusal, transcription_failed
from .responses import run_response
from .scripts import Running, ScriptedResponse


class Session:
    """State of one client connection."""

    def __init__(self, server: Service, ws: ServerConnection) -> None:
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
        self.running: dict[str, Running] = {}
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

    def add_item(self, item: dict[str, Any]) -> str | None:
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
        if rms(pcm) >= VAD_RMS:
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
        previous = self.add_item(item)
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
        previous = self.add_item(item)
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
        running = Running(self.server.new_id("resp"), params.get("conversation") == "none")
        self.running[running.id] = running
        self.server.response_params.append(params)
        running.task = asyncio.create_task(run_response(self, script, params, running))

    async def transcribe_later(self, completed: dict[str, Any], delay: float) -> None:
        """Send an input transcript `delay` s after its commit, whatever else runs meanwhile.

        The service transcribes asynchronously (SDK docstring of
        ConversationItemInputAudioTranscriptionCompletedEvent: "can be emitted before or after"
        other events); issue 28 measured it 400 ms after the commit.
        """
        tail = asyncio.create_task(self.send_later([completed], delay))
        self.tails.add(tail)
        tail.add_done_callback(self.tails.discard)

    async def send_later(self, events: list[dict[str, Any]], delay: float) -> None:
        """Late transcripts: transcription can take longer than a short reply."""
        await asyncio.sleep(delay)
        for event in events:
            await self.send(event)
