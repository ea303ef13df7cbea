"""A firmware-faithful xiaozhi-esp32 device simulator (OTA, WebSocket, audio, MCP server).

It behaves as stock firmware v2.x does (see the xiaozhi protocol reference): the OTA boot
check and activation loop, the WebSocket headers and hello, listen/abort messages, real Opus
uplink at 16 kHz / 60 ms with DTX, Speaking-state gating and the 40-packet decode queue on
downlink, and the built-in MCP tools with paginated `tools/list`. The tests drive it directly;
`python -m simulator` (see `simulator.cli`) drives it against a running Home Assistant.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
import hashlib
import hmac
import json
import logging
import math
from pathlib import Path
import random
from typing import Any
from urllib.parse import urlsplit
import uuid
import wave

import aiohttp
import numpy as np
import opuslib_next

from custom_components.openai_realtime_voice.xiaozhi import (
    Abort,
    Alert,
    AudioParams,
    BinaryFrameError,
    CustomMessage,
    DeviceFeatures,
    DeviceHello,
    HelloError,
    ListenDetect,
    ListenMode,
    ListenStart,
    ListenStop,
    LlmEmotion,
    McpMessage,
    ProtocolError,
    ServerHello,
    Stt,
    SystemCommand,
    TtsSentenceStart,
    TtsStart,
    TtsStop,
    decode_audio_frame,
    decode_object,
    encode_audio_frame,
    encode_object,
    parse_server_hello,
    parse_server_message,
)

from .changes import Changes, Listener
from .firmware import (
    BOOT_RETRY_DELAY,
    MAX_BOOT_FAILURES,
    DeviceState,
    MainTask,
    boot_retry_delays,
    is_valid_transition,
)

_LOGGER = logging.getLogger(__name__)

UPLINK_SAMPLE_RATE = 16000
UPLINK_FRAME_MS = 60
UPLINK_FRAME_SAMPLES = UPLINK_SAMPLE_RATE * UPLINK_FRAME_MS // 1000
MAX_DECODE_PACKETS_IN_QUEUE = 2400 // 60
HELLO_TIMEOUT = 10.0
MCP_PAGE_BYTES = 8000


class SimulatorError(Exception):
    """Base class of the simulator's own failures."""


class OtaError(SimulatorError):
    """The OTA server did not answer 200 with a JSON object."""


class HelloTimeoutError(SimulatorError):
    """No acceptable server hello within the firmware's 10 s ("server timeout")."""


class DeviceCrashedError(SimulatorError):
    """The server hello lacked `transport`; real firmware dereferences NULL and reboots."""


@dataclass(slots=True)
class OtaResult:
    """A parsed OTA reply, section by section (every section is optional)."""

    body: dict[str, Any]
    websocket: dict[str, Any] | None = None
    mqtt: dict[str, Any] | None = None
    activation: dict[str, Any] | None = None
    server_time: dict[str, Any] | None = None
    firmware: dict[str, Any] | None = None


@dataclass(slots=True)
class DownlinkPacket:
    """One received binary frame: when it arrived and what became of it."""

    arrival: float
    payload: bytes
    outcome: str  # "played", "not_speaking", "queue_full", "bad_frame", "decode_error"
    queue_depth: int = 0


@dataclass(slots=True)
class Tool:
    """One tool of the device's MCP server."""

    name: str
    description: str
    properties: dict[str, dict[str, Any]]
    handler: Callable[[dict[str, Any]], object]
    user_only: bool = False

    def to_json(self) -> dict[str, Any]:
        """The `tools/list` entry, as McpTool::to_json writes it."""
        schema: dict[str, Any] = {"type": "object", "properties": self.properties}
        required = [n for n, p in self.properties.items() if "default" not in p]
        if required:
            schema["required"] = required
        entry: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "inputSchema": schema,
        }
        if self.user_only:
            entry["annotations"] = {"audience": ["user"]}
        return entry


def _version_newer(candidate: str, current: str) -> bool:
    """Numeric dot-separated version comparison, as the firmware's OTA check does."""

    def parts(version: str) -> list[int]:
        return [int(p) if p.isdigit() else 0 for p in version.split(".")]

    return parts(candidate) > parts(current)


def encode_pcm16(pcm: bytes, encoder: Any) -> list[bytes]:
    """Encode 16 kHz mono PCM16 into 60 ms Opus packets, zero-padding the last frame."""
    frame_bytes = UPLINK_FRAME_SAMPLES * 2
    packets = []
    for start in range(0, len(pcm), frame_bytes):
        chunk = pcm[start : start + frame_bytes].ljust(frame_bytes, b"\0")
        packets.append(bytes(encoder.encode(chunk, UPLINK_FRAME_SAMPLES)))
    return packets


def new_uplink_encoder() -> Any:
    """An Opus encoder configured like the firmware's AS_OPUS_ENC_CONFIG."""
    encoder = opuslib_next.Encoder(UPLINK_SAMPLE_RATE, 1, opuslib_next.APPLICATION_AUDIO)
    encoder.bitrate = opuslib_next.constants.AUTO
    encoder.complexity = 0
    encoder.inband_fec = 0
    encoder.dtx = 1
    encoder.vbr = 1
    return encoder


def read_wav_as_16k(path: Path) -> bytes:
    """Read a PCM16 WAV file as 16 kHz mono (averaging channels, resampling linearly)."""
    with wave.open(str(path), "rb") as wav:
        if wav.getsampwidth() != 2:
            raise SimulatorError("only 16-bit WAV files are supported")
        channels, rate = wav.getnchannels(), wav.getframerate()
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    mono = samples.reshape(-1, channels).mean(axis=1)
    if rate != UPLINK_SAMPLE_RATE:
        count = int(len(mono) * UPLINK_SAMPLE_RATE / rate)
        mono = np.interp(np.arange(count) * rate / UPLINK_SAMPLE_RATE, np.arange(len(mono)), mono)
    pcm: bytes = np.clip(np.round(mono), -32768, 32767).astype("<i2").tobytes()
    return pcm


