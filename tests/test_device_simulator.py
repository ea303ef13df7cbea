"""The device simulator against a real xiaozhi server on 127.0.0.1 (both sides exercised)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
import itertools
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
import uuid
import wave

import aiohttp
from aiohttp import WSCloseCode
from aiohttp.test_utils import TestServer
import aiohttp.web
import numpy as np
import opuslib_next
import pytest

from custom_components.openai_realtime_voice.xiaozhi import (
    AbortRequested,
    AudioReceived,
    HelloReceived,
    ListenMode,
    ListenStarted,
    ListenStopped,
    McpError,
    McpTimeoutError,
    SessionStateError,
    UnknownMessageTypeError,
    WakeWordDetected,
    encode_object,
)
from simulator.camera import Camera
from simulator.changes import Recorded, wait_until
from simulator.device import DeviceSimulator
from simulator.errors import DeviceCrashedError, HelloTimeoutError, OtaError, SimulatorError
from simulator.firmware import (
    MAX_BOOT_FAILURES,
    DeviceState,
    boot_retry_delays,
    is_valid_transition,
)
from simulator.mcp import Tool
from simulator.playback import MAX_DECODE_PACKETS_IN_QUEUE

from .xiaozhi.reference_server import ServerConnection, XiaozhiTestServer

pytestmark = pytest.mark.usefixtures("socket_enabled")

MAC = "AA:BB:CC:DD:EE:01"


def tone(seconds: float, rate: int, freq: float = 440.0) -> bytes:
    """A sine tone as PCM16 mono."""
    t = np.arange(int(seconds * rate)) / rate
    return (np.sin(2 * np.pi * freq * t) * 8000).astype("<i2").tobytes()


@pytest.fixture
async def server() -> AsyncGenerator[XiaozhiTestServer]:
    """A test server on an ephemeral loopback port."""
    async with XiaozhiTestServer(token="tok") as srv:
        yield srv


@pytest.fixture
async def device(server: XiaozhiTestServer) -> AsyncGenerator[DeviceSimulator]:
    """A simulated device that has completed its OTA check."""
    sim = DeviceSimulator(server.ota_url, mac=MAC, activation_retry_delay=0)
    await sim.boot()
    yield sim
    await sim.close()


async def connect(
    sim: DeviceSimulator, server: XiaozhiTestServer, mode: ListenMode | None = None
) -> ServerConnection:
    """Press the button: the channel opens and the board listens at once (firmware order)."""
    await sim.open_audio_channel(mode)
    conn = await server.connections.get()
    await conn.next_event(HelloReceived)
    assert (await conn.next_event(ListenStarted)).mode is (mode or sim.default_mode)
    return conn


async def test_ota_request_matches_firmware(
    server: XiaozhiTestServer, device: DeviceSimulator
) -> None:
    """Headers and body of the boot check, and the reply applied to NVS."""
    headers, body = server.ota_requests[0]
    assert headers["Device-Id"] == MAC.lower()
    assert uuid.UUID(headers["Client-Id"]).version == 4
    assert headers["User-Agent"] == "bread-compact-wifi/2.4.2"
    assert headers["Accept-Language"] == "zh-CN"
    assert headers["Activation-Version"] == "1"
    assert headers["Content-Type"] == "application/json"
    assert "Serial-Number" not in headers
    assert body["mac_address"] == MAC.lower()
    assert body["application"]["version"] == "2.4.2"
    assert body["board"]["mac"] == MAC.lower()
    assert device.nvs_websocket == {"url": server.ws_url, "token": "tok", "version": 1}
    assert device.ota.server_time_ms == 1767225600000 + 480 * 60_000
    assert device.ota.firmware_upgrade_url is None
    assert not device.ota.uses_mqtt


async def test_activation_loop_retries_on_202(socket_enabled: None) -> None:
    """202 means retry; boot ends when the OTA reply no longer carries `activation`."""
    async with XiaozhiTestServer(activation_code="123456", activate_after=3) as server:
        sim = DeviceSimulator(server.ota_url, activation_retry_delay=0)
        try:
            result = await sim.boot()
        finally:
            await sim.close()
    assert result.activation is None
    assert len(server.activate_requests) == 3
    assert all(body == {} for _, body in server.activate_requests)
    assert len(server.ota_requests) == 2


async def test_activation_with_serial_number_sends_hmac(socket_enabled: None) -> None:
    """Devices with an efuse serial send Activation-Version 2 and an HMAC of the challenge."""
    async with XiaozhiTestServer(activation_code="123456") as server:
        sim = DeviceSimulator(server.ota_url, serial_number="SN1", hmac_key=b"k")
        try:
            await sim.boot()
        finally:
            await sim.close()
    headers, body = server.activate_requests[0]
    assert headers["Activation-Version"] == "2"
    assert headers["Serial-Number"] == "SN1"
    assert body["algorithm"] == "hmac-sha256"
    assert body["challenge"] == "challenge-123"
    assert len(body["hmac"]) == 64


async def test_activate_without_challenge_fails_fast(server: XiaozhiTestServer) -> None:
    """Ota::Activate returns failure at once when there is no challenge."""
    sim = DeviceSimulator(server.ota_url)
    try:
        assert not await sim.activate()
    finally:
        await sim.close()


async def test_ota_errors_and_mqtt(server: XiaozhiTestServer) -> None:
    """A non-200 reply fails; an `mqtt` section selects MQTT over WebSocket."""
    sim = DeviceSimulator(server.ota_url + "missing")
    with pytest.raises(OtaError):
        await sim.check_version()
    await sim.close()
    server.ota_extra = {"mqtt": {"endpoint": "x"}, "firmware": {"version": "9.0.0", "url": "u"}}
    sim = DeviceSimulator(server.ota_url)
    try:
        await sim.check_version()
        assert sim.ota.uses_mqtt
        assert sim.ota.firmware_upgrade_url == "u"
        with pytest.raises(SimulatorError):
            await sim.open_audio_channel()
    finally:
        await sim.close()


@pytest.mark.parametrize(
    ("token", "expected"),
    [("abc", "Bearer abc"), ("Token abc", "Token abc"), ("", None)],
)
def test_authorization_header_rule(token: str, expected: str | None) -> None:
    """Bearer is added only to tokens without a space; an empty token sends no header."""
    sim = DeviceSimulator(ws_url="ws://x", token=token, protocol_version=3, mac=MAC)
    headers = sim.ws_headers()
    assert headers.get("Authorization") == expected
    assert headers["Protocol-Version"] == "3"
    assert headers["Device-Id"] == MAC.lower()


async def test_handshake_rejected_without_token(server: XiaozhiTestServer) -> None:
    """The server refuses a device without the right token."""
    sim = DeviceSimulator(ws_url=server.ws_url)
    try:
        with pytest.raises(aiohttp.WSServerHandshakeError):
            await sim.open_audio_channel()
    finally:
        await sim.close()
    assert server.rejected_handshakes == 1


@pytest.mark.parametrize("version", [1, 2, 3])
async def test_hello_listen_and_uplink_audio(version: int, socket_enabled: None) -> None:
    """Hello, session id echo and real Opus uplink in each binary framing."""
    async with XiaozhiTestServer(version=version) as server:
        sim = DeviceSimulator(server.ota_url)
        try:
            await sim.boot()
            conn = await connect(sim, server)
            hello = conn.session.device_hello
            assert hello is not None
            assert hello.version == version
            assert hello.features.mcp
            assert conn.headers["Protocol-Version"] == str(version)
            assert "Authorization" not in conn.headers
            assert sim.session_id == conn.session.session_id
            sent = await sim.send_audio(tone(0.6, 16000))
            assert sent == 10
            decoder = opuslib_next.Decoder(16000, 1)
            timestamps = []
            for _ in range(sent):
                event = await conn.next_event(AudioReceived)
                assert event.listening
                assert len(decoder.decode(event.packet.payload, 960)) == 960 * 2
                timestamps.append(event.packet.timestamp)
            if version == 2:
                assert timestamps == [i * 60 for i in range(sent)]
            await sim.stop_listening()
            await conn.next_event(ListenStopped)
            assert sim.state is DeviceState.IDLE
        finally:
            await sim.close()
    texts = [f for f in sim.channel.sent_frames if isinstance(f, str)]
    assert all('"session_id":"' + sim.session_id in t for t in texts[1:])
    assert texts[1].startswith('{"session_id":')


async def test_dtx_makes_silence_tiny(server: XiaozhiTestServer, device: DeviceSimulator) -> None:
    """With DTX on, silent frames become tiny packets, as on the real encoder."""
    conn = await connect(device, server)
    await device.send_audio(bytes(16000 * 2))
    sizes = [len((await conn.next_event(AudioReceived)).packet.payload) for _ in range(16)]
    assert sum(size <= 3 for size in sizes) >= 12  # DTX refreshes comfort noise now and then


@pytest.mark.parametrize(
    ("hook", "error"),
    [
        (lambda h: {k: v for k, v in h.items() if k != "transport"}, DeviceCrashedError),
        (lambda h: h | {"transport": "udp"}, HelloTimeoutError),
        (lambda h: None, HelloTimeoutError),
    ],
)
async def test_bad_server_hello(hook: object, error: type[Exception], socket_enabled: None) -> None:
    """Missing transport crashes the firmware; a wrong one or none times out."""
    async with XiaozhiTestServer(hello_hook=hook) as server:  # type: ignore[arg-type]
        sim = DeviceSimulator(ws_url=server.ws_url, hello_timeout=0.2)
        try:
            with pytest.raises(error):
                await sim.open_audio_channel()
        finally:
            await sim.close()
    assert not sim.channel_open


async def test_server_hello_defaults(socket_enabled: None) -> None:
    """Without audio_params the device decodes at 24000 Hz / 60 ms."""
    async with XiaozhiTestServer(
        hello_hook=lambda h: {"type": "hello", "transport": "websocket"}
    ) as server:
        sim = DeviceSimulator(ws_url=server.ws_url)
        try:
            await sim.open_audio_channel()
            assert sim.server_hello is not None
            assert sim.server_hello.sample_rate == 24000
            assert sim.session_id == ""
        finally:
            await sim.close()


async def test_downlink_gating_and_return_to_listening(
    server: XiaozhiTestServer, device: DeviceSimulator
) -> None:
    """Audio before tts start is dropped; tts stop sends listen start again in auto mode."""
    conn = await connect(device, server)
    encoder = opuslib_next.Encoder(24000, 1, opuslib_next.APPLICATION_AUDIO)
    await conn.ws.send_bytes(encoder.encode(bytes(2880), 1440))
    count = await conn.speak(tone(0.3, 24000), text="hello there")
    await conn.next_event(ListenStarted)
    assert device.downlink_outcomes() == {"not_speaking": 1, "played": count}
    assert len(device.playback.played_pcm) == count * 1440 * 2
    assert device.assistant_lines == ["hello there"]
    assert device.state is DeviceState.LISTENING


async def test_manual_mode_goes_idle_after_tts_stop(
    server: XiaozhiTestServer, device: DeviceSimulator
) -> None:
    """In manual mode tts stop ends in Idle without a new listen start."""
    conn = await connect(device, server, ListenMode.MANUAL)
    await conn.speak(tone(0.12, 24000))
    await device.wait_for_message(lambda m: m.get("state") == "stop")
    assert device.state is DeviceState.IDLE
    assert conn.events.empty()


async def test_decode_queue_overflow_drops_packets(socket_enabled: None) -> None:
    """An unpaced burst overflows the 40-packet queue; the excess is dropped silently."""
    async with XiaozhiTestServer() as server:
        sim = DeviceSimulator(ws_url=server.ws_url, clock=lambda: 0.0)
        try:
            conn = await connect(sim, server)
            count = await conn.speak(tone(3.6, 24000))
            await sim.wait_for_message(lambda m: m.get("state") == "stop")
        finally:
            await sim.close()
    assert count == 60
    outcomes = sim.downlink_outcomes()
    assert outcomes == {"played": MAX_DECODE_PACKETS_IN_QUEUE, "queue_full": 20}
    assert [p.arrival for p in sim.playback.downlink] == [0.0] * 60


async def test_abort_keeps_speaking_until_tts_stop(
    server: XiaozhiTestServer, device: DeviceSimulator
) -> None:
    """Abort only sends a message; Speaking ends with the server's tts stop."""
    conn = await connect(device, server, ListenMode.REALTIME)
    await conn.speak(tone(0.12, 24000), stop=False)
    await device.wait_for_message(lambda m: m.get("state") == "start")
    await device.abort()
    assert (await conn.next_event(AbortRequested)).reason is None
    assert device.state is DeviceState.SPEAKING
    assert device.mic_active  # realtime mode keeps the microphone on while speaking
    conn.session.send_tts_stop()
    await conn.flush()
    await device.wait_for_message(lambda m: m.get("state") == "stop")
    assert device.state is DeviceState.LISTENING


