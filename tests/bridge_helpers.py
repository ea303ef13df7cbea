"""Shared helpers for the speech bridge tests: a bridged device, its state, what it heard."""

from __future__ import annotations

import base64
from typing import Any

from aiohttp.test_utils import TestClient
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
import numpy as np

from custom_components.openai_realtime_voice.assist_satellite import XiaozhiAssistSatellite
from custom_components.openai_realtime_voice.bridge import BridgePath, SpeechBridge
from custom_components.openai_realtime_voice.const import DOMAIN
from custom_components.openai_realtime_voice.endpoint.hub import DeviceState
from custom_components.openai_realtime_voice.xiaozhi import ListenDetect, encode_object
from realtime_server import RealtimeServer
from simulator.device import DeviceSimulator
from tests.device_helpers import bridge_at, connected_device, device_home, wait_until


async def bridged(hass: HomeAssistant, client: TestClient, **kwargs: Any) -> DeviceSimulator:
    """A paired, connected device whose bridge has a Realtime session."""
    device = await connected_device(hass, client, **kwargs)
    await wait_realtime(hass, device_state(hass, device))
    return device


async def wait_realtime(hass: HomeAssistant, state: DeviceState) -> SpeechBridge:
    """Wait until the device's bridge holds a connected Realtime session; return the bridge."""
    await wait_until(
        lambda: (
            (bridge := bridge_of(hass, state)) is not None
            and bridge.client is not None
            and bridge.client.connected
        ),
        state,
    )
    bridge = bridge_of(hass, state)
    assert bridge is not None
    return bridge


async def disconnect(
    hass: HomeAssistant, device: DeviceSimulator, state: DeviceState
) -> SpeechBridge:
    """Close the device's channel and wait until its bridge has stopped; return the bridge."""
    bridge = bridge_of(hass, state)
    await device.close()
    await wait_until(lambda: bridge_of(hass, state) is None and bridge.connection.closed, state)
    assert not bridge.tasks
    assert bridge.client is None
    return bridge


def device_state(hass: HomeAssistant, device: DeviceSimulator) -> DeviceState:
    """The server-side state of a simulated device."""
    return device_home(hass, device.mac).state


def bridge_of(hass: HomeAssistant, state: DeviceState) -> SpeechBridge | None:
    """The bridge serving the device now (None while it is disconnected)."""
    return bridge_at(hass, state.mac)


def satellite_of(hass: HomeAssistant, state: DeviceState) -> XiaozhiAssistSatellite | None:
    """The device's satellite entity, while it is added."""
    satellite = device_home(hass, state.mac).face
    assert satellite is None or isinstance(satellite, XiaozhiAssistSatellite)
    return satellite


def tts_states(device: DeviceSimulator) -> list[str]:
    """The `tts` messages the device got, as `start` / `sentence_start:<text>` / `stop`."""
    states = []
    for message in device.messages:
        if message["type"] == "tts":
            text = f":{message['text']}" if message["state"] == "sentence_start" else ""
            states.append(f"{message['state']}{text}")
    return states


def appended_audio(server: RealtimeServer) -> bytes:
    """Every PCM byte the bridge appended to the input buffer."""
    return b"".join(
        base64.b64decode(event["audio"]) for event in server.of_type("input_audio_buffer.append")
    )


def correlation(sent: np.ndarray, received: np.ndarray) -> float:
    """Peak normalised cross-correlation of two signals (shift-tolerant)."""
    a = (sent - sent.mean()) / (sent.std() * len(sent))
    b = (received - received.mean()) / received.std()
    return float(np.max(np.correlate(b, a, mode="valid")))


async def wait_tts(device: DeviceSimulator, state: str, start: int = 0) -> None:
    """Wait for a `tts` message of this state."""
    await device.wait_for_message(lambda m: m["type"] == "tts" and m["state"] == state, start=start)


def loud(ms: int, rate: int = 16000) -> bytes:
    """A loud 16 kHz tone the toy server VAD hears as speech."""
    t = np.arange(rate * ms // 1000) / rate
    return (np.sin(2 * np.pi * 300 * t) * 8000).astype("<i2").tobytes()


async def say(device: DeviceSimulator, ms: int = 400) -> None:
    """The user speaks to a listening board: a tone the toy server VAD hears, then 1 s of
    silence that ends the turn (what a stock board sends; it types nothing). A board that
    just played a reply listens again once the playback drained."""
    await wait_until(lambda: device.mic_active, device)
    await device.send_audio(loud(ms) + bytes(32000))


async def send_typed_detect(device: DeviceSimulator, text: str) -> None:
    """A `listen detect` with typed text, as clients that are no stock board send it (the
    firmware only ever sends its wake word there)."""
    await device.send_raw_text(
        encode_object(ListenDetect(text, session_id=device.session_id).to_dict())
    )


def satellite_id(hass: HomeAssistant, mac: str) -> str:
    """The entity id of a device's satellite."""
    entity_id = er.async_get(hass).async_get_entity_id(
        "assist_satellite", DOMAIN, f"{mac}_assist_satellite"
    )
    assert entity_id is not None
    return entity_id


def satellite_state(hass: HomeAssistant, state: DeviceState) -> str:
    """The assist satellite entity's state."""
    entity_state = hass.states.get(satellite_of(hass, state).entity_id)
    assert entity_state is not None
    return entity_state.state


async def refuse_realtime(
    hass: HomeAssistant, realtime_server: RealtimeServer, state: DeviceState
) -> None:
    """The account runs out of quota: the device's bridge switches to the Assist pipeline."""
    realtime_server.on_connect_error = {
        "type": "insufficient_quota",
        "code": "insufficient_quota",
        "message": "You exceeded your current quota.",
    }
    await realtime_server.close_connection(1008, "insufficient_quota")
    await wait_until(
        lambda: (
            bridge_of(hass, state).path is BridgePath.ASSIST_PIPELINE
            and bridge_of(hass, state).pipeline is not None
        ),
        state,
    )


async def on_pipeline_path(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> tuple[DeviceSimulator, DeviceState]:
    """A bridged device whose Realtime service refuses: it is served by the pipeline."""
    device = await bridged(hass, client)
    state = device_state(hass, device)
    await refuse_realtime(hass, realtime_server, state)
    return device, state


def alerts(device: DeviceSimulator) -> list[str]:
    """The messages of the alerts the device showed."""
    return [m["message"] for m in device.messages if m["type"] == "alert"]
