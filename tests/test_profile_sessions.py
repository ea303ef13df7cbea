"""Per-device profiles reaching each device's own Realtime session."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from aiohttp.test_utils import TestClient
from homeassistant.core import HomeAssistant
from homeassistant.helpers import (
    area_registry as ar,
    device_registry as dr,
    entity_registry as er,
)
import pytest

from custom_components.openai_realtime_voice.const import DOMAIN
from custom_components.openai_realtime_voice.profile import CONF_PROFILE
from realtime_server import RealtimeServer, ScriptedCall, ScriptedResponse
from simulator.device import DeviceSimulator
from tests.bridge_helpers import device_state, say, wait_realtime
from tests.device_helpers import (
    bridge_at,
    device_client,
    pair,
    release_devices,
    simulator,
    wait_until,
)

KITCHEN_MAC = "aa:bb:cc:00:10:01"
BEDROOM_MAC = "aa:bb:cc:00:10:02"


@pytest.fixture
async def client(
    hass: HomeAssistant, hass_client_no_auth: Any, realtime_server: RealtimeServer, lights: None
) -> AsyncIterator[TestClient]:
    """A loaded entry with lights and an HTTP client; simulators are closed afterwards."""
    http = await device_client(hass, hass_client_no_auth, realtime_server)
    yield http
    await release_devices(hass, http)


def _subentry_id(hass: HomeAssistant, mac: str) -> str:
    entry = hass.config_entries.async_entries(DOMAIN)[0]
    return next(s.subentry_id for s in entry.subentries.values() if s.unique_id == mac)


async def _set_profile(hass: HomeAssistant, mac: str, profile: dict[str, Any]) -> None:
    entry = hass.config_entries.async_entries(DOMAIN)[0]
    subentry = entry.subentries[_subentry_id(hass, mac)]
    hass.config_entries.async_update_subentry(
        entry, subentry, data={**subentry.data, CONF_PROFILE: profile}
    )
    await hass.async_block_till_done()


async def _connect(
    hass: HomeAssistant, device: DeviceSimulator, server: RealtimeServer
) -> dict[str, Any]:
    """Open the device's channel; return its new Realtime session's effective settings."""
    before = len(server.sessions)
    await device.open_audio_channel()
    await wait_realtime(hass, device_state(hass, device))
    return dict(server.sessions[before].session)


async def _paired(hass: HomeAssistant, client: TestClient, mac: str) -> DeviceSimulator:
    device = simulator(client, mac=mac)
    await pair(hass, device)
    return device


async def test_each_device_gets_its_own_voice_and_turn_detection(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """Two devices with different profiles open sessions with their own settings."""
    kitchen = await _paired(hass, client, KITCHEN_MAC)
    bedroom = await _paired(hass, client, BEDROOM_MAC)
    await _set_profile(
        hass, KITCHEN_MAC, {"voice": "coral", "vad_threshold": 0.75, "vad_silence_duration_ms": 900}
    )
    await _set_profile(
        hass,
        BEDROOM_MAC,
        {"voice": "sage", "turn_detection": "semantic_vad", "vad_eagerness": "low"},
    )
    kitchen_session = await _connect(hass, kitchen, realtime_server)
    bedroom_session = await _connect(hass, bedroom, realtime_server)

    assert kitchen_session["audio"]["output"]["voice"] == "coral"
    kitchen_vad = kitchen_session["audio"]["input"]["turn_detection"]
    assert kitchen_vad["type"] == "server_vad"
    assert kitchen_vad["threshold"] == 0.75
    assert kitchen_vad["silence_duration_ms"] == 900
    assert bedroom_session["audio"]["output"]["voice"] == "sage"
    bedroom_vad = bedroom_session["audio"]["input"]["turn_detection"]
    assert bedroom_vad == {**bedroom_vad, "type": "semantic_vad", "eagerness": "low"}


async def test_profile_change_reaches_the_next_session(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """A profile saved while connected applies when the device next opens a session."""
    device = await _paired(hass, client, KITCHEN_MAC)
    first = await _connect(hass, device, realtime_server)
    assert first["audio"]["output"]["voice"] == "marin"
    await _set_profile(hass, KITCHEN_MAC, {"voice": "ballad"})
    state = device_state(hass, device)
    await device.close()
    await wait_until(lambda: bridge_at(hass, state.mac) is None, state)
    second = await _connect(hass, device, realtime_server)
    assert second["audio"]["output"]["voice"] == "ballad"


async def test_area_scoped_request_uses_the_devices_area(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """ "Turn on the lights" from the kitchen device turns on the kitchen's light only."""
    entry = hass.config_entries.async_entries(DOMAIN)[0]
    areas = ar.async_get(hass)
    kitchen_area = areas.async_create("Kitchen")
    bedroom_area = areas.async_create("Bedroom")
    devices = dr.async_get(hass)
    entities = er.async_get(hass)
    entities.async_update_entity("light.kitchen_lights", area_id=kitchen_area.id)
    entities.async_update_entity("light.bedroom_lights", area_id=bedroom_area.id)

    device = await _paired(hass, client, KITCHEN_MAC)
    ha_device = devices.async_get_device_by_identifier((DOMAIN, KITCHEN_MAC), entry.entry_id)
    assert ha_device is not None
    devices.async_update_device(ha_device.id, area_id=kitchen_area.id)
    await _connect(hass, device, realtime_server)

    realtime_server.script(
        ScriptedResponse(
            calls=[ScriptedCall("intent__HassTurnOn", '{"area": "Kitchen", "domain": ["light"]}')]
        ),
        ScriptedResponse(text="Done."),
    )
    await say(device)
    await wait_until(lambda: realtime_server.responses_done >= 2, realtime_server)
    await hass.async_block_till_done()
    assert hass.states.get("light.kitchen_lights").state == "on"
    assert hass.states.get("light.bedroom_lights").state == "off"
    # The model was told where the device is: the prompt names the device's area.
    instructions = [
        e["session"]["instructions"]
        for e in realtime_server.of_type("session.update")
        if "instructions" in e["session"]
    ]
    assert any("Kitchen" in text for text in instructions)