async def test_realtime_mode_listens_again_without_listen_start(
    server: XiaozhiTestServer, device: DeviceSimulator
) -> None:
    """Firmware `HandleStateChangedEvent(Listening)` sends `listen start` only when
    `play_popup_on_listening_ || !IsAudioProcessorRunning()`: in realtime mode the audio
    processor kept running while Speaking, so `tts stop` returns to Listening silently."""
    conn = await connect(device, server, ListenMode.REALTIME)
    await conn.speak(tone(0.12, 24000))
    await device.wait_for_message(lambda m: m.get("state") == "stop")
    assert device.state is DeviceState.LISTENING
    assert device.mic_active
    assert await device.send_audio(tone(0.06, 16000)) == 1
    event = await conn.events.get()
    assert isinstance(event, AudioReceived)  # no ListenStarted came before the audio
    sent = [json.loads(f) for f in device.channel.sent_frames if isinstance(f, str)]
    assert [m.get("state") for m in sent if m["type"] == "listen"] == ["start"]


async def test_wake_word_while_speaking_aborts_and_listens_at_once(
    server: XiaozhiTestServer, device: DeviceSimulator
) -> None:
    """Firmware `HandleWakeWordDetectedEvent` in Speaking: `AbortSpeaking(
    kAbortReasonWakeWordDetected)`, `play_popup_on_listening_ = true` and
    `SetListeningMode(...)`: straight to Listening with `listen start`, no `tts stop` needed,
    and the rest of the reply is no longer played."""
    conn = await connect(device, server)
    await conn.speak(tone(0.12, 24000), stop=False)
    await device.wait_for_message(lambda m: m.get("state") == "start")
    await device.detect_wake_word()
    assert (await conn.next_event(AbortRequested)).reason == "wake_word_detected"
    assert (await conn.next_event(ListenStarted)).mode is ListenMode.AUTO
    assert device.state is DeviceState.LISTENING
    assert device.mic_active
    heard = len(device.playback.downlink)
    encoder = opuslib_next.Encoder(24000, 1, opuslib_next.APPLICATION_AUDIO)
    conn.session.send_audio(encoder.encode(bytes(2880), 1440))  # the reply's rest
    await conn.flush()
    await wait_until(lambda: len(device.playback.downlink) > heard, device)
    assert device.playback.downlink[-1].outcome == "not_speaking"


