"""The device connection's edges: deadlines, a device without MCP, closing races, tool errors."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import WSCloseCode, WSMsgType
from aiohttp.test_utils import TestClient
from homeassistant.core import HomeAssistant
import pytest

from custom_components.openai_realtime_voice.const import DOMAIN, OTA_PATH
from custom_components.openai_realtime_voice.endpoint import connection as device_connection
from custom_components.openai_realtime_voice.endpoint.connection import DeviceConnection
from custom_components.openai_realtime_voice.endpoint.pairing import device_subentries
from custom_components.openai_realtime_voice.models import find_home
from custom_components.openai_realtime_voice.xiaozhi import (
    DeviceEvent,
    ListenStarted,
    ListenStopped,
    McpClosedError,
    McpError,
    encode_object,
)
from custom_components.openai_realtime_voice.xiaozhi.hello import DeviceFeatures, DeviceHello
from simulator.changes import Recorded
from tests.device_helpers import (
    NoMcpDevice,
    bridge_at,
    connected_device,
    device_home,
    live,
    pair,
    simulator,
    wait_until,
)

OPUS_PACKET = b"\xf8\xff\xfe"
"""One (silent) Opus packet, as the other endpoint tests send."""


def raw_hello() -> str:
    """A protocol v1 hello without MCP, as the firmware sends it."""
    return encode_object(DeviceHello(version=1, features=DeviceFeatures(mcp=False)).to_dict())


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ("HELLO_TIMEOUT", ("no hello", WSCloseCode.POLICY_VIOLATION)),
        ("IDLE_TIMEOUT", ("idle", WSCloseCode.OK)),
    ],
)
async def test_deadline_already_passed_closes_at_once(
    hass: HomeAssistant,
    client: TestClient,
    monkeypatch: pytest.MonkeyPatch,
    setting: str,
    expected: tuple[str, WSCloseCode],
) -> None:
    """A deadline that has passed before the next receive closes the channel with its reason."""
    reason, code = expected
    send_hello = setting == "IDLE_TIMEOUT"  # the idle deadline only runs after the hello
    monkeypatch.setattr(device_connection, setting, 0.0)
    device = simulator(client)
    try:
        await pair(hass, device)
        session = await device.http()
        headers = device.ws_headers()
        del headers["Protocol-Version"]  # optional: the session defaults to version 1
        async with session.ws_connect(str(device.nvs_websocket["url"]), headers=headers) as ws:
            if send_hello:
                await ws.send_str(raw_hello())
                msg = await ws.receive()
                assert msg.type is WSMsgType.TEXT
                assert json.loads(msg.data)["type"] == "hello"
            msg = await ws.receive()
            assert msg.type is WSMsgType.CLOSE
            assert msg.data == code
            assert msg.extra == reason
        state = device_home(hass, device.mac).state
        await wait_until(lambda: not state.connected, state)
    finally:
        await device.close()


async def test_downlink_audio_keeps_the_channel_open(
    hass: HomeAssistant, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Audio sent to a silent device moves the idle deadline; when it stops, the channel idles."""
    device = await connected_device(hass, client)
    try:
        connection = live(hass, device.mac)
        idle = 0.5
        monkeypatch.setattr(device_connection, "IDLE_TIMEOUT", idle)
        # The pending receive still waits with the old deadline: one frame starts a new one.
        events: Recorded[DeviceEvent] = Recorded()
        connection.async_add_listener(events.append)
        await device.mcp.send_notification("notifications/state_changed", {"state": "idle"})
        await wait_until(lambda: len(events) == 1, events)
        connection.session.send_tts_start()
        await connection.flush()
        await wait_until(lambda: device.state == "speaking", device)
        loop = asyncio.get_running_loop()
        end = loop.time() + 2 * idle
        sent = 0
        while loop.time() < end:  # the device says nothing: only our audio keeps it alive
            assert await connection.send_audio(OPUS_PACKET)
            sent += 1
            await asyncio.sleep(0.05)  # pace the downlink like a speaking reply
        await wait_until(lambda: len(device.playback.downlink) == sent, device)
        assert not connection.closed
        assert device.channel_open
        await device.wait_closed()
        await wait_until(lambda: connection.closed, connection.state)
        assert connection.close_reason == "idle"
    finally:
        await device.close()


async def test_device_without_mcp_gets_no_discovery(
    hass: HomeAssistant, client: TestClient
) -> None:
    """A hello without the MCP feature starts no tool discovery; the channel still works."""
    device = NoMcpDevice(
        str(client.make_url(OTA_PATH)), activation_retry_delay=0.0, activation_error_delay=0.0
    )
    try:
        await pair(hass, device)
        await device.open_audio_channel()
        connection = live(hass, device.mac)
        events: Recorded[DeviceEvent] = Recorded()
        connection.async_add_listener(events.append)
        # Frames are ordered: had discovery started at the hello, its request would come first.
        await connection.send_json(
            {"type": "alert", "status": "Info", "message": "hi", "emotion": "happy"}
        )
        await wait_until(lambda: len(device.alerts) == 1, device)
        assert [m["type"] for m in device.messages] == ["hello", "alert"]
        assert connection.mcp.pending == 0
        state = device_home(hass, device.mac).state
        assert state.tools == []
        assert state.volume is None
        await device.start_listening()
        await wait_until(lambda: any(isinstance(e, ListenStarted) for e in events), events)
        assert not connection.closed
    finally:
        await device.close()


