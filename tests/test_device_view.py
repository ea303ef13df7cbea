"""The device WebSocket: authentication before the upgrade, the session, hostile input."""

from __future__ import annotations

import asyncio
from ipaddress import ip_address
import json
from typing import Any

from aiohttp import WSCloseCode, WSMsgType
from aiohttp.test_utils import TestClient
from homeassistant.components.http.ban import KEY_FAILED_LOGIN_ATTEMPTS
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
import pytest

from custom_components.openai_realtime_voice.const import DEVICE_WS_PATH, OTA_PATH
from custom_components.openai_realtime_voice.endpoint import connection as device_connection
from custom_components.openai_realtime_voice.endpoint.pairing import bearer_token
from custom_components.openai_realtime_voice.xiaozhi import (
    AbortRequested,
    DeviceEvent,
    ListenMode,
    ListenStarted,
    encode_audio_frame,
)
from realtime_server import RealtimeServer
from simulator.device import DeviceSimulator
from simulator.errors import SimulatorError
from tests.device_helpers import (
    connected_device,
    device_client,
    device_home,
    finished,
    live,
    pair,
    simulator,
    wait_until,
)

LOOPBACK = ip_address("127.0.0.1")


def failed_logins(client: TestClient) -> int:
    """Failed logins HA's ban middleware counted for the test client."""
    return client.app[KEY_FAILED_LOGIN_ATTEMPTS][LOOPBACK]


