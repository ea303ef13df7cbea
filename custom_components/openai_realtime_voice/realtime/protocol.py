"""Sans-I/O core of a Realtime conversation: server events in, typed and client events out.

The driver (`RealtimeClient`) calls `start_session()` for each new WebSocket, feeds every
received frame to `receive()`, acts on the returned events, and transmits whatever
`data_to_send()` returns (JSON-ready client events). Commands (`commit_audio()`,
`create_response()`, `cancel()`, ...) update the state and queue their client events the
same way. No sockets, no clock, no tasks, no awaiting: the state survives reconnects, so a
new session can be configured and given the text history again.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
import itertools
import logging
from typing import Any, Final

from .config import FunctionTool, Modality, SessionConfig, session_diff
from .endpoint import Dialect
from .errors import (
    BENIGN_ERROR_CODES,
    FATAL_ERROR_CODES,
    SESSION_EXPIRED_CODE,
    RealtimeConnectionError,
    RealtimeError,
    error_event_exception,
    error_for_code,
    is_truncate_error,
    redact,
)
from .events import (
    InputCommitted,
    InputTranscript,
    InputTranscriptDelta,
    ProtocolEvent,
    RequestAccepted,
    RequestRefused,
    ResponseDone,
    ResponseStarted,
    ServerError,
    SessionExpired,
    SessionFailed,
    SessionReady,
    SessionUpdated,
    SpeechStarted,
    SpeechStopped,
)
from .response import BYTES_PER_MS, AudioDelta, RealtimeResponse, ends_session
from .tracker import ResponseTracker
from .wire import (
    DELTA_EVENTS,
    cut_events,
    decode,
    expires_at,
    int_field,
    message_item,
    object_field,
    parse_delta,
    redacted_details,
    refusal,
    response_params,
)

__all__ = ["CLIENT_EVENT_KEY", "Phase", "RealtimeProtocol"]

_LOGGER = logging.getLogger(__name__)

# Tags our response.create in metadata so its response.created is told apart from VAD's.
CLIENT_EVENT_KEY: Final = "client_event_id"
_QUIET_EVENTS: Final = frozenset({"response.output_audio.delta"})


class Phase(StrEnum):
    """Where the current session stands."""

    DISCONNECTED = "disconnected"  # no session (before the first, or between two)
    CREATING = "creating"  # connected, waiting for session.created
    CONFIGURING = "configuring"  # session.update sent, waiting for session.updated
    OPEN = "open"  # configured: commands and responses flow
    CLOSED = "closed"  # stopped for good


@dataclass(slots=True)
class _Pending:
    """A client event waiting for its answer; `target` is the config a session.update applies."""

    event_id: str
    out_of_band: bool = False
    target: SessionConfig | None = None
    answered: bool = False
    metadata: dict[str, str] | None = None


class RealtimeProtocol:
    """The conversation state of a Realtime client across sessions, without I/O."""

    def __init__(
        self,
        config: SessionConfig,
        *,
        dialect: Dialect = Dialect.GA,
        api_key: str = "",
        max_history_items: int = 50,
    ) -> None:
        """Start disconnected; `api_key` is only used to keep it out of error messages."""
        self.dialect = dialect
        self.config = config  # what the caller asked for
        self.applied = config  # what the current session runs with
        self.phase = Phase.DISCONNECTED
        self.expires_at: float | None = None  # session.created's `expires_at` (epoch seconds)
        self.tracker = ResponseTracker(max_history_items)
        self._api_key = api_key
        self._ids = itertools.count(1)
        self._outgoing: list[dict[str, Any]] = []
        self._events: list[ProtocolEvent] = []
        self._replay = False
        self._setup_event_id: str | None = None
        self._create: _Pending | None = None
        self._update: _Pending | None = None
        self._echoes_metadata = False  # the server echoed our tag: only the tag matches
        self._handlers: dict[str, Callable[[dict[str, Any]], None]] = {
            "error": self._on_error,
            "session.updated": self._on_session_updated,
            "input_audio_buffer.speech_started": self._on_speech_started,
            "input_audio_buffer.speech_stopped": self._on_speech_stopped,
            "input_audio_buffer.committed": self._on_committed,
            "conversation.item.input_audio_transcription.delta": self._on_input_transcript_delta,
            "conversation.item.input_audio_transcription.completed": self._on_input_transcript,
            "conversation.item.input_audio_transcription.failed": self._on_input_transcript,
            "response.created": self._on_response_created,
            "response.done": self._on_response_done,
            **dict.fromkeys(DELTA_EVENTS, self._on_delta),
        }

    # -- lifecycle ---------------------------------------------------------------------------

    def start_session(self, *, replay: bool) -> None:
        """A new WebSocket is open: wait for session.created; `replay` the history once ready."""
        if self.phase is Phase.CLOSED:
            raise RealtimeError("the protocol was stopped")
        self.phase = Phase.CREATING
        self._replay = replay
        self._outgoing.clear()
        self._setup_event_id = None
        self.expires_at = None

    def connection_lost(self) -> list[ProtocolEvent]:
        """The WebSocket ended: running responses fail, and so does a response.create.

        A pending session.update stays pending: the next session is configured with the
        latest config, which answers it.
        """
        if self.phase is Phase.CLOSED:
            return self.stop()
        self.phase = Phase.DISCONNECTED
        return self._collect(self._lose_session)

    def stop(self) -> list[ProtocolEvent]:
        """Stop for good: every running response fails; nothing is sent any more."""
        self.phase = Phase.CLOSED
        self._update = None
        return self._collect(self._lose_session)

    def _lose_session(self) -> None:
        self._outgoing.clear()
        for response in self.tracker.end_all():
            self._emit(ResponseDone(response))
        create, self._create = self._create, None
        if create is not None and not create.answered and self.phase is not Phase.CLOSED:
            lost = RealtimeConnectionError("connection lost")
            self._emit(RequestRefused(create.event_id, lost))

    def data_to_send(self) -> list[dict[str, Any]]:
        """The client events queued since the last call, oldest first (JSON-ready)."""
        outgoing, self._outgoing = self._outgoing, []
        return outgoing

    def _send(self, event: dict[str, Any]) -> None:
        self._outgoing.append(event)

    def _event_id(self) -> str:
        return f"evt_client_{next(self._ids)}"

    def _collect(self, step: Callable[[], None]) -> list[ProtocolEvent]:
        self._events = []
        step()
        events, self._events = self._events, []
        return events

    def _emit(self, event: ProtocolEvent) -> None:
        self._events.append(event)

    # -- receiving ---------------------------------------------------------------------------

    def receive(self, raw: str | bytes) -> list[ProtocolEvent]:
        """Feed one server frame; the events it produced (none for a frame to ignore)."""
        event = decode(raw)
        if event is None:
            return []
        return self._collect(lambda: self._receive(event))

    def _receive(self, event: dict[str, Any]) -> None:
        kind: str = event["type"]
        if self.phase in (Phase.CREATING, Phase.CONFIGURING):
            self._setup(event)
            return
        if self.phase is not Phase.OPEN:
            _LOGGER.debug("Ignoring %s: no session is open", kind)
            return
        handler = self._handlers.get(kind)
        if handler is None:
            _LOGGER.debug("Ignoring server event %s", kind)
            return
        if kind not in _QUIET_EVENTS:
            _LOGGER.debug("Received %s", kind)
        handler(event)

    def _setup(self, event: dict[str, Any]) -> None:
        """session.created -> our session.update -> session.updated; errors end the setup."""
        kind = event["type"]
        waiting = "session.created" if self.phase is Phase.CREATING else "session.updated"
        if kind == "error":
            error = ServerError.from_event(event)
            if error.code in FATAL_ERROR_CODES or error.event_id in (self._setup_event_id, None):
                self.phase = Phase.DISCONNECTED
                self._emit(SessionFailed(error_event_exception(event, self._api_key)))
                return
        if kind != waiting:
            _LOGGER.debug("Ignoring %s while waiting for %s", kind, waiting)
            return
        if self.phase is Phase.CREATING:
            self.expires_at = expires_at(event)
            self.applied = self.config
            self._setup_event_id = self._event_id()
            session = self.config.render(self.dialect)
            self._send(
                {"type": "session.update", "event_id": self._setup_event_id, "session": session}
            )
            self.phase = Phase.CONFIGURING
            return
        self.tracker.new_session()
        if self._replay:
            for entry in self.tracker.history:
                if text := entry.replayed_text:
                    self._send(message_item(entry.role, text, self.dialect))
        self.phase = Phase.OPEN
        self._emit(SessionReady())
        if (update := self._update) is not None and not update.answered:
            update.answered = True  # the new session runs the latest config
            self._emit(SessionUpdated(update.event_id))

    def _on_error(self, event: dict[str, Any]) -> None:
        error = ServerError.from_event(event)
        message = redact(error.message, self._api_key)
        if error.code == SESSION_EXPIRED_CODE:
            _LOGGER.debug("Session expired; a new one follows")
            self._emit(SessionExpired())
            return
        fatal = error_for_code(error.code, message)
        if error.code in FATAL_ERROR_CODES and fatal is not None:
            self._fail(fatal)
            return
        for pending in (self._create, self._update):
            if pending is not None and error.event_id == pending.event_id:
                if not pending.answered:
                    pending.answered = True
                    self._emit(
                        refusal(pending.event_id, error, message, update=pending.target is not None)
                    )
                return
        if error.code in BENIGN_ERROR_CODES or is_truncate_error(message):
            _LOGGER.debug("Ignoring benign error %s: %s", error.code, message)
            return
        _LOGGER.debug("Server error %s: %s", error.code, message)
        self._emit(ServerError(error.type, error.code, message, error.event_id))

    def _fail(self, error: RealtimeError) -> None:
        self.phase = Phase.CLOSED
        self._emit(SessionFailed(error))

    def _on_session_updated(self, event: dict[str, Any]) -> None:
        pending = self._update
        if pending is not None and not pending.answered:
            pending.answered = True
            if pending.target is not None:
                self.applied = pending.target
            self._emit(SessionUpdated(pending.event_id))

    def _on_speech_started(self, event: dict[str, Any]) -> None:
        self.tracker.speech_started(self.applied.server_interrupts)
        self._emit(SpeechStarted(int_field(event, "audio_start_ms"), str(event.get("item_id", ""))))

    def _on_speech_stopped(self, event: dict[str, Any]) -> None:
        detection = self.applied.turn_detection
        self.tracker.speech_stopped(detection is not None and detection.create_response)
        self._emit(SpeechStopped(int_field(event, "audio_end_ms"), str(event.get("item_id", ""))))

    def _on_committed(self, event: dict[str, Any]) -> None:
        item_id = str(event.get("item_id", ""))
        self.tracker.committed(item_id)
        self._emit(InputCommitted(item_id))

    def _on_input_transcript_delta(self, event: dict[str, Any]) -> None:
        self._emit(InputTranscriptDelta(str(event.get("item_id", "")), str(event.get("delta", ""))))

    def _on_input_transcript(self, event: dict[str, Any]) -> None:
        """A transcript, or "" for a transcription that failed (the turn stands, wordless)."""
        text = str(event.get("transcript", ""))  # `.failed` carries `error` instead
        item_id = str(event.get("item_id", ""))
        self.tracker.transcribed(item_id, text)
        self._emit(InputTranscript(item_id, text, object_field(event, "usage") or None))

    def _on_response_created(self, event: dict[str, Any]) -> None:
        data = object_field(event, "response")
        metadata = data.get("metadata")
        metadata = metadata if isinstance(metadata, dict) else None
        tag = metadata.get(CLIENT_EVENT_KEY) if metadata else None
        pending = self._create
        if pending is not None and tag == pending.event_id:
            self._echoes_metadata = True
        # Ours by our own tag: a server-VAD response (metadata null) is not the reply to our
        # request. A server that never echoed the tag (LocalAI, beta servers) gets the next
        # untagged response.created, unless server VAD owes the user's turn its reply first.
        ours = (
            pending is not None
            and not pending.answered
            and (
                tag == pending.event_id
                or (tag is None and not self._echoes_metadata and not self.tracker.reply_due)
            )
        )
        if ours and pending is not None and metadata is None:
            metadata = pending.metadata  # what we asked for, as the service would echo it
        response = RealtimeResponse(
            str(data.get("id", "")),
            metadata,
            out_of_band=ours and pending is not None and pending.out_of_band,
        )
        if self.tracker.get(response.id) is not None:
            _LOGGER.debug("Ignoring a repeated response.created")
            return
        for old in self.tracker.started(response):
            self._emit(ResponseDone(old))
        if ours and pending is not None:
            pending.answered = True
            self._emit(RequestAccepted(pending.event_id, response))
        self._emit(ResponseStarted(response))

    def _on_delta(self, event: dict[str, Any]) -> None:
        response = self.tracker.get(str(event.get("response_id")))
        if response is None:
            _LOGGER.debug("Dropping %s of an inactive response", event["type"])
            return
        if response.cancelled or (delta := parse_delta(event)) is None:
            return
        if isinstance(delta, AudioDelta):
            self.tracker.audio_produced = True
        response.push(delta)

    def _on_response_done(self, event: dict[str, Any]) -> None:
        data = object_field(event, "response")
        response = self.tracker.get(str(data.get("id")))
        if response is None:
            _LOGGER.debug("Ignoring response.done of an unknown response")
            return
        usage = data.get("usage")
        status = str(data.get("status", "completed"))
        details = data.get("status_details")
        response.finish(
            status,
            redacted_details(details, self._api_key),
            usage if isinstance(usage, dict) else None,
        )
        self.tracker.finished(response)
        _LOGGER.debug(
            "Response %s %s: %d ms audio, %d text chars",
            response.id,
            status,
            sum(response.audio_bytes.values()) // BYTES_PER_MS,
            len(response.reply),
        )
        self._emit(ResponseDone(response))
        if (error := response.error) is not None:
            _LOGGER.debug("Response %s failed: %s", response.id, error)
            if ends_session(response.status_details):
                # The same codes end the session whether an error event or a response has them.
                self._fail(error)

    # -- commands ----------------------------------------------------------------------------

    def append_audio(self, pcm: bytes) -> bool:
        """Queue PCM16 mono 24 kHz user audio; False (dropped) while no session is open."""
        if self.phase is not Phase.OPEN:
            return False
        self._send({"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm).decode()})
        if self.applied.turn_detection is None:
            self.tracker.manual_audio()
        return True

    def commit_audio(self) -> None:
        """End the user's turn in manual mode."""
        self._send({"type": "input_audio_buffer.commit"})
        self.tracker.manual_turn_ended()

    def clear_audio(self) -> None:
        """Drop uncommitted user audio."""
        self._send({"type": "input_audio_buffer.clear"})
        self.tracker.manual_turn_ended()

    def delete_item(self, item_id: str, *, response_id: str | None = None) -> None:
        """Remove an item from the conversation and from the history replayed after reconnects.

        A reply nobody heard is taken back this way (`response_id`: the response that made
        it), with the user turn it answered.
        """
        self.tracker.forget_item(item_id)
        if response_id is not None:
            self.tracker.forget_item(response_id)
        self._send({"type": "conversation.item.delete", "item_id": item_id})

    def add_user_text(self, text: str) -> None:
        """Add a user text message: a new user turn, replayed after reconnects."""
        self.tracker.add_message("user", text)
        self._send(message_item("user", text, self.dialect))

    def add_assistant_text(self, text: str) -> None:
        """Add an assistant text message (replayed after reconnects)."""
        self.tracker.add_message("assistant", text)
        self._send(message_item("assistant", text, self.dialect))

    def add_user_image(self, image_url: str, *, detail: str = "auto") -> None:
        """Add a picture as a user `input_image` item (not replayed: it answered one question)."""
        part = {"type": "input_image", "image_url": image_url, "detail": detail}
        self._add_item({"type": "message", "role": "user", "content": [part]})

    def add_function_call(self, call_id: str, name: str, arguments: str) -> None:
        """Add a function call the model made earlier (restoring a conversation)."""
        item = {"type": "function_call", "call_id": call_id, "name": name, "arguments": arguments}
        self._add_item(item)

    def add_function_output(self, call_id: str, output: str) -> None:
        """Return one function call's result to the model (no response is created)."""
        self._add_item({"type": "function_call_output", "call_id": call_id, "output": output})

    def create_response(
        self,
        *,
        instructions: str | None = None,
        modality: Modality | None = None,
        out_of_band: bool = False,
        metadata: Mapping[str, str] | None = None,
        tools: Sequence[FunctionTool] | None = None,
        tool_choice: str | None = None,
        input_items: Sequence[dict[str, Any]] | None = None,
    ) -> str:
        """Queue a response.create; its event id, answered by RequestAccepted or RequestRefused."""
        params = response_params(
            self.dialect,
            instructions=instructions,
            modality=modality,
            out_of_band=out_of_band,
            tools=tools,
            tool_choice=tool_choice,
            input_items=input_items,
        )
        event_id = self._event_id()
        tag = {**(metadata or {}), CLIENT_EVENT_KEY: event_id}
        self._create = _Pending(event_id, out_of_band=out_of_band, metadata=tag)
        self._send(
            {
                "type": "response.create",
                "event_id": event_id,
                "response": {**params, "metadata": tag},
            }
        )
        return event_id

    def update_session(self, config: SessionConfig) -> str | None:
        """Queue a session.update with only what changed; its event id, None if nothing did.

        A voice cannot change once the session produced audio: it applies from the next one.
        """
        self.config = config
        target = config
        if self.tracker.audio_produced and config.voice != self.applied.voice:
            _LOGGER.info("Voice change applies from the next session (audio already produced)")
            target = replace(config, voice=self.applied.voice)
        changes = session_diff(self.applied, target, self.dialect)
        if changes is None:
            return None
        event_id = self._event_id()
        self._update = _Pending(event_id, target=target)
        self._send({"type": "session.update", "event_id": event_id, "session": changes})
        return event_id

    def request_finished(self, event_id: str) -> None:
        """The driver stopped waiting for `event_id` (answered, timed out or failed to send)."""
        if self._create is not None and self._create.event_id == event_id:
            self._create = None
        if self._update is not None and self._update.event_id == event_id:
            self._update = None

    def cancel(self, played_ms: int, response: RealtimeResponse | None = None) -> None:
        """Barge-in: `response.cancel` each running response, truncate the reply heard.

        See `ResponseTracker.cut`: `response` is the reply playing (default: the latest one),
        `played_ms` how much of it the user heard.
        """
        if (cut := self.tracker.cut(played_ms, response)) is not None:
            self._outgoing.extend(cut_events(cut))

    def _add_item(self, item: dict[str, Any]) -> None:
        self._send({"type": "conversation.item.create", "item": item})
