"""Sans-I/O state of one device connection: frames in, typed events and frames out.

The WebSocket view feeds received frames to `receive_text` / `receive_binary`, acts on the
returned events, and transmits whatever `data_to_send()` yields. No I/O, no clock, no tasks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
import uuid

from .binary import AudioPacket, decode_audio_frame, encode_audio_frame
from .errors import BinaryFrameError, HelloError, SessionStateError
from .hello import BINARY_PROTOCOL_VERSIONS, DeviceHello, ServerHello
from .jsonframe import DEFAULT_MAX_DEPTH, DEFAULT_MAX_TEXT_SIZE, encode_object
from .messages import (
    Abort,
    Alert,
    LegacyIot,
    ListenDetect,
    ListenMode,
    ListenStart,
    ListenStop,
    LlmEmotion,
    McpMessage,
    ServerMessage,
    Stt,
    SystemCommand,
    TtsSentenceStart,
    TtsStart,
    TtsStop,
    parse_device_message,
)

MAX_AUDIO_FRAME = 8192
"""Largest binary frame accepted; a 60 ms Opus packet is at most a few hundred bytes."""

type Frame = str | bytes
"""An outgoing WebSocket frame: text or binary."""


@dataclass(frozen=True, slots=True)
class HelloReceived:
    """The device said hello; the server hello has been queued in reply."""

    hello: DeviceHello


@dataclass(frozen=True, slots=True)
class ListenStarted:
    """The device opened its microphone in `mode`."""

    mode: ListenMode


@dataclass(frozen=True, slots=True)
class ListenStopped:
    """The device closed its microphone (push-to-talk release)."""


@dataclass(frozen=True, slots=True)
class WakeWordDetected:
    """A wake word (or typed text, for some clients) arrived via `listen detect`."""

    text: str


@dataclass(frozen=True, slots=True)
class AbortRequested:
    """The device wants speech to stop; answer with `send_tts_stop()` once audio is stopped."""

    reason: str | None


@dataclass(frozen=True, slots=True)
class McpReceived:
    """A JSON-RPC payload from the device's MCP server; feed it to `McpClient`."""

    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class LegacyIotReceived:
    """Old firmware (before v1.8.0) reported IoT descriptors or states."""

    message: LegacyIot


@dataclass(frozen=True, slots=True)
class AudioReceived:
    """One uplink Opus packet; `listening` is False for e.g. buffered wake-word audio."""

    packet: AudioPacket
    listening: bool


type DeviceEvent = (
    HelloReceived
    | ListenStarted
    | ListenStopped
    | WakeWordDetected
    | AbortRequested
    | McpReceived
    | LegacyIotReceived
    | AudioReceived
)
"""What one received frame means."""