async def test_microphone_streams_right_after_the_hello(
    server: XiaozhiTestServer, device: DeviceSimulator
) -> None:
    """Firmware `ContinueWakeWordInvoke`: right after the server hello the device sends the
    wake-word audio, `listen detect`, `listen start` and streams the microphone with no
    pause, whatever the server does (here it sends nothing at all after its hello)."""
    speech = tone(0.6, 16000)
    loop = asyncio.get_running_loop()
    task = asyncio.create_task(device.detect_wake_word("你好小智", speech=speech))
    conn = await server.connections.get()
    await conn.next_event(HelloReceived)
    hello_at = loop.time()
    assert await conn.next_event(WakeWordDetected) == WakeWordDetected("你好小智")
    await conn.next_event(ListenStarted)
    first = await conn.next_event(AudioReceived)
    assert first.listening
    assert loop.time() - hello_at < 0.2  # the first word is on the wire at once
    await task
    frames = device.channel.sent_frames
    assert sum(isinstance(f, bytes) for f in frames) == 10  # 600 ms, 60 ms frames


async def test_camera_board_take_photo_needs_vision(
    server: XiaozhiTestServer, socket_enabled: None
) -> None:
    """Firmware `mcp_server.cc` offers `self.camera.take_photo {question}` on camera boards;
    `Esp32Camera::Explain` throws "Image explain URL or token is not set" when the MCP
    `initialize` carried no `capabilities.vision`, and otherwise uploads a multipart JPEG
    with Device-Id, Client-Id and the Bearer token and returns the body verbatim."""
    uploads: list[tuple[dict[str, str], bytes]] = []

    async def explain(request: aiohttp.web.Request) -> aiohttp.web.Response:
        uploads.append((dict(request.headers), await request.read()))
        return aiohttp.web.Response(text='{"success": true, "text": "a cat"}')

    app = aiohttp.web.Application()
    app.router.add_post("/vision/explain", explain)
    async with TestServer(app, host="127.0.0.1") as vision:
        sim = DeviceSimulator(server.ota_url, mac=MAC, activation_retry_delay=0)
        Camera().attach(sim)  # a camera board: the tool is registered at boot
        try:
            await sim.boot()
            conn = await connect(sim, server)
            await conn.mcp.initialize()
            tools = await conn.mcp.list_tools()
            photo = next(t for t in tools if t.name == "self.camera.take_photo")
            assert photo.input_schema["required"] == ["question"]
            with pytest.raises(McpError, match="Image explain URL or token is not set"):
                await conn.mcp.call_tool("self.camera.take_photo", {"question": "what?"})
            url = str(vision.make_url("/vision/explain"))
            await conn.mcp.initialize(vision_url=url, vision_token="vt")
            result = await conn.mcp.call_tool("self.camera.take_photo", {"question": "what?"})
        finally:
            await sim.close()
    assert result.text == '{"success": true, "text": "a cat"}'
    headers, body = uploads[0]
    assert headers["Authorization"] == "Bearer vt"
    assert headers["Device-Id"] == MAC.lower()
    assert headers["Transfer-Encoding"] == "chunked"
    assert headers["Content-Type"] == "multipart/form-data; boundary=----ESP32_CAMERA_BOUNDARY"
    assert body.index(b'name="question"') < body.index(b'filename="camera.jpg"')
    assert b"what?" in body


