"""Typed JSON messages in both directions and their parsers.

Device -> server: hello, listen (start/stop/detect), abort, mcp and legacy iot.
Server -> device: hello, stt, tts (start/stop/sentence_start), llm, mcp, system, alert, custom.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from . import _fields as f
from .errors import (
    InvalidFieldError,
    MalformedMessageError,
    UnknownMessageTypeError,
)
from .hello import DeviceHello, ServerHello, parse_device_hello, parse_server_hello
from .jsonframe import DEFAULT_MAX_DEPTH, DEFAULT_MAX_TEXT_SIZE, decode_object, encode_object


class ListenMode(StrEnum):
    """How the device listens: server VAD (auto), push-to-talk (manual), or barge-in (realtime)."""

    AUTO = "auto"
    MANUAL = "manual"
    REALTIME = "realtime"


class TtsState(StrEnum):
    """States of the server's `tts` message."""

    START = "start"
    STOP = "stop"
    SENTENCE_START = "sentence_start"


def _envelope(message_type: str, session_id: str | None) -> dict[str, Any]:
    """Start a message dict with `session_id` first, as the firmware writes it."""
    if session_id is None:
        return {"type": message_type}
    return {"session_id": session_id, "type": message_type}


# --- device -> server ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ListenStart:
    """The device started listening; `mode` is None only for non-firmware clients."""

    mode: ListenMode | None = ListenMode.AUTO
    session_id: str | None = field(default=None, kw_only=True)

    def to_dict(self) -> dict[str, Any]:
        """Wire form."""
        msg = _envelope("listen", self.session_id) | {"state": "start"}
        if self.mode is not None:
            msg["mode"] = self.mode.value
        return msg


@dataclass(frozen=True, slots=True)
class ListenStop:
    """The device stopped listening (push-to-talk release)."""

    session_id: str | None = field(default=None, kw_only=True)

    def to_dict(self) -> dict[str, Any]:
        """Wire form."""
        return _envelope("listen", self.session_id) | {"state": "stop"}


@dataclass(frozen=True, slots=True)
class ListenDetect:
    """A wake word was detected (or, for some clients, typed text was entered)."""

    text: str = ""
    session_id: str | None = field(default=None, kw_only=True)

    def to_dict(self) -> dict[str, Any]:
        """Wire form."""
        return _envelope("listen", self.session_id) | {"state": "detect", "text": self.text}


@dataclass(frozen=True, slots=True)
class Abort:
    """The device asks to stop speaking, e.g. reason `wake_word_detected`."""

    reason: str | None = None
    session_id: str | None = field(default=None, kw_only=True)

    def to_dict(self) -> dict[str, Any]:
        """Wire form."""
        msg = _envelope("abort", self.session_id)
        if self.reason is not None:
            msg["reason"] = self.reason
        return msg


@dataclass(frozen=True, slots=True)
class McpMessage:
    """A JSON-RPC 2.0 payload wrapped in the `mcp` envelope (either direction)."""

    payload: dict[str, Any]
    session_id: str | None = field(default=None, kw_only=True)

    def to_dict(self) -> dict[str, Any]:
        """Wire form."""
        return _envelope("mcp", self.session_id) | {"payload": self.payload}


@dataclass(frozen=True, slots=True)
class LegacyIot:
    """Firmware before v1.8.0: IoT descriptors or states (superseded by MCP)."""

    descriptors: list[Any] | None = None
    states: list[Any] | None = None
    session_id: str | None = field(default=None, kw_only=True)

    def to_dict(self) -> dict[str, Any]:
        """Wire form."""
        msg = _envelope("iot", self.session_id) | {"update": True}
        if self.descriptors is not None:
            msg["descriptors"] = self.descriptors
        if self.states is not None:
            msg["states"] = self.states
        return msg


type DeviceMessage = (
    DeviceHello | ListenStart | ListenStop | ListenDetect | Abort | McpMessage | LegacyIot
)
"""Any message a device sends."""


# --- server -> device ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Stt:
    """What the user said, shown as a user chat line."""

    text: str
    session_id: str | None = field(default=None, kw_only=True)

    def to_dict(self) -> dict[str, Any]:
        """Wire form."""
        return _envelope("stt", self.session_id) | {"text": self.text}


@dataclass(frozen=True, slots=True)
class TtsStart:
    """Enter Speaking; the device drops audio that arrives before this."""

    session_id: str | None = field(default=None, kw_only=True)

    def to_dict(self) -> dict[str, Any]:
        """Wire form."""
        return _envelope("tts", self.session_id) | {"state": "start"}


@dataclass(frozen=True, slots=True)
class TtsStop:
    """Leave Speaking; in auto/realtime mode the device then sends `listen start` again."""

    session_id: str | None = field(default=None, kw_only=True)

    def to_dict(self) -> dict[str, Any]:
        """Wire form."""
        return _envelope("tts", self.session_id) | {"state": "stop"}


@dataclass(frozen=True, slots=True)
class TtsSentenceStart:
    """Assistant text shown as a chat line while speaking."""

    text: str
    session_id: str | None = field(default=None, kw_only=True)

    def to_dict(self) -> dict[str, Any]:
        """Wire form."""
        return _envelope("tts", self.session_id) | {"state": "sentence_start", "text": self.text}


@dataclass(frozen=True, slots=True)
class LlmEmotion:
    """Set the displayed emotion (e.g. `happy`), with an optional emoji text."""

    emotion: str
    text: str | None = None
    session_id: str | None = field(default=None, kw_only=True)

    def to_dict(self) -> dict[str, Any]:
        """Wire form."""
        msg = _envelope("llm", self.session_id) | {"emotion": self.emotion}
        if self.text is not None:
            msg["text"] = self.text
        return msg