async def test_sends_while_closing_are_refused_quietly(
    hass: HomeAssistant, client: TestClient
) -> None:
    """Once the socket is closing, MCP calls fail as disconnected and messages are dropped."""
    device = await connected_device(hass, client)
    try:
        connection = live(hass, device.mac)
        state = device_home(hass, device.mac).state
        closing = hass.async_create_task(connection.async_close("maintenance"), eager_start=True)
        # The socket is closed at once; the connection finishes shutting down later.
        assert not connection.closed
        with pytest.raises(McpError, match="device disconnected") as err:
            await connection.async_set_volume(10)
        assert not isinstance(err.value, McpClosedError)
        await connection.send_json(
            {"type": "alert", "status": "Info", "message": "late", "emotion": "sad"}
        )
        await connection.flush()
        await closing
        assert connection.closed
        assert connection.close_reason == "maintenance"
        await device.wait_closed()
        assert "alert" not in [m["type"] for m in device.messages]
        assert device.mcp.volume == 70
        assert state.volume == 70
        # After the shutdown the MCP client itself refuses, and audio is not sent.
        with pytest.raises(McpClosedError):
            await connection.async_set_volume(10)
        assert not await connection.send_audio(OPUS_PACKET)
    finally:
        await device.close()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            [{"type": "text", "text": "Speaker is muted by hardware"}],
            "Speaker is muted by hardware",
        ),
        ([], "set_volume failed"),
    ],
)
async def test_set_volume_error_result(
    hass: HomeAssistant, client: TestClient, content: list[dict[str, Any]], message: str
) -> None:
    """A set_volume result flagged isError raises McpError with its text; the volume stays."""
    device = await connected_device(hass, client)
    try:
        connection = live(hass, device.mac)
        state = device_home(hass, device.mac).state
        device.mcp.mute = True  # the test answers the call itself, as another firmware might
        start = len(device.messages)
        call = hass.async_create_task(connection.async_set_volume(30))
        request = await device.wait_for_message(
            lambda m: m["type"] == "mcp" and m["payload"].get("method") == "tools/call", start
        )
        assert request["payload"]["params"] == {
            "name": device_connection.VOLUME_TOOL,
            "arguments": {"volume": 30},
        }
        reply = {"jsonrpc": "2.0", "id": request["payload"]["id"]}
        reply["result"] = {"content": content, "isError": True}
        await device.send_raw_text(
            json.dumps({"session_id": device.session_id, "type": "mcp", "payload": reply})
        )
        with pytest.raises(McpError, match=message):
            await call
        assert state.volume == 70
        assert device.mcp.volume == 70
        await hass.async_block_till_done()
        [number] = hass.states.async_all("number")
        assert number.state == "70"
        assert not connection.closed
    finally:
        await device.close()


async def test_device_removed_while_connecting_gets_no_bridge(
    hass: HomeAssistant, client: TestClient
) -> None:
    """A device removed between its upgrade and the bridge start is served no bridge and closed.

    The removal is triggered from a state listener at the moment the hub attaches the new
    connection: the real subentry removal, placed in the only window where it matters.
    """
    device = simulator(client)
    try:
        await pair(hass, device)
        entry = hass.config_entries.async_entries(DOMAIN)[0]
        subentry = next(s for s in device_subentries(entry) if s.unique_id == device.mac)
        state = device_home(hass, device.mac).state
        attached: list[DeviceConnection] = []

        def remove_on_attach() -> None:
            if isinstance(state.connection, DeviceConnection) and not attached:
                attached.append(state.connection)
                assert hass.config_entries.async_remove_subentry(entry, subentry.subentry_id)

        state.async_add_listener(remove_on_attach)
        session = await device.http()
        async with session.ws_connect(
            str(device.nvs_websocket["url"]), headers=device.ws_headers()
        ) as ws:
            msg = await ws.receive()
            assert msg.type is WSMsgType.CLOSE
            assert msg.extra == "device removed"
        connection = attached[0]
        await wait_until(lambda: connection.closed, connection.state)
        assert connection.close_reason == "device removed"
        assert bridge_at(hass, state.mac) is None
        assert find_home(hass, device.mac) is None
        await hass.async_block_till_done()
    finally:
        await device.close()


async def test_failing_listener_keeps_the_session(
    hass: HomeAssistant, client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    """An exception from an event listener is logged once per event; the session goes on."""
    device = await connected_device(hass, client)
    try:
        connection = live(hass, device.mac)
        heard: Recorded[DeviceEvent] = Recorded()

        def broken(event: DeviceEvent) -> None:
            match event:
                case ListenStarted():
                    raise ValueError("listener bug")

        connection.async_add_listener(broken)
        connection.async_add_listener(heard.append)
        await device.start_listening()
        await wait_until(lambda: any(isinstance(event, ListenStarted) for event in heard), heard)
        assert "Error handling ListenStarted from device" in caplog.text
        assert "listener bug" in caplog.text
        # The next listener still got the event, and the channel still carries messages.
        await device.stop_listening()
        await wait_until(lambda: any(isinstance(event, ListenStopped) for event in heard), heard)
        assert not connection.closed
    finally:
        await device.close()