@pytest.mark.parametrize(("version", "cut"), [("2.1.0", True), ("2.2.2", False)])
async def test_tts_stop_before_2_2_2_clears_the_playback_queue(
    version: str, cut: bool, server: XiaozhiTestServer
) -> None:
    """Before v2.2.2 the firmware clears its playback queue at `tts stop`
    (`WaitForPlaybackQueueEmpty` came in v2.2.2): audio still queued is never heard."""
    sim = DeviceSimulator(server.ota_url, mac=MAC, firmware_version=version)
    try:
        await sim.boot()
        conn = await connect(sim, server)
        await conn.speak(tone(0.6, 24000))  # ten packets at once, then tts stop
        await sim.wait_for_message(lambda m: m.get("state") == "stop")
    finally:
        await sim.close()
    assert (sim.playback.cut_at_stop > 0) is cut


async def test_mic_is_off_while_speaking_in_auto_mode(
    server: XiaozhiTestServer, device: DeviceSimulator
) -> None:
    """Auto mode disables voice processing on tts start, so no uplink audio is sent."""
    conn = await connect(device, server)
    await conn.speak(tone(0.06, 24000), stop=False)
    await device.wait_for_message(lambda m: m.get("state") == "start")
    assert await device.send_audio(tone(0.12, 16000)) == 0
    assert device.microphone.frames_dropped == 2


