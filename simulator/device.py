"""A firmware-faithful xiaozhi-esp32 device simulator (OTA, WebSocket, audio, MCP server).

It behaves as stock firmware v2.x does (see the xiaozhi protocol reference): the OTA boot
check and activation loop, the WebSocket headers and hello, listen/abort messages, real Opus
uplink at 16 kHz / 60 ms with DTX, Speaking-state gating and the 40-packet decode queue on
downlink, and the built-in MCP tools with paginated `tools/list`. The tests drive it directly;
`python -m simulator` (see `simulator.cli`) drives it against a running Home Assistant.

`DeviceSimulator` is the firmware's `Application`: the buttons and the wake word, the main
task and what `OnIncomingJson` schedules on it. It owns one collaborator per part of the
board, each reaching the others through it (as the firmware's `Application::GetInstance()`):
`ota` (`ota.py`), `channel` (`channel.py`), `state_machine` (`state_machine.py`), `microphone`
(`microphone.py`), `playback` (`playback.py`) and `mcp` (`mcp.py`). The parts see it as the
narrow `Board` of `board.py`, so none of them imports this module.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from functools import partial
import json
from pathlib import Path
import random
from typing import Any
import uuid

import aiohttp

from custom_components.openai_realtime_voice.xiaozhi import (
    Abort,
    Alert,
    AudioParams,
    CustomMessage,
    DeviceFeatures,
    DeviceHello,
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
    encode_object,
    parse_server_message,
)

from .changes import Changes, Listener
from .channel import HELLO_TIMEOUT, Channel
from .errors import SimulatorError
from .firmware import BOOT_RETRY_DELAY, DeviceState, MainTask
from .mcp import McpServer
from .microphone import UPLINK_FRAME_MS, UPLINK_SAMPLE_RATE, Microphone, encode_pcm16
from .ota import Ota, OtaResult
from .playback import Playback
from .state_machine import StateMachine


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
        self.has_screen = has_screen
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

        self.aborted = False
        self.reboot_requested = False
        self.user_lines: list[str] = []
        self.assistant_lines: list[str] = []
        # The chat label of the default display: every SetChatMessage replaces it.
        self.chat_message: tuple[str, str] = ("system", "")
        self.emotions: list[str] = []
        self.alerts: list[Alert] = []
        self.custom_payloads: list[dict[str, Any]] = []
        self.main_task = MainTask()
        self._jobs: set[asyncio.Task[None]] = set()
        # Its parts notify these where they record (frames in, state changes, finished jobs).
        self.changes = Changes()

        self.ota = Ota(
            self,
            ota_url,
            activation_retry_delay=activation_retry_delay,
            activation_error_delay=activation_error_delay,
            boot_retry_delay=boot_retry_delay,
        )
        self.state_machine = StateMachine(self, default_mode)
        self.channel = Channel(self, hello_timeout)
        self.microphone = Microphone(self)
        self.playback = Playback(self)
        self.mcp = McpServer(self, mcp_page_size)

    # --- helpers -----

    def now(self) -> float:
        """Current time on the injected clock, or the event loop's."""
        return self._clock() if self._clock else asyncio.get_running_loop().time()

    async def http(self) -> aiohttp.ClientSession:
        """The HTTP session, created on first use (without aiohttp's own User-Agent)."""
        if self._session is None:
            self._session = aiohttp.ClientSession(skip_auto_headers=("User-Agent",))
        return self._session

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run `coro` as a job of the device (cancelled by `close`)."""
        task = asyncio.get_running_loop().create_task(coro)
        self._jobs.add(task)
        task.add_done_callback(self._jobs.discard)
        task.add_done_callback(lambda _: self.changes.notify())

    def async_add_listener(self, update: Listener) -> Callable[[], None]:
        """Call `update` after each received frame, state change, finished job and close."""
        return self.changes.async_add_listener(update)

    @property
    def protocol_version(self) -> int:
        """NVS `websocket/version`; 0 or absent keeps the default 1."""
        version = self.nvs_websocket.get("version", 1)
        return version if isinstance(version, int) and version else 1

    @property
    def state(self) -> DeviceState:
        """The device state (`DeviceStateMachine`)."""
        return self.state_machine.state

    @property
    def mic_active(self) -> bool:
        """Whether the firmware streams microphone audio now (voice processing is on).

        `StartListeningAudio` turns it on with `listen start`; Speaking turns it off except
        in realtime mode; Idle turns it off.
        """
        return self.microphone.enabled

    @property
    def main_task_held(self) -> bool:
        """Whether the main task is blocked (connecting, or running a long tool)."""
        return self.main_task.held

    @property
    def channel_open(self) -> bool:
        """Whether the WebSocket is connected and the hello exchange completed."""
        return self.channel.is_open

    @property
    def server_hello(self) -> ServerHello | None:
        """The server hello of the open channel."""
        return self.channel.server_hello

    @property
    def session_id(self) -> str:
        """The session id of the last server hello."""
        return self.channel.session_id

    @property
    def messages(self) -> list[dict[str, Any]]:
        """Every JSON message received, in order."""
        return self.channel.messages

    async def wait_for_message(
        self, predicate: Callable[[dict[str, Any]], bool], start: int = 0
    ) -> dict[str, Any]:
        """Wait for a received JSON message (from index `start` on) matching `predicate`."""
        return await self.channel.wait_for_message(predicate, start)

    async def wait_closed(self) -> None:
        """Wait until the server closes the WebSocket."""
        await self.channel.wait_closed()

    def downlink_outcomes(self) -> dict[str, int]:
        """Count received binary frames by outcome."""
        return self.playback.outcomes()

    # --- OTA and activation (`ota.py`) -----

    async def check_version(self) -> OtaResult:
        """POST the boot-time version check and apply the reply as the firmware does."""
        return await self.ota.check_version()

    async def activate(self, max_attempts: int = 10) -> bool:
        """Ota::Activate in the firmware's retry loop: 202 waits, 200 succeeds."""
        return await self.ota.activate(max_attempts)

    async def boot(self, max_rounds: int = 10) -> OtaResult | None:
        """`CheckNewVersion`: check and activate until done (see `Ota.boot`)."""
        return await self.ota.boot(max_rounds)

    def erase_settings(self) -> None:
        """Erase NVS (or flash the firmware again): the MAC stays, everything else is new.

        `Board::Board()` (`board.cc`) reads `board/uuid` and makes a new random one when it is
        missing, so the device comes back with a new Client-Id and no `websocket` settings.
        """
        self.client_id = str(uuid.uuid4())
        self.nvs_websocket = {}
        self.ota.result = None

    # --- the audio channel -----

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
        if not await self.state_machine.set_state(DeviceState.CONNECTING):
            raise SimulatorError(f"cannot connect while {self.state}")
        self.main_task.hold()
        try:
            try:
                if not self.channel_open:
                    await self.channel.connect()
            except BaseException:
                await self.state_machine.set_state(DeviceState.IDLE)
                raise
            if before_listening is not None:
                await before_listening()
            self.state_machine.listen_mode = mode
            await self.state_machine.set_state(DeviceState.LISTENING)
        finally:
            await self.main_task.release()

    async def close_audio_channel(self) -> None:
        """`CloseAudioChannel` (the button while Listening): drop the socket and go idle."""
        await self.channel.drop()
        self.state_machine.idle()

    async def close(self) -> None:
        """Close the channel and the HTTP session if the simulator created it."""
        await self.close_audio_channel()
        self.main_task.clear()
        jobs = list(self._jobs)
        for job in jobs:
            job.cancel()
        await asyncio.gather(*jobs, return_exceptions=True)
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    def on_audio_channel_closed(self) -> None:
        """`on_audio_channel_closed_`: the board goes Idle."""
        self.state_machine.idle()

    # --- the buttons, the wake word and the microphone -----

    async def send_raw_text(self, text: str) -> None:
        """Misbehave: send any text frame."""
        await self.channel.send_text(text)

    async def send_raw_bytes(self, data: bytes) -> None:
        """Misbehave: send any binary frame."""
        await self.channel.send_bytes(data)

    async def start_listening(self, mode: ListenMode | None = None) -> None:
        """Listen in `mode` now (`SetListeningMode` with the microphone off before).

        What the board does on a push-to-talk press while Idle with its channel open, or when
        `StartListeningAudio` runs: `listen start`, then the microphone streams. A test driver:
        the firmware's own moments (after the hello, after `tts stop`) need no call.
        """
        self.state_machine.listen_mode = mode or self.default_mode
        self.state_machine.popup_on_listening = True
        if self.state is DeviceState.LISTENING:
            self.state_machine.cancel_pending_start()
            await self.state_machine.start_listening_audio()
        elif not await self.state_machine.set_state(DeviceState.LISTENING):
            raise SimulatorError(f"cannot listen while {self.state}")

    async def stop_listening(self) -> None:
        """Push-to-talk release (`HandleStopListeningEvent`): `listen stop` and go idle."""
        await self.channel.send_text(
            encode_object(ListenStop(session_id=self.session_id).to_dict())
        )
        await self.state_machine.set_state(DeviceState.IDLE)

    async def abort(self, reason: str | None = None) -> None:
        """Send `abort`; the device stays Speaking until the server sends `tts stop`."""
        self.aborted = True
        await self.channel.send_text(
            encode_object(Abort(reason, session_id=self.session_id).to_dict())
        )

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
            self.state_machine.popup_on_listening = True
            self.state_machine.listen_mode = self.default_mode
            await self.state_machine.set_state(DeviceState.LISTENING)
        elif self.state is DeviceState.LISTENING:
            if not self.wake_word_in_listening:
                return False
            await self.abort("wake_word_detected")
            self.playback.reset()  # ResetDecoder
            await self.channel.send_text(
                encode_object(ListenStart(self.default_mode, session_id=self.session_id).to_dict())
            )
        elif self.state is DeviceState.IDLE:

            async def wake_word_audio_and_detect() -> None:
                for packet in encode_pcm16(wake_pcm, self.microphone.encoder):
                    await self.microphone.send_packet(packet)
                await self.channel.send_text(
                    encode_object(ListenDetect(word, session_id=self.session_id).to_dict())
                )

            await self._invoke(self.default_mode, wake_word_audio_and_detect)
        else:
            return False
        if speech:
            await self.send_audio(speech, realtime=True)
        return True

    async def send_audio(self, pcm: bytes, *, realtime: bool = False) -> int:
        """Stream 16 kHz mono PCM16 as the microphone would; returns packets sent."""
        return await self.microphone.send_audio(pcm, realtime=realtime)

    async def send_wav(self, path: Path, *, realtime: bool = False) -> int:
        """Stream a 16-bit WAV file (any rate, mono or stereo) through `send_audio`."""
        return await self.microphone.send_wav(path, realtime=realtime)

    # --- receiving -----

    async def on_incoming_json(self, obj: dict[str, Any]) -> bool:
        """`OnIncomingJson` for a message that is not the hello; False if it is ignored.

        What the firmware hands to the main task with `Schedule()` runs through `main_task`:
        `tts`, `stt`, `llm`, `system`, `custom` and MCP `tools/call`.
        """
        try:
            message = parse_server_message(obj)
        except ProtocolError:
            return False
        match message:
            case McpMessage(payload=payload):
                await self.mcp.on_message(payload)
            case Alert():
                self.alerts.append(message)  # Alert() runs in the WebSocket task
            case TtsStart() | TtsStop() | TtsSentenceStart() | Stt() | LlmEmotion():
                await self.main_task.run(partial(self._on_scheduled, message))
            case SystemCommand(command="reboot") | CustomMessage():
                await self.main_task.run(partial(self._on_scheduled, message))
            case _:
                return False
        return True

    async def _on_scheduled(self, message: Any) -> None:
        """The part of OnIncomingJson that runs on the main task."""
        match message:
            case TtsStart():
                self.aborted = False
                await self.state_machine.set_state(DeviceState.SPEAKING)
            case TtsStop():
                if self.state is DeviceState.SPEAKING:
                    self.playback.on_tts_stop()
                    # Manual mode idles; auto and realtime mode listen again, and
                    # HandleStateChangedEvent decides about `listen start`: none in realtime
                    # mode (the audio processor kept running), in auto mode once the playback
                    # queue drained (`pending_listening_start_`).
                    await self.state_machine.set_state(
                        DeviceState.IDLE
                        if self.state_machine.listen_mode is ListenMode.MANUAL
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
