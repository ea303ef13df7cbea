"""The speech bridge's less travelled paths: failures, races with its own start, odd inputs.

Each case runs a paired simulated device through real Home Assistant against the scripted
Realtime server. Where no real input can produce a fault (a codec that will not load, a send
that fails on a healthy session), one function is replaced to inject it; the test says so.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
from typing import Any

from aiohttp.test_utils import TestClient
from homeassistant.core import HomeAssistant
import pytest

from custom_components.openai_realtime.audio import OpusNotFoundError, load_opuslib
from custom_components.openai_realtime.bridge import (
    BridgePath,
    SpeechBridge,
    core as bridge_core,
)
from custom_components.openai_realtime.const import DOMAIN
from custom_components.openai_realtime.realtime import RealtimeClient
from custom_components.openai_realtime.realtime.client import ClientOptions
from custom_components.openai_realtime.xiaozhi import (
    DeviceEvent,
    ListenDetect,
    ListenMode,
    ListenStopped,
    encode_object,
)
from tests.device_helpers import device_client, live, pair, simulator, until
from tests.device_simulator import DeviceSimulator
from tests.realtime_server import RealtimeServer, ScriptedResponse, tone
from tests.test_bridge import (
    TURN_ON,
    bridge_of,
    bridged,
    device_state,
    disconnect,
    loud,
    wait_tts,
)

OUR_LOGGER = "custom_components.openai_realtime"
QUOTA = {
    "type": "insufficient_quota",
    "code": "insufficient_quota",
    "message": "You exceeded your current quota.",
}


@pytest.fixture(autouse=True)
def _client_options(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bridges retry Realtime every 50 ms, and allow one tool round per user turn."""
    options = ClientOptions(max_tool_rounds=1)
    monkeypatch.setattr(
        bridge_core, "RealtimeClient", functools.partial(RealtimeClient, options=options)
    )
    monkeypatch.setattr(SpeechBridge, "retry_delays", (0.05,))


@pytest.fixture
async def client(
    hass: HomeAssistant,
    hass_client_no_auth: Any,
    realtime_server: RealtimeServer,
    lights: None,
    caplog: pytest.LogCaptureFixture,
) -> TestClient:
    """A loaded entry with lights, and an HTTP client for the simulated devices."""
    caplog.set_level(logging.DEBUG, logger=OUR_LOGGER)
    return await device_client(hass, hass_client_no_auth, realtime_server)


def warnings(caplog: pytest.LogCaptureFixture, text: str) -> list[logging.LogRecord]:
    """Our WARNING records containing `text`."""
    return [
        r
        for r in caplog.records
        if r.name.startswith(OUR_LOGGER) and r.levelno == logging.WARNING and text in r.getMessage()
    ]


def satellite_state(hass: HomeAssistant, device: DeviceSimulator) -> str:
    """The device's assist satellite state."""
    satellite = device_state(hass, device).satellite
    entity = hass.states.get(satellite.entity_id)
    assert entity is not None
    return entity.state


async def listen_detect(device: DeviceSimulator, text: str) -> None:
    """Send `listen detect` as is, whatever the device's state (older firmware does so)."""
    await device.send_raw_text(
        encode_object(ListenDetect(text, session_id=device.session_id).to_dict())
    )


async def held_reply(device: DeviceSimulator, server: RealtimeServer, **kwargs: Any) -> None:
    """Start a long reply the server holds open, and wait until the device plays it."""
    server.script(
        ScriptedResponse(
            text="A long answer.", audio=tone(3000), chunks=10, hold=asyncio.Event(), **kwargs
        )
    )
    await device.detect_wake_word("tell me something")
    await until(lambda: device.downlink_outcomes().get("played", 0) >= 3)


async def typed_turn(device: DeviceSimulator, server: RealtimeServer, text: str = "hi") -> None:
    """One complete typed turn: `listen detect` -> reply -> `tts stop`."""
    server.script(ScriptedResponse(text="Ok.", audio=tone(120)))
    start = len(device.messages)
    await device.detect_wake_word(text)
    await wait_tts(device, "stop", start)


def typed_texts(server: RealtimeServer) -> list[str]:
    """The user texts the bridge added to the conversation."""
    return [
        part["text"]
        for event in server.of_type("conversation.item.create")
        for part in event["item"].get("content") or []
        if part.get("type") == "input_text"
    ]


# --- start-up ---------------------------------------------------------------------------------