async def test_wake_word_sends_audio_then_detect_then_start(
    server: XiaozhiTestServer, device: DeviceSimulator
) -> None:
    """The firmware order: wake-word Opus, listen detect, listen start."""
    await device.detect_wake_word("你好小智", tone(0.12, 16000))
    conn = await server.connections.get()
    await conn.next_event(HelloReceived)
    first = await conn.events.get()
    second = await conn.events.get()
    assert isinstance(first, AudioReceived)
    assert not first.listening
    assert isinstance(second, AudioReceived)
    assert await conn.events.get() == WakeWordDetected("你好小智")
    assert isinstance(await conn.events.get(), ListenStarted)


async def test_server_messages_are_recorded(
    server: XiaozhiTestServer, device: DeviceSimulator
) -> None:
    """stt, llm, alert, system, custom and junk are handled like OnIncomingJson."""
    conn = await connect(device, server)
    conn.session.send_stt("what time is it")
    conn.session.send_emotion("happy", "😀")
    conn.session.send_alert("Warning", "Battery low", "sad")
    conn.session.send_reboot()
    await conn.flush()
    for raw in ["not json", '{"no":"type"}', '{"type":"iot","commands":[]}', '{"type":"tts"}']:
        await conn.ws.send_str(raw)
    await conn.ws.send_str('{"type":"custom","payload":{"a":1}}')
    await device.wait_for_message(lambda m: m["type"] == "custom")
    assert device.user_lines == ["what time is it"]
    assert device.emotions == ["happy"]
    assert device.alerts[0].message == "Battery low"
    assert device.reboot_requested
    assert device.custom_payloads == [{"a": 1}]
    assert len(device.channel.ignored_text) == 4


async def test_mcp_tools_end_to_end(server: XiaozhiTestServer, device: DeviceSimulator) -> None:
    """initialize, paginated tools/list, tools/call and error replies without a code."""
    conn = await connect(device, server)
    info = await conn.mcp.initialize(vision_url="http://vision", vision_token="t")
    assert info.name == "bread-compact-wifi"
    assert info.protocol_version == "2024-11-05"
    assert device.mcp.vision == {"url": "http://vision", "token": "t"}
    tools = await conn.mcp.list_tools()
    assert [t.name for t in tools] == [
        "self.get_device_status",
        "self.audio_speaker.set_volume",
        "self.screen.set_brightness",
        "self.screen.set_theme",
    ]
    assert tools[1].input_schema["required"] == ["volume"]
    all_tools = await conn.mcp.list_tools(with_user_tools=True)
    assert {t.name for t in all_tools if t.user_only} >= {"self.reboot", "self.get_system_info"}
    result = await conn.mcp.call_tool("self.audio_speaker.set_volume", {"volume": 35})
    assert result.text == "true"
    status = await conn.mcp.call_tool("self.get_device_status")
    assert '"volume": 35' in status.text
    with pytest.raises(McpError) as err:
        await conn.mcp.call_tool("self.audio_speaker.set_volume", {"volume": 300})
    assert err.value.code is None
    with pytest.raises(McpError, match="Missing valid argument: theme"):
        await conn.mcp.call_tool("self.screen.set_theme", {})
    with pytest.raises(McpError, match="Invalid theme"):
        await conn.mcp.call_tool("self.screen.set_theme", {"theme": "blue"})
    with pytest.raises(McpError, match="Unknown tool"):
        await conn.mcp.call_tool("self.nope")
    with pytest.raises(McpError, match="Method not implemented"):
        await conn.mcp.request("resources/list")
    await conn.mcp.call_tool("self.reboot")
    await conn.mcp.call_tool("self.upgrade_firmware", {"url": "http://fw"})
    assert device.reboot_requested
    assert device.mcp.upgrade_requests == ["http://fw"]


async def test_mcp_quirks(server: XiaozhiTestServer, device: DeviceSimulator) -> None:
    """String ids and notifications get no reply; a muted device times out."""
    conn = await connect(device, server)
    for payload in [
        '{"jsonrpc":"2.0","method":"tools/list","id":"a"}',
        '{"jsonrpc":"2.0","method":"notifications/initialized"}',
        '{"jsonrpc":"1.0","method":"tools/list","id":9}',
    ]:
        conn.session.send_mcp(json.loads(payload))
    await conn.flush()
    device.mcp.mute = True
    with pytest.raises(McpTimeoutError):
        await conn.mcp.call_tool("self.get_device_status", reply_timeout=0.05)
    device.mcp.mute = False
    await device.mcp.send_notification("notifications/state_changed", {"volume": 1})
    await conn.mcp.call_tool("self.get_device_status")
    assert [f for f in device.channel.sent_frames if isinstance(f, str) and '"id":"a"' in f] == []
    assert conn.notifications[0].method == "notifications/state_changed"


