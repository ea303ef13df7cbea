"""The entities of a paired device: connectivity, last seen and speaker volume."""

from __future__ import annotations

from aiohttp.test_utils import TestClient
from homeassistant.const import STATE_OFF, STATE_ON, STATE_UNAVAILABLE, STATE_UNKNOWN
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import entity_registry as er
import pytest

from custom_components.openai_realtime_voice.const import DOMAIN
from tests.device_helpers import connected_device, device_home, live, pair, simulator, wait_until


def entity_ids(entity_registry: er.EntityRegistry, mac: str) -> dict[str, str]:
    """The device's entity ids by their key."""
    return {
        key: str(entity_registry.async_get_entity_id(domain, DOMAIN, f"{mac}_{key}"))
        for domain, key in (
            ("binary_sensor", "connected"),
            ("sensor", "last_seen"),
            ("number", "volume"),
        )
    }


async def test_entities_follow_the_connection(
    hass: HomeAssistant, client: TestClient, entity_registry: er.EntityRegistry
) -> None:
    """Connectivity and volume follow the live connection; last seen is a timestamp.

    Only the authenticated connection sets last seen: the boot check that fetched the token
    proves nothing (anyone can send a MAC and a Client-Id).
    """
    device = simulator(client)
    try:
        await pair(hass, device)
        await hass.async_block_till_done()
        ids = entity_ids(entity_registry, device.mac)
        assert hass.states.get(ids["connected"]).state == STATE_OFF
        assert hass.states.get(ids["volume"]).state == STATE_UNAVAILABLE
        assert hass.states.get(ids["last_seen"]).state == STATE_UNKNOWN
        entry = entity_registry.async_get(ids["last_seen"])
        assert entry is not None
        assert entry.entity_category == "diagnostic"

        await device.open_audio_channel()
        await wait_until(lambda: hass.states.get(ids["volume"]).state == "70", hass)
        assert hass.states.get(ids["connected"]).state == STATE_ON
        assert hass.states.get(ids["last_seen"]).state not in (STATE_UNKNOWN, STATE_UNAVAILABLE)

        await hass.services.async_call(
            "number", "set_value", {"entity_id": ids["volume"], "value": 35}, blocking=True
        )
        assert device.mcp.volume == 35
        assert hass.states.get(ids["volume"]).state == "35"

        device.mcp.mute = True  # the device stops answering MCP
        connection = live(hass, device.mac)
        connection.mcp._timeout = 0.05
        with pytest.raises(HomeAssistantError, match="did not change its volume"):
            await hass.services.async_call(
                "number", "set_value", {"entity_id": ids["volume"], "value": 10}, blocking=True
            )

        await device.close_audio_channel()
        await wait_until(lambda: hass.states.get(ids["connected"]).state == STATE_OFF, hass)
        assert hass.states.get(ids["volume"]).state == STATE_UNAVAILABLE
    finally:
        await device.close()


async def test_volume_error_reply_and_offline(
    hass: HomeAssistant, client: TestClient, entity_registry: er.EntityRegistry
) -> None:
    """A device error reply and an offline device both raise translated errors."""
    device = await connected_device(hass, client)
    try:
        ids = entity_ids(entity_registry, device.mac)
        tools = device.mcp.tools
        device.mcp.tools = [t for t in tools if t.name != "self.audio_speaker.set_volume"]
        with pytest.raises(HomeAssistantError, match="Unknown tool"):
            await hass.services.async_call(
                "number", "set_value", {"entity_id": ids["volume"], "value": 10}, blocking=True
            )
        state = device_home(hass, device.mac).state
        volume_entity = hass.data["entity_components"]["number"].get_entity(ids["volume"])
        state.connection = None
        with pytest.raises(HomeAssistantError, match="not connected"):
            await volume_entity.async_set_native_value(20)
    finally:
        await device.close()