class DeviceSession:
    """Protocol state of one device WebSocket: hello, listening, speaking, framing version."""

    def __init__(
        self,
        *,
        session_id: str | None = None,
        protocol_version: int | None = None,
        sample_rate: int = 24000,
        frame_duration: int = 60,
        max_text_size: int = DEFAULT_MAX_TEXT_SIZE,
        max_depth: int = DEFAULT_MAX_DEPTH,
    ) -> None:
        """Prepare a session; `protocol_version` is the `Protocol-Version` header, if any."""
        if protocol_version is not None and protocol_version not in BINARY_PROTOCOL_VERSIONS:
            raise HelloError(f"unsupported Protocol-Version {protocol_version}")
        self.server_hello = ServerHello(session_id or uuid.uuid4().hex, sample_rate, frame_duration)
        self._header_version = protocol_version
        self._max_text_size = max_text_size
        self._max_depth = max_depth
        self._outgoing: list[Frame] = []
        self.device_hello: DeviceHello | None = None
        self.listening = False
        self.listen_mode: ListenMode = ListenMode.AUTO
        self.speaking = False

    @property
    def session_id(self) -> str:
        """The id announced in the server hello."""
        return self.server_hello.session_id

    @property
    def hello_done(self) -> bool:
        """Whether the hello exchange has happened."""
        return self.device_hello is not None

    @property
    def protocol_version(self) -> int:
        """Binary framing version in use (1 until the hello says otherwise)."""
        if self.device_hello is not None:
            return self.device_hello.version
        return self._header_version or 1

    def data_to_send(self) -> list[Frame]:
        """Return and forget the frames queued for the device, in order."""
        frames, self._outgoing = self._outgoing, []
        return frames

    # --- input -------------------------------------------------------------------------------

    def receive_text(self, data: str | bytes) -> DeviceEvent:
        """Handle one text frame; malformed or unexpected input raises a `ProtocolError`."""
        message = parse_device_message(
            data, max_size=self._max_text_size, max_depth=self._max_depth
        )
        if isinstance(message, DeviceHello):
            return self._on_hello(message)
        if self.device_hello is None:
            raise SessionStateError("message before hello")
        match message:
            case ListenStart(mode=mode):
                self.listening = True
                self.listen_mode = mode or ListenMode.AUTO
                return ListenStarted(self.listen_mode)
            case ListenStop():
                self.listening = False
                return ListenStopped()
            case ListenDetect(text=text):
                return WakeWordDetected(text)
            case Abort(reason=reason):
                return AbortRequested(reason)
            case McpMessage(payload=payload):
                return McpReceived(payload)
            case LegacyIot():
                return LegacyIotReceived(message)

    def receive_binary(self, data: bytes | bytearray | memoryview) -> AudioReceived:
        """Handle one binary frame: unwrap it with the session's framing version."""
        if self.device_hello is None:
            raise SessionStateError("audio before hello")
        if len(data) > MAX_AUDIO_FRAME:
            raise BinaryFrameError(f"binary frame of {len(data)} bytes is too large")
        return AudioReceived(decode_audio_frame(self.protocol_version, data), self.listening)

    def _on_hello(self, hello: DeviceHello) -> HelloReceived:
        """Accept the first hello and queue the server hello."""
        if self.device_hello is not None:
            raise SessionStateError("duplicate hello")
        if self._header_version is not None and hello.version != self._header_version:
            raise HelloError(
                f"hello version {hello.version} contradicts Protocol-Version {self._header_version}"
            )
        self.device_hello = hello
        self._outgoing.append(encode_object(self.server_hello.to_dict()))
        return HelloReceived(hello)

    # --- output ------------------------------------------------------------------------------

    def _send(self, message: ServerMessage) -> None:
        """Queue one server message, refusing anything before the hello exchange."""
        if self.device_hello is None:
            raise SessionStateError("cannot send before hello")
        self._outgoing.append(encode_object(message.to_dict()))

    def send_tts_start(self) -> None:
        """Enter Speaking; outside realtime mode the device stops its microphone."""
        self._send(TtsStart(session_id=self.session_id))
        self.speaking = True
        if self.listen_mode is not ListenMode.REALTIME:
            self.listening = False

    def send_tts_stop(self) -> None:
        """Leave Speaking; the device answers with `listen start` unless in manual mode."""
        self._send(TtsStop(session_id=self.session_id))
        self.speaking = False

    def send_sentence(self, text: str) -> None:
        """Show assistant text (`tts sentence_start`)."""
        self._send(TtsSentenceStart(text, session_id=self.session_id))

    def send_stt(self, text: str) -> None:
        """Show what the user said."""
        self._send(Stt(text, session_id=self.session_id))

    def send_emotion(self, emotion: str, text: str | None = None) -> None:
        """Set the displayed emotion."""
        self._send(LlmEmotion(emotion, text, session_id=self.session_id))

    def send_alert(self, status: str, message: str, emotion: str) -> None:
        """Show an alert."""
        self._send(Alert(status, message, emotion, session_id=self.session_id))

    def send_reboot(self) -> None:
        """Ask the device to reboot."""
        self._send(SystemCommand("reboot", session_id=self.session_id))

    def send_mcp(self, payload: dict[str, Any]) -> None:
        """Wrap a JSON-RPC payload in the `mcp` envelope (use as the McpClient's transport)."""
        self._send(McpMessage(payload, session_id=self.session_id))

    def send_audio(self, opus_packet: bytes, *, timestamp: int = 0) -> None:
        """Queue one downlink Opus packet, framed for the session's protocol version.

        The device drops audio unless it is Speaking, so sending outside Speaking is refused.
        """
        if not self.speaking:
            raise SessionStateError("audio sent while not speaking; send tts start first")
        self._outgoing.append(
            encode_audio_frame(self.protocol_version, opus_packet, timestamp=timestamp)
        )