async def test_hostile_frames_do_not_break_the_session(
    server: XiaozhiTestServer, device: DeviceSimulator
) -> None:
    """Junk text and bad binary frames become typed errors; the connection keeps working."""
    conn = await connect(device, server)
    await device.send_raw_text("{{{")
    await device.send_raw_text('{"type":"teleport"}')
    await device.send_raw_text("[" * 10_000)
    await device.send_raw_bytes(b"\x00" * 9000)
    await device.start_listening()
    await conn.next_event(ListenStarted)
    assert len(conn.errors) == 4
    assert isinstance(conn.errors[1], UnknownMessageTypeError)


async def test_binary_before_hello_is_rejected(server: XiaozhiTestServer) -> None:
    """A client that sends audio first gets a typed session error on the server."""
    sim = DeviceSimulator(ws_url=server.ws_url)
    try:
        session = await sim.http()
        ws = await session.ws_connect(
            server.ws_url, headers=sim.ws_headers() | {"Authorization": "Bearer tok"}
        )
        conn = await server.connections.get()
        await ws.send_bytes(b"\x01\x02")
        await ws.close()
        await conn.closed.wait()
        assert isinstance(conn.errors[0], SessionStateError)
    finally:
        await sim.close()


async def test_send_wav_resamples(
    tmp_path: Path, server: XiaozhiTestServer, device: DeviceSimulator
) -> None:
    """A 24 kHz stereo WAV is mixed down and resampled to 16 kHz before encoding."""
    path = tmp_path / "speech.wav"
    pcm = np.repeat(np.frombuffer(tone(0.24, 24000), dtype="<i2"), 2).tobytes()
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(2)
        wav.setsampwidth(2)
        wav.setframerate(24000)
        wav.writeframes(pcm)
    await connect(device, server)
    assert await device.send_wav(path) == 4
    assert await device.send_audio(tone(0.12, 16000), realtime=True) == 2


async def test_server_close_returns_to_idle(
    server: XiaozhiTestServer, device: DeviceSimulator
) -> None:
    """A server-side close ends the conversation."""
    conn = await connect(device, server)
    await conn.ws.close()
    await device.wait_closed()
    assert device.state is DeviceState.IDLE
    with pytest.raises(SimulatorError):
        await device.wait_for_message(lambda m: False, start=len(device.messages))


# --- The firmware's own order and timing (xiaozhi-esp32 v2.4.2, esp-ml307) -------------------


async def test_websocket_host_header_has_no_port(
    server: XiaozhiTestServer, device: DeviceSimulator
) -> None:
    """esp-ml307 `WebSocket::Connect` writes `Host: <host>` without the port, while its HTTP
    client (the boot check, the photo upload) sends `host:port`. `ws_host_with_port` is a
    simulator option for clients that are no stock board."""
    port = urlsplit(server.ws_url).port
    conn = await connect(device, server)
    assert conn.headers["Host"] == "127.0.0.1"
    assert server.ota_requests[0][0]["Host"] == f"127.0.0.1:{port}"
    await device.close()
    other = DeviceSimulator(server.ota_url, ws_host_with_port=True)
    try:
        await other.boot()
        conn = await connect(other, server)
    finally:
        await other.close()
    assert conn.headers["Host"] == f"127.0.0.1:{port}"


async def test_button_press_listens_right_after_the_hello(
    server: XiaozhiTestServer, device: DeviceSimulator
) -> None:
    """`ContinueOpenAudioChannel`: the server hello, then at once `listen start` and the
    microphone, before and whatever the server does next (here: nothing, not even MCP)."""
    await device.open_audio_channel()
    conn = await server.connections.get()
    await conn.next_event(HelloReceived)
    assert device.state is DeviceState.LISTENING
    assert device.mic_active
    assert await device.send_audio(tone(0.12, 16000)) == 2
    assert isinstance(await conn.events.get(), ListenStarted)
    assert isinstance(await conn.events.get(), AudioReceived)
    texts = [json.loads(f) for f in device.channel.sent_frames if isinstance(f, str)]
    assert [m["type"] for m in texts] == ["hello", "listen"]
    assert not [m for m in device.messages if m["type"] == "mcp"]


async def test_wake_word_while_listening_is_off_by_default(
    server: XiaozhiTestServer, device: DeviceSimulator
) -> None:
    """Wake word detection stops in Listening (`ConfigureWakeWordForListening`, without
    `CONFIG_WAKE_WORD_DETECTION_IN_LISTENING`): nothing is sent."""
    await connect(device, server)
    frames = len(device.channel.sent_frames)
    assert not await device.detect_wake_word()
    assert len(device.channel.sent_frames) == frames