@dataclass(frozen=True, slots=True)
class SystemCommand:
    """A system command; the firmware only knows `reboot`."""

    command: str
    session_id: str | None = field(default=None, kw_only=True)

    def to_dict(self) -> dict[str, Any]:
        """Wire form."""
        return _envelope("system", self.session_id) | {"command": self.command}


@dataclass(frozen=True, slots=True)
class Alert:
    """An on-screen alert with the vibration sound; all three fields are required."""

    status: str
    message: str
    emotion: str
    session_id: str | None = field(default=None, kw_only=True)

    def to_dict(self) -> dict[str, Any]:
        """Wire form."""
        return _envelope("alert", self.session_id) | {
            "status": self.status,
            "message": self.message,
            "emotion": self.emotion,
        }


@dataclass(frozen=True, slots=True)
class CustomMessage:
    """Application payload, only handled with CONFIG_RECEIVE_CUSTOM_MESSAGE."""

    payload: dict[str, Any]
    session_id: str | None = field(default=None, kw_only=True)

    def to_dict(self) -> dict[str, Any]:
        """Wire form."""
        return _envelope("custom", self.session_id) | {"payload": self.payload}


type ServerMessage = (
    ServerHello
    | Stt
    | TtsStart
    | TtsStop
    | TtsSentenceStart
    | LlmEmotion
    | McpMessage
    | SystemCommand
    | Alert
    | CustomMessage
)
"""Any message a server sends."""


def encode_message(message: DeviceMessage | ServerMessage) -> str:
    """Serialise a message for a WebSocket text frame."""
    return encode_object(message.to_dict())


# --- parsing ---------------------------------------------------------------------------------


def _as_object(
    data: str | bytes | bytearray | dict[str, Any], max_size: int, max_depth: int
) -> tuple[dict[str, Any], str]:
    """Decode a frame if needed and return it with its string `type`."""
    obj = (
        data
        if isinstance(data, dict)
        else decode_object(data, max_size=max_size, max_depth=max_depth)
    )
    message_type = obj.get("type")
    if not isinstance(message_type, str):
        raise MalformedMessageError("missing message type")
    return obj, message_type


def _parse_listen(obj: dict[str, Any], session_id: str | None) -> DeviceMessage:
    """Parse the three `listen` states."""
    state = f.req_str(obj, "state")
    if state == "start":
        mode = f.opt_str(obj, "mode")
        try:
            parsed_mode = None if mode is None else ListenMode(mode)
        except ValueError as err:
            raise InvalidFieldError(f"unknown listen mode {mode!r}") from err
        return ListenStart(parsed_mode, session_id=session_id)
    if state == "stop":
        return ListenStop(session_id=session_id)
    if state == "detect":
        return ListenDetect(f.opt_str(obj, "text") or "", session_id=session_id)
    raise InvalidFieldError(f"unknown listen state {state!r}")


def parse_device_message(
    data: str | bytes | bytearray | dict[str, Any],
    *,
    max_size: int = DEFAULT_MAX_TEXT_SIZE,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> DeviceMessage:
    """Parse one device text frame; anything malformed raises a `ProtocolError` subclass."""
    obj, message_type = _as_object(data, max_size, max_depth)
    if message_type == "hello":
        return parse_device_hello(obj)
    session_id = f.opt_str(obj, "session_id")
    match message_type:
        case "listen":
            return _parse_listen(obj, session_id)
        case "abort":
            return Abort(f.opt_str(obj, "reason"), session_id=session_id)
        case "mcp":
            return McpMessage(f.req_obj(obj, "payload"), session_id=session_id)
        case "iot":
            return LegacyIot(
                f.opt_list(obj, "descriptors"), f.opt_list(obj, "states"), session_id=session_id
            )
    raise UnknownMessageTypeError(message_type)


def _parse_tts(obj: dict[str, Any], session_id: str | None) -> ServerMessage:
    """Parse the three `tts` states."""
    state = f.req_str(obj, "state")
    if state == TtsState.START:
        return TtsStart(session_id=session_id)
    if state == TtsState.STOP:
        return TtsStop(session_id=session_id)
    if state == TtsState.SENTENCE_START:
        return TtsSentenceStart(f.req_str(obj, "text"), session_id=session_id)
    raise InvalidFieldError(f"unknown tts state {state!r}")


def parse_server_message(
    data: str | bytes | bytearray | dict[str, Any],
    *,
    max_size: int = DEFAULT_MAX_TEXT_SIZE,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> ServerMessage:
    """Parse one server text frame as a device would; malformed input raises `ProtocolError`."""
    obj, message_type = _as_object(data, max_size, max_depth)
    if message_type == "hello":
        return parse_server_hello(obj)
    session_id = f.opt_str(obj, "session_id")
    match message_type:
        case "stt":
            return Stt(f.req_str(obj, "text"), session_id=session_id)
        case "tts":
            return _parse_tts(obj, session_id)
        case "llm":
            return LlmEmotion(
                f.req_str(obj, "emotion"), f.opt_str(obj, "text"), session_id=session_id
            )
        case "mcp":
            return McpMessage(f.req_obj(obj, "payload"), session_id=session_id)
        case "system":
            return SystemCommand(f.req_str(obj, "command"), session_id=session_id)
        case "alert":
            return Alert(
                f.req_str(obj, "status"),
                f.req_str(obj, "message"),
                f.req_str(obj, "emotion"),
                session_id=session_id,
            )
        case "custom":
            return CustomMessage(f.req_obj(obj, "payload"), session_id=session_id)
    raise UnknownMessageTypeError(message_type)