class DeviceSimulator:
    """One simulated xiaozhi device; see the module docstring for what it reproduces."""

    def __init__(
        self,
        ota_url: str | None = None,
        *,
        ws_url: str | None = None,
        token: str | None = None,
        protocol_version: int | None = None,
        mac: str | None = None,
        client_id: str | None = None,
        board_type: str = "bread-compact-wifi",
        board_name: str = "bread-compact-wifi",
        firmware_version: str = "2.4.2",
        language: str = "zh-CN",
        serial_number: str | None = None,
        hmac_key: bytes = b"",
        default_mode: ListenMode | None = None,
        server_aec: bool = False,
        wake_word: str = "你好小智",
        wake_word_in_listening: bool = False,
        ws_host_with_port: bool = False,
        glyph_push: bool = False,
        has_screen: bool = True,
        mcp_page_size: int = 2,
        hello_timeout: float = HELLO_TIMEOUT,
        activation_retry_delay: float = 3.0,
        activation_error_delay: float = 10.0,
        boot_retry_delay: float = BOOT_RETRY_DELAY,
        session: aiohttp.ClientSession | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        """Configure the device; `ws_url`/`token`/`protocol_version` pre-seed NVS `websocket`.

        `default_mode` follows `GetDefaultListeningMode` unless given (boards with device AEC
        listen in realtime mode): auto, or realtime on `server_aec` builds. `wake_word` is the
        word its model detects (the only `listen detect` text the firmware sends);
        `wake_word_in_listening` is `CONFIG_WAKE_WORD_DETECTION_IN_LISTENING` (default off).
        `ws_host_with_port` is a simulator option, not firmware: esp-ml307's WebSocket sends
        `Host` without the port.
        """
        if default_mode is None:
            default_mode = ListenMode.REALTIME if server_aec else ListenMode.AUTO
        elif server_aec and default_mode is not ListenMode.REALTIME:
            raise SimulatorError("server AEC builds listen in realtime mode")
        self.ota_url = ota_url
        self.mac = (mac or ":".join(f"{random.randrange(256):02x}" for _ in range(6))).lower()
        self.client_id = client_id or str(uuid.uuid4())
        self.board_type = board_type
        self.board_name = board_name
        self.firmware_version = firmware_version
        self.language = language
        self.serial_number = serial_number
        self.hmac_key = hmac_key
        self.default_mode = default_mode
        self.server_aec = server_aec
        self.glyph_push = glyph_push
        self.wake_word = wake_word
        self.wake_word_in_listening = wake_word_in_listening
        self.ws_host_with_port = ws_host_with_port
        self.boot_retry_delay = boot_retry_delay
        self.has_screen = has_screen
        self.mcp_page_size = mcp_page_size
        self.hello_timeout = hello_timeout
        self.activation_retry_delay = activation_retry_delay
        self.activation_error_delay = activation_error_delay
        self._session = session
        self._owns_session = session is None
        self._clock = clock

        self.nvs_websocket: dict[str, str | int] = {}
        if ws_url is not None:
            self.nvs_websocket["url"] = ws_url
        if token is not None:
            self.nvs_websocket["token"] = token
        if protocol_version is not None:
            self.nvs_websocket["version"] = protocol_version
        self.ota: OtaResult | None = None
        self.uses_mqtt = False
        self.firmware_upgrade_url: str | None = None
        self.server_time_ms: int | None = None
        self.lose_ota_replies = 0
        """Boot-check replies still to lose on the way (a Wi-Fi drop, a power cut): Home
        Assistant answered, the board stores nothing (`Ota::CheckVersion` parses and stores
        only a reply it read to the end) and the check fails."""

        self.state = DeviceState.IDLE
        self.listen_mode = default_mode
        self.aborted = False
        self.server_hello: ServerHello | None = None
        self.session_id = ""
        self.crashed = False
        self.reboot_requested = False
        self.messages: list[dict[str, Any]] = []
        # For each received message: how many downlink packets had arrived before it.
        self.message_downlink: list[int] = []
        self.ignored_text: list[str] = []
        self.user_lines: list[str] = []
        self.assistant_lines: list[str] = []
        # The chat label of the default display: every SetChatMessage replaces it.
        self.chat_message: tuple[str, str] = ("system", "")
        self.refused_transitions: list[tuple[DeviceState, DeviceState]] = []
        self.boot_failures: list[str] = []  # the error alert of each failed boot check
        self.emotions: list[str] = []
        self.alerts: list[Alert] = []
        self.custom_payloads: list[dict[str, Any]] = []
        self.downlink: list[DownlinkPacket] = []
        self.played_pcm = bytearray()
        self.cut_at_stop = 0
        self.sent_frames: list[str | bytes] = []
        self.mic_frames_dropped = 0

        self.volume = 70
        self.brightness = 75
        self.theme = "light"
        self.vision: dict[str, Any] | None = None
        self.mcp_mute = False
        self.upgrade_requests: list[str] = []
        self.tools = self._build_tools()

        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._receiver: asyncio.Task[None] | None = None
        self._hello_event = asyncio.Event()
        self._closed_event = asyncio.Event()
        self._message_event = asyncio.Event()
        self._encoder = new_uplink_encoder()
        self._decoder: Any = None
        self._playback_ends: deque[float] = deque()
        self._uplink_ms = 0
        self._main = MainTask()
        self._voice_processing = False  # AudioService::EnableVoiceProcessing
        self._popup_on_listening = False  # play_popup_on_listening_
        self._pending_start: asyncio.TimerHandle | None = None  # pending_listening_start_
        self._jobs: set[asyncio.Task[None]] = set()
        self._changes = Changes()

    # --- change notification (event-driven waits in tests) -----
    # Everything the board records arrives through `_receive_loop` (one frame at a time, then
    # the close) or a job of `_spawn` (a deferred `listen start`, a slow tool, the wake word).

    def async_add_listener(self, update: Listener) -> Callable[[], None]:
        """Call `update` after each received frame, finished job and closed channel."""
        return self._changes.async_add_listener(update)

    def _changed(self) -> None:
        self._changes.notify()

    # --- helpers -----

    def _now(self) -> float:
        """Current time on the injected clock, or the event loop's."""
        return self._clock() if self._clock else asyncio.get_running_loop().time()

    async def _http(self) -> aiohttp.ClientSession:
        """The HTTP session, created on first use (without aiohttp's own User-Agent)."""
        if self._session is None:
            self._session = aiohttp.ClientSession(skip_auto_headers=("User-Agent",))
        return self._session

    @property
    def protocol_version(self) -> int:
        """NVS `websocket/version`; 0 or absent keeps the default 1."""
        version = self.nvs_websocket.get("version", 1)
        return version if isinstance(version, int) and version else 1

    @property
    def mic_active(self) -> bool:
        """Whether the firmware streams microphone audio now (voice processing is on).

        `StartListeningAudio` turns it on with `listen start`; Speaking turns it off except
        in realtime mode; Idle turns it off.
        """
        return self._voice_processing

    @property
    def main_task_held(self) -> bool:
        """Whether the main task is blocked (connecting, or running a long tool)."""
        return self._main.held

    @property
    def listen_start_pending(self) -> bool:
        """`pending_listening_start_`: Listening waits for the playback queue to drain."""
        return self._pending_start is not None

    async def _set_state(self, new: DeviceState) -> bool:
        """`DeviceStateMachine::TransitionTo` plus what `HandleStateChangedEvent` does.

        A refused transition (`IsValidTransition`) changes nothing and is recorded.
        """
        old = self.state
        if not is_valid_transition(old, new):
            _LOGGER.warning("Invalid state transition: %s -> %s", old, new)
            self.refused_transitions.append((old, new))
            return False
        self.state = new
        # HandleStateChangedEvent: any state change cancels a deferred listening start.
        self._cancel_pending_start()
        if new is DeviceState.IDLE:
            self._voice_processing = False
        elif new is DeviceState.SPEAKING:
            if self.listen_mode is not ListenMode.REALTIME:
                self._voice_processing = False
            self._playback_ends.clear()  # ResetDecoder clears the decode and playback queues
        elif new is DeviceState.LISTENING and (
            self._popup_on_listening or not self._voice_processing
        ):
            if self.listen_mode is ListenMode.AUTO and self._queue_depth(self._now()):
                # Auto mode: wait until the playback queue drained before listening again.
                delay = self._playback_ends[-1] - self._now()
                self._pending_start = asyncio.get_running_loop().call_later(
                    delay, self._on_playback_drained
                )
            else:
                await self._start_listening_audio()
        return True

    def _cancel_pending_start(self) -> None:
        if self._pending_start is not None:
            self._pending_start.cancel()
            self._pending_start = None

    def _on_playback_drained(self) -> None:
        """MAIN_EVENT_PLAYBACK_DRAINED with `pending_listening_start_` set."""
        self._pending_start = None
        if self.state is DeviceState.LISTENING:
            self._spawn(self._start_listening_audio())

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._jobs.add(task)
        task.add_done_callback(self._jobs.discard)
        task.add_done_callback(lambda _: self._changed())

    async def _start_listening_audio(self) -> None:
        """`StartListeningAudio`: `listen start` in the current mode, then the microphone."""
        if self.state is not DeviceState.LISTENING or self._ws is None:
            return
        self._popup_on_listening = False
        self._playback_ends.clear()  # EnableVoiceProcessing(true) resets the decoder
        await self._send_text(
            encode_object(ListenStart(self.listen_mode, session_id=self.session_id).to_dict())
        )
        self._voice_processing = True

    def http_headers(self) -> dict[str, str]:
        """Headers of the OTA and activation requests (Ota::SetupHttp)."""
        headers = {
            "Activation-Version": "2" if self.serial_number else "1",
            "Device-Id": self.mac,
            "Client-Id": self.client_id,
            "User-Agent": f"{self.board_name}/{self.firmware_version}",
            "Accept-Language": self.language,
            "Content-Type": "application/json",
        }
        if self.serial_number:
            headers["Serial-Number"] = self.serial_number
        return headers

    def system_info(self) -> dict[str, Any]:
        """The OTA request body (Board::GetSystemInfoJson)."""
        return {
            "version": 2,
            "language": self.language,
            "flash_size": 16777216,
            "minimum_free_heap_size": "123456",
            "mac_address": self.mac,
            "uuid": self.client_id,
            "chip_model_name": "esp32s3",
            "chip_info": {"model": 9, "cores": 2, "revision": 2, "features": 18},
            "application": {
                "name": "xiaozhi",
                "version": self.firmware_version,
                "compile_time": "2026-08-01T00:00:00Z",
                "idf_version": "v5.5.1",
                "elf_sha256": hashlib.sha256(self.firmware_version.encode()).hexdigest(),
            },
            "partition_table": [
                {"label": "nvs", "type": 1, "subtype": 2, "address": 36864, "size": 16384},
                {"label": "ota_0", "type": 0, "subtype": 16, "address": 1048576, "size": 6291456},
            ],
            "ota": {"label": "ota_0"},
            "display": {"monochrome": False, "width": 240, "height": 240},
            "board": {
                "type": self.board_type,
                "name": self.board_name,
                "manufacturer": "simulator",
                "ssid": "sim-wifi",
                "rssi": -50,
                "channel": 6,
                "ip": "127.0.0.1",
                "mac": self.mac,
            },
        }

    # --- OTA and activation -----

    async def check_version(self) -> OtaResult:
        """POST the boot-time version check and apply the reply as the firmware does."""
        if self.ota_url is None:
            raise OtaError("no OTA URL configured")
        session = await self._http()
        async with session.post(
            self.ota_url, data=json.dumps(self.system_info()), headers=self.http_headers()
        ) as resp:
            if self.lose_ota_replies > 0:
                self.lose_ota_replies -= 1
                resp.close()
                raise OtaError("OTA reply lost")
            text = await resp.text()
            if resp.status != 200:
                raise OtaError(f"OTA status {resp.status}")
        try:
            body = json.loads(text)
        except ValueError as err:
            raise OtaError("OTA reply is not JSON") from err
        if not isinstance(body, dict):
            raise OtaError("OTA reply is not an object")
        result = OtaResult(body)
        for name in ("websocket", "mqtt", "activation", "server_time", "firmware"):
            section = body.get(name)
            if isinstance(section, dict):
                setattr(result, name, section)
        if result.websocket is not None:
            for key, value in result.websocket.items():
                if isinstance(value, (str, int)) and not isinstance(value, bool):
                    self.nvs_websocket[key] = value
        self.uses_mqtt = result.mqtt is not None or result.websocket is None
        if result.server_time is not None:
            timestamp = result.server_time.get("timestamp")
            offset = result.server_time.get("timezone_offset", 0)
            if isinstance(timestamp, (int, float)) and isinstance(offset, (int, float)):
                self.server_time_ms = int(timestamp + offset * 60_000)
        if result.firmware is not None:
            version, url = result.firmware.get("version"), result.firmware.get("url")
            newer = isinstance(version, str) and _version_newer(version, self.firmware_version)
            if isinstance(url, str) and url and (newer or result.firmware.get("force") == 1):
                self.firmware_upgrade_url = url
        self.ota = result
        return result

    def activation_body(self) -> dict[str, Any]:
        """The `/activate` body: empty without an efuse serial number, an HMAC otherwise."""
        challenge = ((self.ota and self.ota.activation) or {}).get("challenge", "")
        if not self.serial_number:
            return {}
        digest = hmac.new(self.hmac_key, str(challenge).encode(), hashlib.sha256).hexdigest()
        return {
            "algorithm": "hmac-sha256",
            "serial_number": self.serial_number,
            "challenge": challenge,
            "hmac": digest,
        }

    async def activate(self, max_attempts: int = 10) -> bool:
        """Ota::Activate in the firmware's retry loop: 202 waits, 200 succeeds."""
        activation = self.ota.activation if self.ota else None
        if not activation or "challenge" not in activation or self.ota_url is None:
            return False
        url = self.ota_url if self.ota_url.endswith("/") else self.ota_url + "/"
        session = await self._http()
        self.state = DeviceState.ACTIVATING
        try:
            for _ in range(max_attempts):
                async with session.post(
                    url + "activate",
                    data=json.dumps(self.activation_body()),
                    headers=self.http_headers(),
                ) as resp:
                    status = resp.status
                if status == 200:
                    return True
                delay = (
                    self.activation_retry_delay if status == 202 else self.activation_error_delay
                )
                await asyncio.sleep(delay)
            return False
        finally:
            self.state = DeviceState.IDLE

    async def boot(self, max_rounds: int = 10) -> OtaResult | None:
        """`CheckNewVersion`: check the version and activate until no `activation` comes.

        A failed check (any status but 200, or no JSON object) shows an error with the
        exclamation sound (recorded in `boot_failures`) and is tried again after 10, 20,
        40 ... s (`boot_retry_delay` doubled). After `MAX_BOOT_FAILURES` failures in a row the
        board stops checking and returns None: with no protocol from this boot's OTA reply,
        `InitializeProtocol` picks MQTT until the board is rebooted.
        """
        delays = boot_retry_delays(self.boot_retry_delay)
        failures = 0
        for _ in range(max_rounds + MAX_BOOT_FAILURES):
            try:
                result = await self.check_version()
            except OtaError as err:
                failures += 1
                if failures >= MAX_BOOT_FAILURES:
                    self.uses_mqtt = True
                    return None
                self.boot_failures.append(str(err))
                await asyncio.sleep(delays[failures - 1])
                continue
            failures = 0
            if result.activation is None:
                return result
            await self.activate()
        raise OtaError("still not activated")

    def erase_settings(self) -> None:
        """Erase NVS (or flash the firmware again): the MAC stays, everything else is new.

        `Board::Board()` (`board.cc`) reads `board/uuid` and makes a new random one when it is
        missing, so the device comes back with a new Client-Id and no `websocket` settings.
        """
        self.client_id = str(uuid.uuid4())
        self.nvs_websocket = {}
        self.ota = None

    # --- WebSocket channel -----

    def ws_headers(self) -> dict[str, str]:
        """Handshake headers (WebsocketProtocol::OpenAudioChannel)."""
        headers: dict[str, str] = {}
        token = str(self.nvs_websocket.get("token", ""))
        if token:
            headers["Authorization"] = token if " " in token else f"Bearer {token}"
        headers["Protocol-Version"] = str(self.protocol_version)
        headers["Device-Id"] = self.mac
        headers["Client-Id"] = self.client_id
        return headers

    def hello(self) -> DeviceHello:
        """The client hello this device sends."""
        return DeviceHello(
            version=self.protocol_version,
            features=DeviceFeatures(mcp=True, aec=self.server_aec, glyph_push=self.glyph_push),
            audio_params=AudioParams(UPLINK_SAMPLE_RATE, UPLINK_FRAME_MS),
        )

    @property
    def channel_open(self) -> bool:
        """Whether the WebSocket is connected and the hello exchange completed."""
        return (
            self._ws is not None
            and not self._ws.closed
            and not self._closed_event.is_set()
            and self.server_hello is not None
        )

    def _ws_connect_headers(self, url: str) -> dict[str, str]:
        """The handshake's headers; esp-ml307 `WebSocket::Connect` writes `Host` without port."""
        headers = self.ws_headers()
        if not self.ws_host_with_port and "Host" not in headers:  # else a proxy set it
            host = urlsplit(url).hostname or ""
            headers["Host"] = f"[{host}]" if ":" in host else host
        return headers

    async def _connect(self) -> None:
        """`WebsocketProtocol::OpenAudioChannel`: connect, hello, wait for the server hello."""
        url = self.nvs_websocket.get("url")
        if self.uses_mqtt:
            raise SimulatorError("the OTA reply selected MQTT, which is not simulated")
        if not isinstance(url, str) or not url:
            raise SimulatorError("no websocket URL in NVS")
        session = await self._http()
        await self._drop_socket()  # the previous WebSocket object is destroyed
        self.server_hello = None
        self._hello_event.clear()
        self._closed_event.clear()
        # autoclose=False: the board does not answer a close frame (esp-ml307 `OnTcpData`
        # only marks itself disconnected on opcode 0x8).
        self._ws = await session.ws_connect(
            url, headers=self._ws_connect_headers(url), autoping=True, autoclose=False
        )
        self._receiver = asyncio.create_task(self._receive_loop(self._ws))
        hello = self.hello().to_dict()
        if self.glyph_push:
            hello["text_font"] = {"bundle": "noto-v1", "charset": "common", "size": 20, "bpp": 4}
        await self._send_text(encode_object(hello))
        try:
            async with asyncio.timeout(self.hello_timeout):
                await self._hello_event.wait()
        except TimeoutError as err:
            await self._drop_socket()
            raise HelloTimeoutError("server timeout") from err
        if self.crashed:
            raise DeviceCrashedError("server hello without transport")

    async def open_audio_channel(self, mode: ListenMode | None = None) -> None:
        """Button press while Idle (`ContinueOpenAudioChannel`): connect, then listen at once.

        Right after the server hello the board enters Listening in `mode` (its default
        listening mode unless told; push-to-talk is manual) and sends `listen start`; the
        microphone streams from then on. Nothing waits for MCP discovery or the server's
        model session. Messages the server sends meanwhile wait on the main task.
        """
        await self._invoke(mode or self.default_mode)

    async def _invoke(self, mode: ListenMode, before_listening: Any = None) -> None:
        """Connecting -> (open the channel) -> `before_listening` -> Listening in `mode`.

        The main task is held throughout (`ContinueWakeWordInvoke`/`ContinueOpenAudioChannel`
        run on it), so scheduled messages run after `listen start`.
        """
        if not await self._set_state(DeviceState.CONNECTING):
            raise SimulatorError(f"cannot connect while {self.state}")
        self._main.hold()
        try:
            try:
                if not self.channel_open:
                    await self._connect()
            except BaseException:
                await self._set_state(DeviceState.IDLE)
                raise
            if before_listening is not None:
                await before_listening()
            self.listen_mode = mode
            await self._set_state(DeviceState.LISTENING)
        finally:
            await self._main.release()

    async def _drop_socket(self) -> None:
        """Destroy the WebSocket object: `~WebSocket` drops the TCP connection, no close frame."""
        ws, self._ws = self._ws, None
        if self._receiver is not None:
            self._receiver.cancel()
            await asyncio.gather(self._receiver, return_exceptions=True)
            self._receiver = None
        if ws is not None and not ws.closed:
            # aiohttp has no public abort for a client WebSocket: close its connection.
            ws._response.close()  # noqa: SLF001
            await ws.close()  # only marks it closed now that the transport is gone

    async def close_audio_channel(self) -> None:
        """`CloseAudioChannel` (the button while Listening): drop the socket and go idle."""
        await self._drop_socket()
        self._cancel_pending_start()
        self.state = DeviceState.IDLE
        self._voice_processing = False

    async def close(self) -> None:
        """Close the channel and the HTTP session if the simulator created it."""
        await self.close_audio_channel()
        self._main.clear()
        jobs = list(self._jobs)
        for job in jobs:
            job.cancel()
        await asyncio.gather(*jobs, return_exceptions=True)
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def wait_closed(self) -> None:
        """Wait until the server closes the WebSocket."""
        await self._closed_event.wait()

    async def wait_for_message(
        self, predicate: Callable[[dict[str, Any]], bool], start: int = 0
    ) -> dict[str, Any]:
        """Wait for a received JSON message (from index `start` on) matching `predicate`."""
        while True:
            for message in self.messages[start:]:
                if predicate(message):
                    return message
            start = len(self.messages)
            self._message_event.clear()
            if self._closed_event.is_set():
                raise SimulatorError("connection closed while waiting")
            await self._message_event.wait()

    # --- sending -----

    async def _send_text(self, text: str) -> None:
        """Send one text frame and keep a copy."""
        if self._ws is None:
            raise SimulatorError("audio channel is not open")
        self.sent_frames.append(text)
        await self._ws.send_str(text)

    async def _send_bytes(self, data: bytes) -> None:
        """Send one binary frame and keep a copy."""
        if self._ws is None:
            raise SimulatorError("audio channel is not open")
        self.sent_frames.append(data)
        await self._ws.send_bytes(data)

    async def send_raw_text(self, text: str) -> None:
        """Misbehave: send any text frame."""
        await self._send_text(text)

    async def send_raw_bytes(self, data: bytes) -> None:
        """Misbehave: send any binary frame."""
        await self._send_bytes(data)

    async def start_listening(self, mode: ListenMode | None = None) -> None:
        """Listen in `mode` now (`SetListeningMode` with the microphone off before).

        What the board does on a push-to-talk press while Idle with its channel open, or when
        `StartListeningAudio` runs: `listen start`, then the microphone streams. A test driver:
        the firmware's own moments (after the hello, after `tts stop`) need no call.
        """
        self.listen_mode = mode or self.default_mode
        self._popup_on_listening = True
        if self.state is DeviceState.LISTENING:
            self._cancel_pending_start()
            await self._start_listening_audio()
        elif not await self._set_state(DeviceState.LISTENING):
            raise SimulatorError(f"cannot listen while {self.state}")

    async def stop_listening(self) -> None:
        """Push-to-talk release (`HandleStopListeningEvent`): `listen stop` and go idle."""
        await self._send_text(encode_object(ListenStop(session_id=self.session_id).to_dict()))
        await self._set_state(DeviceState.IDLE)

    async def abort(self, reason: str | None = None) -> None:
        """Send `abort`; the device stays Speaking until the server sends `tts stop`."""
        self.aborted = True
        await self._send_text(encode_object(Abort(reason, session_id=self.session_id).to_dict()))

    async def detect_wake_word(
        self, text: str | None = None, wake_pcm: bytes = b"", *, speech: bytes = b""
    ) -> bool:
        """The board's wake word model fires (`HandleWakeWordDetectedEvent`); False if ignored.

        Idle (`BeginWakeWordInvoke`, `ContinueWakeWordInvoke`): connect if needed, then at once
        the buffered wake-word Opus, `listen detect` with the wake word, `listen start`, and
        the microphone streams: `speech` (16 kHz PCM16, what the user says straight after the
        wake word) follows at real time without waiting for anything from the server.

        Speaking: `abort` (`wake_word_detected`) and Listening in the default mode; the
        `listen start` follows once the playback queue drained in auto mode.

        Listening: ignored unless `wake_word_in_listening`
        (`CONFIG_WAKE_WORD_DETECTION_IN_LISTENING`); then `abort` (`wake_word_detected`) and
        `listen start`, never a `listen detect`.
        """
        word = self.wake_word if text is None else text
        if word != self.wake_word:
            raise SimulatorError(
                f"the board detects only its wake word {self.wake_word!r}, not {word!r}"
            )
        if self.state is DeviceState.SPEAKING:
            await self.abort("wake_word_detected")
            self._popup_on_listening = True
            self.listen_mode = self.default_mode
            await self._set_state(DeviceState.LISTENING)
        elif self.state is DeviceState.LISTENING:
            if not self.wake_word_in_listening:
                return False
            await self.abort("wake_word_detected")
            self._playback_ends.clear()  # ResetDecoder
            await self._send_text(
                encode_object(ListenStart(self.default_mode, session_id=self.session_id).to_dict())
            )
        elif self.state is DeviceState.IDLE:

            async def wake_word_audio_and_detect() -> None:
                for packet in encode_pcm16(wake_pcm, self._encoder):
                    await self._send_packet(packet)
                await self._send_text(
                    encode_object(ListenDetect(word, session_id=self.session_id).to_dict())
                )

            await self._invoke(self.default_mode, wake_word_audio_and_detect)
        else:
            return False
        if speech:
            await self.send_audio(speech, realtime=True)
        return True

    async def _send_packet(self, packet: bytes) -> None:
        """Frame one Opus packet for the NVS protocol version and send it."""
        await self._send_bytes(
            encode_audio_frame(self.protocol_version, packet, timestamp=self._uplink_ms)
        )
        self._uplink_ms = (self._uplink_ms + UPLINK_FRAME_MS) & 0xFFFFFFFF

    async def send_audio(self, pcm: bytes, *, realtime: bool = False) -> int:
        """Stream 16 kHz mono PCM16 as the microphone would; returns packets sent.

        Frames captured while the microphone is off (e.g. Speaking in auto mode) are dropped,
        as the firmware's disabled voice processing does. `realtime` paces at 60 ms per frame.
        """
        loop = asyncio.get_running_loop()
        start = loop.time()
        sent = 0
        for index, packet in enumerate(encode_pcm16(pcm, self._encoder)):
            if realtime:
                await asyncio.sleep(max(0.0, start + index * UPLINK_FRAME_MS / 1000 - loop.time()))
            if not self.mic_active:
                self.mic_frames_dropped += 1
                continue
            await self._send_packet(packet)
            sent += 1
        return sent

    async def send_wav(self, path: Path, *, realtime: bool = False) -> int:
        """Stream a 16-bit WAV file (any rate, mono or stereo) through `send_audio`."""
        pcm = await asyncio.to_thread(read_wav_as_16k, path)
        return await self.send_audio(pcm, realtime=realtime)

    async def send_mcp_notification(self, method: str, params: dict[str, Any]) -> None:
        """A device-initiated MCP notification (no id)."""
        payload = {"jsonrpc": "2.0", "method": method, "params": params}
        await self._send_text(
            encode_object(McpMessage(payload, session_id=self.session_id).to_dict())
        )

    # --- receiving -----

    async def _receive_loop(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """Dispatch every incoming frame until the socket closes.

        A close frame ends the loop without an answer (the board never replies to one); the
        TCP connection stays until the WebSocket object is destroyed (next connect or close).
        """
        try:
            async for msg in ws:
                if msg.type is aiohttp.WSMsgType.TEXT:
                    await self._on_text(msg.data)
                elif msg.type is aiohttp.WSMsgType.BINARY:
                    self._on_binary(msg.data)
                self._changed()
                if self.crashed:
                    break
        finally:
            # on_audio_channel_closed_: the board goes Idle.
            self._cancel_pending_start()
            self.state = DeviceState.IDLE
            self._voice_processing = False
            self._closed_event.set()
            self._message_event.set()
            self._changed()
            if self.crashed:
                ws._response.close()  # noqa: SLF001 - the reboot drops the connection

    async def _on_text(self, text: str) -> None:
        """OnIncomingJson, plus the hello handling of the protocol layer.

        What the firmware hands to the main task with `Schedule()` runs through `_main`:
        `tts`, `stt`, `llm`, `system`, `custom` and MCP `tools/call`.
        """
        try:
            obj = decode_object(text)
        except ProtocolError:
            self.ignored_text.append(text)
            return
        if not isinstance(obj.get("type"), str):
            self.ignored_text.append(text)
            return
        self.messages.append(obj)
        self.message_downlink.append(len(self.downlink))
        self._message_event.set()
        if obj["type"] == "hello":
            self._on_server_hello(obj)
            return
        try:
            message = parse_server_message(obj)
        except ProtocolError:
            self.ignored_text.append(text)
            return
        match message:
            case McpMessage(payload=payload):
                await self._on_mcp(payload)
            case Alert():
                self.alerts.append(message)  # Alert() runs in the WebSocket task
            case TtsStart() | TtsStop() | TtsSentenceStart() | Stt() | LlmEmotion():
                await self._main.run(partial(self._on_scheduled, message))
            case SystemCommand(command="reboot") | CustomMessage():
                await self._main.run(partial(self._on_scheduled, message))
            case _:
                self.ignored_text.append(text)

    async def _on_scheduled(self, message: Any) -> None:
        """The part of OnIncomingJson that runs on the main task."""
        match message:
            case TtsStart():
                self.aborted = False
                await self._set_state(DeviceState.SPEAKING)
            case TtsStop():
                if self.state is DeviceState.SPEAKING:
                    self._on_tts_stop()
                    # Manual mode idles; auto and realtime mode listen again, and
                    # HandleStateChangedEvent decides about `listen start`: none in realtime
                    # mode (the audio processor kept running), in auto mode once the playback
                    # queue drained (`pending_listening_start_`).
                    await self._set_state(
                        DeviceState.IDLE
                        if self.listen_mode is ListenMode.MANUAL
                        else DeviceState.LISTENING
                    )
            case TtsSentenceStart(text=line):
                self.assistant_lines.append(line)
                self.chat_message = ("assistant", line)
            case Stt(text=line):
                self.user_lines.append(line)
                self.chat_message = ("user", line)
            case LlmEmotion(emotion=emotion):
                self.emotions.append(emotion)
            case SystemCommand():
                self.reboot_requested = True
            case CustomMessage(payload=payload):
                self.custom_payloads.append(payload)
                self.chat_message = ("system", json.dumps(payload, separators=(",", ":")))

    def _on_server_hello(self, obj: dict[str, Any]) -> None:
        """ParseServerHello: transport must be "websocket"; a missing key crashes the device."""
        if "transport" not in obj:
            self.crashed = True
            self._hello_event.set()
            return
        try:
            hello = parse_server_hello(obj)
        except HelloError:
            return
        self.server_hello = hello
        self.session_id = hello.session_id
        self._decoder = opuslib_next.Decoder(hello.sample_rate, 1)
        self._hello_event.set()

    def _on_tts_stop(self) -> None:
        """Before v2.2.2 `tts stop` clears the playback queue at once (no
        `WaitForPlaybackQueueEmpty`): count the packets that were never heard."""
        if not _version_newer(self.firmware_version, "2.2.1"):
            self.cut_at_stop += self._queue_depth(self._now())
            self._playback_ends.clear()

    def _queue_depth(self, now: float) -> int:
        """Packets still waiting in the emulated decode queue at time `now`."""
        while self._playback_ends and self._playback_ends[0] <= now:
            self._playback_ends.popleft()
        return len(self._playback_ends)

    def _on_binary(self, data: bytes) -> None:
        """Queue downlink audio only while Speaking, and only up to 40 packets."""
        now = self._now()
        try:
            packet = decode_audio_frame(self.protocol_version, data)
        except BinaryFrameError:
            self.downlink.append(DownlinkPacket(now, data, "bad_frame"))
            return
        if self.state is not DeviceState.SPEAKING or self.server_hello is None:
            self.downlink.append(DownlinkPacket(now, packet.payload, "not_speaking"))
            return
        depth = self._queue_depth(now)
        if depth >= MAX_DECODE_PACKETS_IN_QUEUE:
            self.downlink.append(DownlinkPacket(now, packet.payload, "queue_full", depth))
            return
        params = self.server_hello.audio_params
        try:
            pcm = self._decoder.decode(packet.payload, params.samples_per_frame)
        except opuslib_next.OpusError:
            self.downlink.append(DownlinkPacket(now, packet.payload, "decode_error", depth))
            return
        self.played_pcm.extend(pcm)
        start = self._playback_ends[-1] if self._playback_ends else now
        self._playback_ends.append(max(start, now) + params.frame_duration / 1000)
        self.downlink.append(DownlinkPacket(now, packet.payload, "played", depth))

    def downlink_outcomes(self) -> dict[str, int]:
        """Count received binary frames by outcome."""
        counts: dict[str, int] = {}
        for packet in self.downlink:
            counts[packet.outcome] = counts.get(packet.outcome, 0) + 1
        return counts

    # --- MCP server -----

    def _build_tools(self) -> list[Tool]:
        """The firmware's common tools, screen tools when present, then user-only tools."""
        percent = {"type": "integer", "minimum": 0, "maximum": 100}
        tools = [
            Tool(
                "self.get_device_status",
                "Provides the real-time information of the device, including the current status "
                "of the audio speaker, screen, battery, network, etc.",
                {},
                lambda _: json.dumps(self.device_status()),
            ),
            Tool(
                "self.audio_speaker.set_volume",
                "Set the volume of the audio speaker.",
                {"volume": percent},
                self._set_volume,
            ),
        ]
        if self.has_screen:
            tools += [
                Tool(
                    "self.screen.set_brightness",
                    "Set the brightness of the screen.",
                    {"brightness": percent},
                    self._set_brightness,
                ),
                Tool(
                    "self.screen.set_theme",
                    "Set the theme of the screen. The theme can be `light` or `dark`.",
                    {"theme": {"type": "string"}},
                    self._set_theme,
                ),
            ]
        tools += [
            Tool(
                "self.get_system_info",
                "Get the system information",
                {},
                lambda _: json.dumps(self.system_info()),
                user_only=True,
            ),
            Tool("self.reboot", "Reboot the system", {}, self._reboot, user_only=True),
            Tool(
                "self.upgrade_firmware",
                "Upgrade firmware from a specific URL.",
                {"url": {"type": "string", "description": "firmware binary URL"}},
                self._upgrade,
                user_only=True,
            ),
        ]
        if self.has_screen:
            tools.append(
                Tool(
                    "self.screen.get_info",
                    "Information about the screen, including width, height, etc.",
                    {},
                    lambda _: json.dumps({"width": 240, "height": 240, "monochrome": False}),
                    user_only=True,
                )
            )
        return tools

    def device_status(self) -> dict[str, Any]:
        """GetDeviceStatusJson: what `self.get_device_status` returns."""
        status: dict[str, Any] = {"audio_speaker": {"volume": self.volume}}
        if self.has_screen:
            status["screen"] = {"brightness": self.brightness, "theme": self.theme}
        status["battery"] = {"level": 87, "charging": False}
        status["network"] = {"type": "wifi", "ssid": "sim-wifi", "signal": "strong"}
        status["chip"] = {"temperature": 41.5}
        return status

    def _set_volume(self, args: dict[str, Any]) -> object:
        self.volume = args["volume"]
        return True

    def _set_brightness(self, args: dict[str, Any]) -> object:
        self.brightness = args["brightness"]
        return True

    def _set_theme(self, args: dict[str, Any]) -> object:
        if args["theme"] not in ("light", "dark"):
            raise SimulatorError(f"Invalid theme: {args['theme']}")
        self.theme = args["theme"]
        return True

    def _reboot(self, _: dict[str, Any]) -> object:
        self.reboot_requested = True
        return True

    def _upgrade(self, args: dict[str, Any]) -> object:
        self.upgrade_requests.append(args["url"])
        return True

    async def _send_mcp(self, payload: dict[str, Any]) -> None:
        await self._send_text(
            encode_object(McpMessage(payload, session_id=self.session_id).to_dict())
        )

    async def _reply_error(self, request_id: int | float, message: str) -> None:
        """ReplyError: the firmware's error object has no `code`."""
        await self._send_mcp({"jsonrpc": "2.0", "id": request_id, "error": {"message": message}})

    async def _on_mcp(self, payload: dict[str, Any]) -> None:
        """McpServer::ParseMessage with its quirks (numeric ids only, notifications ignored)."""
        if self.mcp_mute or payload.get("jsonrpc") != "2.0":
            return
        method = payload.get("method")
        if not isinstance(method, str):
            return
        if method.startswith("notifications"):
            return
        request_id = payload.get("id")
        if isinstance(request_id, bool) or not isinstance(request_id, (int, float)):
            return
        params = payload.get("params")
        params = params if isinstance(params, dict) else {}
        if method == "initialize":
            capabilities = params.get("capabilities")
            if isinstance(capabilities, dict) and isinstance(capabilities.get("vision"), dict):
                self.vision = capabilities["vision"]
            result: dict[str, Any] = {
                "protocolVersion": "2024-11-05",
                "capabilities": {"tools": {}},
                "serverInfo": {"name": self.board_name, "version": self.firmware_version},
            }
        elif method == "tools/list":
            result = self._tools_page(params)
        elif method == "tools/call":
            # DoToolCall checks the arguments in the WebSocket task, then runs the tool on
            # the main task (`Schedule`).
            checked = self._check_tool_call(params)
            if isinstance(checked, str):
                await self._reply_error(request_id, checked)
            else:
                await self._main.run(partial(self._run_tool, request_id, *checked))
            return
        else:
            await self._reply_error(request_id, f"Method not implemented: {method}")
            return
        await self._send_mcp({"jsonrpc": "2.0", "id": request_id, "result": result})

    def _tools_page(self, params: dict[str, Any]) -> dict[str, Any]:
        """One `tools/list` page starting at the tool named by `cursor`."""
        cursor = params.get("cursor") if isinstance(params.get("cursor"), str) else ""
        with_user = params.get("withUserTools") is True
        visible = [t for t in self.tools if with_user or not t.user_only]
        start = 0
        if cursor:
            names = [t.name for t in visible]
            start = names.index(cursor) if cursor in names else len(visible)
        page: list[dict[str, Any]] = []
        size = 0
        index = start
        while index < len(visible) and len(page) < self.mcp_page_size:
            entry = visible[index].to_json()
            size += len(json.dumps(entry))
            if page and size > MCP_PAGE_BYTES:
                break
            page.append(entry)
            index += 1
        result: dict[str, Any] = {"tools": page}
        if index < len(visible):
            result["nextCursor"] = visible[index].name
        return result

    def _check_tool_call(self, params: dict[str, Any]) -> tuple[Tool, dict[str, Any]] | str:
        """The tool and its arguments; a string is the error message to reply with."""
        name = params.get("name")
        arguments = params.get("arguments")
        arguments = arguments if isinstance(arguments, dict) else {}
        tool = next((t for t in self.tools if t.name == name), None)
        if tool is None:
            return f"Unknown tool: {name}"
        values: dict[str, Any] = {}
        for prop_name, prop in tool.properties.items():
            value = arguments.get(prop_name, prop.get("default"))
            kind = prop.get("type")
            valid = (
                (kind == "integer" and isinstance(value, int) and not isinstance(value, bool))
                or (kind == "string" and isinstance(value, str))
                or (kind == "boolean" and isinstance(value, bool))
            )
            if not valid:
                return f"Missing valid argument: {prop_name}"
            if kind == "integer" and not prop.get("minimum", -math.inf) <= value <= prop.get(
                "maximum", math.inf
            ):
                return f"Value is out of range: {prop_name}"
            values[prop_name] = value
        return tool, values

    async def _run_tool(self, request_id: int | float, tool: Tool, values: dict[str, Any]) -> None:
        """The scheduled `Call` on the main task; a tool that takes time (a photo upload)
        holds the main task, so the board's state changes wait until it returns."""
        try:
            value = tool.handler(values)
        except SimulatorError as err:
            await self._reply_error(request_id, str(err))
            return
        if asyncio.iscoroutine(value):
            self._main.hold()
            self._spawn(self._finish_tool(request_id, value))
            return
        await self._reply_tool(request_id, value)

    async def _finish_tool(self, request_id: int | float, pending: Any) -> None:
        try:
            try:
                value = await pending
            except SimulatorError as err:
                await self._reply_error(request_id, str(err))
                return
            await self._reply_tool(request_id, value)
        except SimulatorError, ConnectionError:
            _LOGGER.debug("Tool reply %s not sent: the channel closed", request_id)
        finally:
            await self._main.release()

    async def _reply_tool(self, request_id: int | float, value: object) -> None:
        text = value if isinstance(value, str) else json.dumps(value)
        result = {"content": [{"type": "text", "text": text}], "isError": False}
        await self._send_mcp({"jsonrpc": "2.0", "id": request_id, "result": result})