async def test_wake_word_while_listening_aborts_and_listens_without_detect(
    server: XiaozhiTestServer, socket_enabled: None
) -> None:
    """With `CONFIG_WAKE_WORD_DETECTION_IN_LISTENING`, `HandleWakeWordDetectedEvent` in
    Listening sends `abort` (`wake_word_detected`) and `listen start`, never `listen detect`."""
    sim = DeviceSimulator(server.ota_url, wake_word_in_listening=True)
    try:
        await sim.boot()
        conn = await connect(sim, server)
        assert await sim.detect_wake_word()
        assert (await conn.next_event(AbortRequested)).reason == "wake_word_detected"
        assert (await conn.next_event(ListenStarted)).mode is ListenMode.AUTO
    finally:
        await sim.close()
    sent = [json.loads(f) for f in sim.channel.sent_frames if isinstance(f, str)]
    assert [m.get("state") for m in sent if m["type"] == "listen"] == ["start", "start"]


async def test_listen_detect_carries_only_the_wake_word(
    server: XiaozhiTestServer, device: DeviceSimulator
) -> None:
    """`ContinueWakeWordInvoke` sends the detected wake word (`SendWakeWordDetected`); the
    firmware has no way to send other `listen detect` text."""
    with pytest.raises(SimulatorError, match="wake word"):
        await device.detect_wake_word("what time is it")
    assert device.channel.sent_frames == []
    assert await device.detect_wake_word()
    conn = await server.connections.get()
    assert await conn.next_event(WakeWordDetected) == WakeWordDetected(device.wake_word)


async def test_listen_start_after_tts_stop_waits_for_the_playback(
    server: XiaozhiTestServer, device: DeviceSimulator
) -> None:
    """Auto mode: `tts stop` makes the board Listening, but `listen start` (and the
    microphone) waits until the playback queue drained (`pending_listening_start_`, then
    MAIN_EVENT_PLAYBACK_DRAINED -> `StartListeningAudio`)."""
    loop = asyncio.get_running_loop()
    conn = await connect(device, server)
    await conn.speak(tone(0.6, 24000))  # ten packets at once, then tts stop
    await device.wait_for_message(lambda m: m.get("state") == "stop")
    stopped = loop.time()
    played_until = max(p.arrival for p in device.playback.downlink) + 0.6
    assert device.state is DeviceState.LISTENING
    assert device.state_machine.listen_start_pending
    assert not device.mic_active
    assert await device.send_audio(tone(0.06, 16000)) == 0  # the microphone is still off
    await conn.next_event(ListenStarted)
    assert loop.time() >= played_until - 0.07 > stopped
    assert device.mic_active
    assert device.downlink_outcomes() == {"played": 10}
    assert device.playback.cut_at_stop == 0


async def test_tts_start_waits_for_the_main_task_while_connecting(
    server: XiaozhiTestServer, device: DeviceSimulator
) -> None:
    """`DeviceStateMachine::IsValidTransition` refuses Connecting -> Speaking; the firmware
    runs `tts start` on the main task (`Schedule`), which is busy connecting
    (`ContinueOpenAudioChannel`): Speaking comes only after `listen start`, and audio sent
    before that is dropped (`OnIncomingAudio` queues only while Speaking)."""
    assert not is_valid_transition(DeviceState.CONNECTING, DeviceState.SPEAKING)
    assert is_valid_transition(DeviceState.IDLE, DeviceState.SPEAKING)
    encoder = opuslib_next.Encoder(24000, 1, opuslib_next.APPLICATION_AUDIO)
    server.after_hello = [
        encode_object({"type": "tts", "state": "start"}),
        encoder.encode(bytes(2880), 1440),
    ]
    conn = await connect(device, server)
    await device.wait_for_message(lambda m: m.get("state") == "start")
    assert device.state is DeviceState.SPEAKING  # after Listening, not from Connecting
    assert device.downlink_outcomes() == {"not_speaking": 1}
    assert device.state_machine.refused_transitions == []
    assert conn.events.empty()


async def test_tts_start_while_idle_speaks(
    server: XiaozhiTestServer, device: DeviceSimulator
) -> None:
    """Idle -> Speaking is a valid transition: a manual-mode board that went idle after
    `tts stop` plays a reply the server starts on its own."""
    conn = await connect(device, server, ListenMode.MANUAL)
    await device.stop_listening()
    assert device.state is DeviceState.IDLE
    start = len(device.messages)
    count = await conn.speak(tone(0.12, 24000), stop=False)
    await device.wait_for_message(lambda m: m.get("state") == "start", start)
    assert device.state is DeviceState.SPEAKING
    await wait_until(lambda: len(device.playback.downlink) >= count, device)
    assert device.downlink_outcomes() == {"played": count}