async def test_missing_opus_alerts_the_device(
    hass: HomeAssistant,
    client: TestClient,
    realtime_server: RealtimeServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """No libopus: the device shows an alert once it said hello; no session is opened.

    libopus is loaded once per process, so its absence is injected by replacing the loader.
    """

    def no_opus() -> None:
        raise OpusNotFoundError("libopus not found", platform_hint="apt install libopus0")

    monkeypatch.setattr(bridge_core, "load_opuslib", no_opus)
    device = simulator(client)
    await pair(hass, device)  # pairing reloads the entry, which probes the service
    connections = realtime_server.connections
    await device.open_audio_channel()
    state = device_state(hass, device)
    await until(lambda: bool(device.alerts))
    assert device.alerts[0].status == "Error"
    assert "Opus is not available: libopus not found" in device.alerts[0].message
    assert state.errors["opus"] == 1
    assert len(warnings(caplog, "Opus is not available")) == 1
    assert realtime_server.connections == connections
    await device.close()
    await until(lambda: state.bridge is None)


async def test_push_to_talk_pressed_before_the_bridge_is_ready(
    hass: HomeAssistant,
    client: TestClient,
    realtime_server: RealtimeServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A push-to-talk turn while the codec still loads: its audio is dropped, not committed,
    and the session then opens without server turn detection (manual mode).

    A slow codec load is injected by making the loader wait for the test.
    """
    release = threading.Event()

    def slow_opus() -> Any:
        release.wait(10)
        return load_opuslib()

    monkeypatch.setattr(bridge_core, "load_opuslib", slow_opus)
    try:
        device = simulator(client)
        await pair(hass, device)
        await device.open_audio_channel()
        events: list[DeviceEvent] = []
        live(hass, device.mac).async_add_listener(events.append)
        await device.start_listening(ListenMode.MANUAL)
        await device.send_audio(loud(300))
        await device.stop_listening()
        await until(lambda: any(isinstance(e, ListenStopped) for e in events))
    finally:
        release.set()
    state = device_state(hass, device)
    await until(lambda: state.bridge is not None and bridge_of(state).client is not None)
    await until(lambda: bridge_of(state).client.connected)
    assert realtime_server.session.session["audio"]["input"]["turn_detection"] is None
    assert not realtime_server.of_type("input_audio_buffer.append")
    assert not realtime_server.of_type("input_audio_buffer.commit")
    # The next push-to-talk turn goes through as usual.
    realtime_server.script(ScriptedResponse(text="Yes?", audio=tone(120)))
    await device.start_listening(ListenMode.MANUAL)
    await device.send_audio(loud(300))
    await device.stop_listening()
    await wait_tts(device, "stop")
    assert len(realtime_server.of_type("input_audio_buffer.commit")) == 1
    await disconnect(device, state)


async def test_input_while_the_session_opens_is_dropped(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """Speech and a typed turn while the first session is still opening never reach a session."""
    device = simulator(client)
    await pair(hass, device)
    connections = realtime_server.connections
    realtime_server.stall = True
    await device.open_audio_channel()
    state = device_state(hass, device)
    await until(lambda: realtime_server.connections > connections)  # the bridge is connecting
    bridge = bridge_of(state)
    assert bridge.client is None
    assert bridge.path is BridgePath.REALTIME
    await device.start_listening()
    sent = await device.send_audio(loud(600))
    await listen_detect(device, "hello there")
    await until(lambda: live(hass, device.mac).audio_packets_received >= sent)
    await until(bridge._uplink_queue.empty)
    await until(lambda: not [t for t in bridge.tasks if t.get_name().endswith("typed turn")])
    realtime_server.stall = False
    await realtime_server.drop()  # the stalled attempt fails; the next one succeeds
    await until(lambda: bridge.client is not None and bridge.client.connected)
    assert not realtime_server.of_type("input_audio_buffer.append")
    assert typed_texts(realtime_server) == []
    await typed_turn(device, realtime_server, "are you there")
    assert typed_texts(realtime_server) == ["are you there"]
    await disconnect(device, state)


async def test_unknown_llm_api_still_opens_a_session(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """A configured LLM API that no longer exists: counted, and the session runs without it."""
    entry = hass.config_entries.async_entries(DOMAIN)[0]
    hass.config_entries.async_update_entry(
        entry, options={**entry.options, "llm_hass_api": ["no_such_api"]}
    )
    await hass.async_block_till_done()
    device = await bridged(hass, client)
    state = device_state(hass, device)
    assert state.errors["llm_api"] >= 1
    offered = {tool["name"] for tool in realtime_server.session.session["tools"]}
    assert TURN_ON not in offered
    await typed_turn(device, realtime_server)
    await disconnect(device, state)