async def test_pair_connect_and_hello(hass: HomeAssistant, client: TestClient) -> None:
    """OTA, pairing, token, WebSocket and the server hello with every required field."""
    device = simulator(client)
    try:
        await pair(hass, device)
        assert device.nvs_websocket["url"] == str(client.make_url(DEVICE_WS_PATH)).replace(
            "http://", "ws://"
        )
        async with asyncio.timeout(10):
            await device.open_audio_channel()
        hello = device.messages[0]
        assert hello["transport"] == "websocket"
        assert hello["session_id"]
        assert hello["audio_params"] == {
            "format": "opus",
            "sample_rate": 24000,
            "channels": 1,
            "frame_duration": 60,
        }
        state = device_home(hass, device.mac).state
        assert state.connected
        # MCP: initialize, every tools/list page (two tools per page here), then the volume.
        await wait_until(lambda: state.volume == 70, state)
        names = {tool.name for tool in state.tools}
        assert names == {
            "self.get_device_status",
            "self.audio_speaker.set_volume",
            "self.screen.set_brightness",
            "self.screen.set_theme",
        }
        result = await live(hass, device.mac).mcp.call_tool(
            "self.screen.set_theme", {"theme": "dark"}
        )
        assert result.text == "true"
        assert device.mcp.theme == "dark"
    finally:
        await device.close()
    await wait_until(lambda: not state.connected, state)


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "no Device-Id"),
        ({"Device-Id": "aa:bb:cc:dd:ee:ff"}, "no token"),
        ({"Device-Id": "aa:bb:cc:dd:ee:ff", "Authorization": "Bearer nope"}, "unknown device"),
        ({"Device-Id": "not-a-mac", "Authorization": "Bearer nope"}, "bad Device-Id"),
    ],
)
async def test_refused_without_valid_credentials(
    hass: HomeAssistant,
    client: TestClient,
    headers: dict[str, str],
    reason: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Requests without a valid device and token get 401 before any upgrade; none of these
    could be a guess (no token, not a token's shape, no paired MAC), so none counts."""
    response = await client.get(DEVICE_WS_PATH, headers=headers)
    assert response.status == 401, reason
    assert failed_logins(client) == 0
    assert "nope" not in caplog.text


async def test_wrong_or_foreign_token_refused(
    hass: HomeAssistant, client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    """A paired device with a wrong token, or another device's token, is refused; what could
    be a guess (a token's shape, a paired MAC) counts, once per address and window."""
    first = simulator(client)
    second = simulator(client)
    try:
        await pair(hass, first)
        await pair(hass, second)
        token = str(first.nvs_websocket["token"])
        second_token = str(second.nvs_websocket["token"])
        second.nvs_websocket["token"] = token  # first device's token, second device's id
        with pytest.raises(Exception, match="401"):
            await second.open_audio_channel()
        second.nvs_websocket["token"] = second_token + "x"
        with pytest.raises(Exception, match="401"):
            await second.open_audio_channel()
        second.nvs_websocket["token"] = ""
        with pytest.raises(Exception, match="401"):
            await second.open_audio_channel()
        assert failed_logins(client) == 1
        assert token not in caplog.text
        assert second_token not in caplog.text
        second.nvs_websocket["token"] = second_token
        await second.open_audio_channel()
        assert second.channel_open
        assert failed_logins(client) == 0  # a success resets the counter
    finally:
        await first.close()
        await second.close()


async def test_bad_protocol_version_header(hass: HomeAssistant, client: TestClient) -> None:
    """An authenticated device with an unknown Protocol-Version is refused."""
    device = simulator(client)
    try:
        await pair(hass, device)
        headers = device.ws_headers() | {"Protocol-Version": "9"}
        response = await client.get(DEVICE_WS_PATH, headers=headers)
        assert response.status == 400
    finally:
        await device.close()


@pytest.mark.parametrize("version", [2, 3])
async def test_binary_framing_round_trip(
    hass: HomeAssistant, client: TestClient, version: int
) -> None:
    """Uplink audio is unwrapped and downlink audio is wrapped in the device's framing."""
    device = await connected_device(hass, client, protocol_version=version)
    try:
        connection = live(hass, device.mac)
        assert connection.session.protocol_version == version
        events: list[DeviceEvent] = []
        connection.async_add_listener(events.append)
        await device.start_listening()
        sent = await device.send_audio(b"\0\1" * 16000)  # one second
        await wait_until(lambda: connection.audio_packets_received == sent, connection)
        assert isinstance(events[0], ListenStarted)
        assert events[0].mode is ListenMode.AUTO

        assert not await connection.send_audio(b"\xf8\xff\xfe")  # not Speaking yet
        connection.session.send_tts_start()
        await connection.flush()
        await wait_until(lambda: device.state == "speaking", device)
        packet = device.channel.sent_frames[-1]
        assert isinstance(packet, bytes)
        assert await connection.send_audio(b"\xf8\xff\xfe")
        await wait_until(lambda: len(device.playback.downlink) == 1, device)
        assert device.downlink_outcomes() == {"played": 1}

        await device.abort()
        await wait_until(lambda: device.state != "speaking", device)
        assert any(isinstance(e, AbortRequested) for e in events)
        assert device.messages[-1]["state"] == "stop"
    finally:
        await device.close()


async def test_hostile_input_keeps_the_session(
    hass: HomeAssistant, client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    """Malformed frames after the hello are logged and ignored; the session goes on."""
    device = await connected_device(hass, client, protocol_version=2)
    try:
        connection = live(hass, device.mac)
        ws = device.channel.ws
        assert ws is not None
        hostile_text = [
            "not json",
            "[1, 2, 3]",
            json.dumps({"type": "teleport", "session_id": device.session_id}),
            json.dumps({"type": "listen", "state": "sideways"}),
            json.dumps({"type": "hello", "version": 2, "transport": "websocket"}),
            "[" * 5000 + "]" * 5000,
            json.dumps({"type": "listen", "pad": "x" * 200_000}),
            json.dumps({"type": "mcp", "payload": {"jsonrpc": "1.0"}}),
        ]
        for text in hostile_text:
            await device.send_raw_text(text)
        await ws.send_frame(b'{"type":"abort","x":"\xff\xfe"}', WSMsgType.TEXT)
        await device.send_raw_bytes(b"\0\2\0")  # truncated v2 header
        await device.send_raw_bytes(encode_audio_frame(2, b"x") + b"extra")  # size mismatch
        await device.send_raw_bytes(b"\0" * 10_000)  # larger than any Opus packet
        # A round trip proves the socket still works and every frame above was handled.
        result = await connection.mcp.call_tool("self.get_device_status")
        assert '"volume": 70' in result.text
        assert connection.ignored_frames == len(hostile_text) + 4
        assert not connection.closed
        assert "Traceback" not in caplog.text
        await device.start_listening(ListenMode.MANUAL)
        await wait_until(lambda: connection.session.listen_mode is ListenMode.MANUAL, connection)
    finally:
        await device.close()


async def test_frame_above_the_message_limit_closes(
    hass: HomeAssistant, client: TestClient
) -> None:
    """A frame larger than the WebSocket's maximum message size ends the connection."""
    device = await connected_device(hass, client)
    try:
        connection = live(hass, device.mac)
        await device.send_raw_bytes(b"\0" * 300_000)
        await device.wait_closed()
        await wait_until(lambda: connection.closed, connection.state)
    finally:
        await device.close()


async def test_binary_before_hello_closes_with_reason(
    hass: HomeAssistant, client: TestClient
) -> None:
    """Audio before the hello is a protocol violation: closed with a reason."""
    device = simulator(client)
    try:
        await pair(hass, device)
        session = await device.http()
        async with session.ws_connect(
            str(device.nvs_websocket["url"]), headers=device.ws_headers()
        ) as ws:
            await ws.send_bytes(b"\1\2\3")
            msg = await ws.receive()
            assert msg.type is WSMsgType.CLOSE
            assert msg.data == WSCloseCode.POLICY_VIOLATION
            assert "before hello" in msg.extra
        async with session.ws_connect(
            str(device.nvs_websocket["url"]), headers=device.ws_headers()
        ) as ws:
            await ws.send_str("garbage")
            msg = await ws.receive()
            assert msg.type is WSMsgType.CLOSE
            assert "protocol error" in msg.extra
        state = device_home(hass, device.mac).state
        await wait_until(lambda: not state.connected, state)
    finally:
        await device.close()


async def test_hello_and_idle_timeouts(
    hass: HomeAssistant, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A silent socket is closed; so is an idle channel after the hello."""
    monkeypatch.setattr(device_connection, "HELLO_TIMEOUT", 0.05)
    device = simulator(client)
    try:
        await pair(hass, device)
        session = await device.http()
        async with session.ws_connect(
            str(device.nvs_websocket["url"]), headers=device.ws_headers()
        ) as ws:
            msg = await ws.receive()
            assert msg.type is WSMsgType.CLOSE
            assert msg.extra == "no hello"
        monkeypatch.setattr(device_connection, "IDLE_TIMEOUT", 0.2)
        await device.open_audio_channel()
        await device.wait_closed()
        state = device_home(hass, device.mac).state
        await wait_until(lambda: not state.connected, state)
    finally:
        await device.close()


async def test_new_connection_replaces_the_old(hass: HomeAssistant, client: TestClient) -> None:
    """One live connection per device: a second one closes the first."""
    device = await connected_device(hass, client)
    twin = DeviceSimulator(
        device.ota.url,
        ws_url=str(device.nvs_websocket["url"]),
        mac=device.mac,
        token=str(device.nvs_websocket["token"]),
        client_id=device.client_id,
    )
    try:
        first = live(hass, device.mac)
        await twin.open_audio_channel()
        await device.wait_closed()
        assert first.closed
        assert first.close_reason == "replaced by a new connection"
        assert live(hass, device.mac) is not first
        with pytest.raises(SimulatorError):
            await device.wait_for_message(lambda m: False)
    finally:
        await device.close()
        await twin.close()


async def test_connect_cycles_leave_nothing_behind(hass: HomeAssistant, client: TestClient) -> None:
    """100 connect/disconnect cycles leave no task or listener behind."""
    device = await connected_device(hass, client)
    state = device_home(hass, device.mac).state
    await device.close_audio_channel()
    await wait_until(lambda: not state.connected, state)
    await hass.async_block_till_done()
    tasks_before = len(asyncio.all_tasks())
    listeners_before = len(state._listeners)
    try:
        for _ in range(100):
            await device.open_audio_channel()
            await device.close_audio_channel()
            await wait_until(lambda: not state.connected, state)
        await hass.async_block_till_done()
        assert len(asyncio.all_tasks()) <= tasks_before
        assert len(state._listeners) == listeners_before
    finally:
        await device.close()


def test_bearer_token() -> None:
    """Only the Bearer scheme with a non-empty token is accepted."""
    assert bearer_token("Bearer abc") == "abc"
    assert bearer_token("bearer  abc ") == "abc"
    assert bearer_token("Token abc") is None
    assert bearer_token("Bearer ") is None
    assert bearer_token(None) is None


async def test_send_json_and_silent_mcp_server(
    hass: HomeAssistant, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Raw messages reach the device; a device whose MCP server is silent stays connected."""
    monkeypatch.setattr(device_connection, "MCP_TIMEOUT", 0.05)
    device = simulator(client, has_screen=False)
    device.mcp.mute = True
    try:
        await pair(hass, device)
        await device.open_audio_channel()
        connection = live(hass, device.mac)
        await connection.send_json(
            {"type": "alert", "status": "Warning", "message": "Battery low", "emotion": "sad"}
        )
        await wait_until(lambda: len(device.alerts) == 1, device)
        state = device_home(hass, device.mac).state
        await finished(connection._tasks, "MCP discovery gave up")
        assert connection.mcp.pending == 0
        assert state.tools == []
        assert state.volume is None
        await connection.async_refresh_status()  # no status tool: nothing to read
        assert not connection.closed
    finally:
        await device.close()


def test_parse_volume() -> None:
    """Only a sane integer volume is taken from the status text."""
    assert device_connection.parse_volume('{"audio_speaker": {"volume": 42}}') == 42
    assert device_connection.parse_volume('{"audio_speaker": {"volume": 420}}') is None
    assert device_connection.parse_volume('{"audio_speaker": {"volume": true}}') is None
    assert device_connection.parse_volume("[]") is None
    assert device_connection.parse_volume("not json") is None


class ProxiedDevice(DeviceSimulator):
    """A board behind a TLS reverse proxy at ha.example.com, which forwards its handshake.

    The board's own `Host` has no port (esp-ml307 `WebSocket::Connect`); the proxy adds the
    `X-Forwarded-*` headers.
    """

    def ws_headers(self) -> dict[str, str]:
        """The board's handshake headers as the proxy forwards them."""
        return {
            **super().ws_headers(),
            "Host": "ha.example.com",
            "X-Forwarded-For": "192.168.1.50",
            "X-Forwarded-Proto": "https",
        }


async def test_vision_url_behind_a_trusted_proxy(
    hass: HomeAssistant, hass_client_no_auth: Any, realtime_server: RealtimeServer
) -> None:
    """Forwarded by a trusted proxy: photos go to the proxy's scheme and host, not our port."""
    assert await async_setup_component(
        hass,
        "http",
        {"http": {"use_x_forwarded_for": True, "trusted_proxies": ["127.0.0.1"]}},
    )
    client = await device_client(hass, hass_client_no_auth, realtime_server)
    device = ProxiedDevice(str(client.make_url(OTA_PATH)), activation_retry_delay=0.0)
    try:
        await pair(hass, device)
        await device.open_audio_channel()
        await wait_until(lambda: device.mcp.vision is not None, device)
        assert device.mcp.vision is not None
        assert device.mcp.vision["url"] == "https://ha.example.com/api/openai_realtime_voice/vision"
    finally:
        await device.close()