async def test_tool_call_blocks_the_main_task(
    server: XiaozhiTestServer, device: DeviceSimulator
) -> None:
    """`McpServer::DoToolCall` runs the tool on the main task (`Schedule`): while a long
    tool runs, `tts start` waits and the reply's audio is dropped; then both go on."""
    release = asyncio.Event()

    async def slow(_: dict[str, Any]) -> object:
        await release.wait()
        return "done"

    device.mcp.tools.append(Tool("self.slow", "Takes a while.", {}, slow))
    conn = await connect(device, server)
    call = asyncio.create_task(conn.mcp.call_tool("self.slow"))
    await wait_until(lambda: device.main_task_held, device)
    count = await conn.speak(tone(0.12, 24000), text="later", stop=False)
    await device.wait_for_message(lambda m: m.get("state") == "sentence_start")
    await wait_until(lambda: len(device.playback.downlink) >= count, device)
    assert device.state is DeviceState.LISTENING
    assert device.assistant_lines == []
    assert device.downlink_outcomes() == {"not_speaking": count}
    release.set()
    assert (await call).text == "done"
    assert device.state is DeviceState.SPEAKING
    assert device.assistant_lines == ["later"]
    assert not device.main_task_held


def test_server_aec_listens_in_realtime_mode() -> None:
    """`GetDefaultListeningMode`: with AEC on (server AEC builds too) realtime, else auto."""
    assert DeviceSimulator(server_aec=True).default_mode is ListenMode.REALTIME
    assert DeviceSimulator(server_aec=True).hello().features.aec
    assert DeviceSimulator().default_mode is ListenMode.AUTO
    with pytest.raises(SimulatorError):
        DeviceSimulator(server_aec=True, default_mode=ListenMode.AUTO)


async def test_close_frames_are_not_answered(
    server: XiaozhiTestServer, device: DeviceSimulator
) -> None:
    """esp-ml307 `OnTcpData` on opcode 0x8 only marks itself disconnected: the board never
    answers a close frame (a server waiting for the answer waits in vain), and its own
    `CloseAudioChannel` drops the TCP connection without one (`~WebSocket`)."""
    closes: Recorded[tuple[float, int | None]] = Recorded()

    async def handler(request: aiohttp.web.Request) -> aiohttp.web.WebSocketResponse:
        ws = aiohttp.web.WebSocketResponse(timeout=0.3)
        await ws.prepare(request)
        await ws.receive()  # the board's hello
        await ws.send_str('{"type":"hello","transport":"websocket"}')
        await ws.receive()  # its listen start
        loop = asyncio.get_running_loop()
        started = loop.time()
        await ws.close()  # waits up to `timeout` for the answer (nothing else reads)
        closes.append((loop.time() - started, ws.close_code))
        return ws

    app = aiohttp.web.Application()
    app.router.add_get("/ws", handler)
    async with TestServer(app, host="127.0.0.1") as quiet:
        sim = DeviceSimulator(ws_url=str(quiet.make_url("/ws")).replace("http", "ws", 1))
        try:
            await sim.open_audio_channel()
            await sim.wait_closed()
            assert sim.state is DeviceState.IDLE
            assert not sim.channel_open
            await wait_until(lambda: bool(closes), closes)
        finally:
            await sim.close()
    waited, code = closes[0]
    assert waited >= 0.29
    assert code == WSCloseCode.ABNORMAL_CLOSURE  # no close frame came back
    # The board's own close (the button while Listening): no close frame either.
    conn = await connect(device, server)
    await device.close_audio_channel()
    await conn.closed.wait()
    assert conn.ws.close_code != WSCloseCode.OK


async def test_failed_boot_check_retries_after_10_20_40_seconds(
    server: XiaozhiTestServer, socket_enabled: None
) -> None:
    """`CheckNewVersion`: a failed check (a 503 too) alerts and is retried after 10 s, then
    20, 40 ... s; after 10 failures in a row the board stops and picks MQTT."""
    assert boot_retry_delays()[:3] == [10.0, 20.0, 40.0]
    assert len(boot_retry_delays()) == MAX_BOOT_FAILURES - 1
    server.ota_failures = 3
    sim = DeviceSimulator(server.ota_url, boot_retry_delay=0.05)
    try:
        result = await sim.boot()
        assert result is not None
        assert sim.ota.boot_failures == ["OTA status 503"] * 3
        gaps = [b - a for a, b in itertools.pairwise(server.ota_times)]
        assert all(gap >= wait - 0.01 for gap, wait in zip(gaps, (0.05, 0.1, 0.2), strict=True))
        assert gaps[2] < 0.2 * 2
        server.ota_failures = MAX_BOOT_FAILURES
        sim.ota.boot_retry_delay = 0.001
        assert await sim.boot() is None
        assert sim.ota.uses_mqtt
        with pytest.raises(SimulatorError, match="MQTT"):
            await sim.open_audio_channel()
    finally:
        await sim.close()
