"""The device's Assist satellite: state follows the bridge, announcements reach the device."""

from __future__ import annotations

from aiohttp.test_utils import TestClient
from homeassistant.const import EVENT_STATE_CHANGED
from homeassistant.core import Event, EventStateChangedData, HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
import pytest

from realtime_server import RealtimeServer, ScriptedResponse, tone
from tests.bridge_helpers import bridged, device_state, disconnect, satellite_id, tts_states
from tests.device_helpers import wait_until

pytestmark = pytest.mark.usefixtures("lights")


async def test_announce_in_the_realtime_voice(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """Without a TTS engine the message is spoken by the Realtime model, out of band."""
    device = await bridged(hass, client)
    state = device_state(hass, device)
    entity_id = satellite_id(hass, device.mac)
    # The board listens from its hello on (firmware order).
    await wait_until(lambda: hass.states.get(entity_id).state == "listening", hass)
    assert hass.states.get(entity_id).attributes["path"] == "realtime"
    realtime_server.script(ScriptedResponse(text="Dinner is ready.", audio=tone(600)))
    await hass.services.async_call(
        "assist_satellite",
        "announce",
        {"message": "Dinner is ready"},
        target={"entity_id": entity_id},
        blocking=True,
    )
    await wait_until(lambda: "stop" in tts_states(device), device)
    create = realtime_server.of_type("response.create")[-1]
    assert create["response"]["conversation"] == "none"
    assert "Dinner is ready" in create["response"]["instructions"]
    assert tts_states(device) == ["start", "sentence_start:Dinner is ready.", "stop"]
    assert device.downlink_outcomes() == {"played": 10}
    # After `tts stop` the device (auto mode) listens again, and so does the satellite.
    await wait_until(lambda: hass.states.get(entity_id).state == "listening", hass)
    await disconnect(hass, device, state)
    await wait_until(lambda: hass.states.get(entity_id).attributes["path"] is None, hass)


async def test_state_follows_the_conversation(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """listening -> processing -> responding -> idle, as the bridge goes."""
    device = await bridged(hass, client)
    state = device_state(hass, device)
    entity_id = satellite_id(hass, device.mac)
    seen: list[str] = []

    @callback
    def changed(event: Event[EventStateChangedData]) -> None:
        if event.data["entity_id"] == entity_id and (new := event.data["new_state"]):
            seen.append(new.state)

    hass.bus.async_listen(EVENT_STATE_CHANGED, changed)
    realtime_server.script(ScriptedResponse(text="Hi.", audio=tone(120)))
    # since its hello
    await wait_until(lambda: hass.states.get(entity_id).state == "listening", hass)
    await device.send_audio(tone_16k(600) + bytes(32000))
    # The server finishes before the bridge has played the reply: wait for the device.
    await wait_until(lambda: "stop" in tts_states(device), device)
    # the device listens again after the reply
    await wait_until(lambda: seen[-1] == "listening", hass)
    assert seen == ["processing", "responding", "idle", "listening"]
    await disconnect(hass, device, state)


async def test_announce_needs_a_connected_device(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """A device without a live connection cannot announce."""
    device = await bridged(hass, client)
    state = device_state(hass, device)
    entity_id = satellite_id(hass, device.mac)
    await disconnect(hass, device, state)
    with pytest.raises(HomeAssistantError):
        await hass.services.async_call(
            "assist_satellite",
            "announce",
            {"message": "Anyone there?"},
            target={"entity_id": entity_id},
            blocking=True,
        )


def tone_16k(ms: int) -> bytes:
    """A loud 16 kHz tone for the device's microphone."""
    return tone(ms * 2 // 3)[: ms * 32]
