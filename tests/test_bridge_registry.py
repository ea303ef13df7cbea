"""The bridge and satellite registries: who serves a device now, which entity stands for it."""

from __future__ import annotations

from aiohttp.test_utils import TestClient
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
import pytest

from custom_components.openai_realtime_voice.bridge import (
    DATA_BRIDGES,
    DATA_SATELLITES,
    BridgePath,
    SatelliteRegistry,
)
from custom_components.openai_realtime_voice.const import DOMAIN
from tests.bridge_helpers import bridged, device_state, disconnect
from tests.device_helpers import wait_until

pytestmark = pytest.mark.usefixtures("lights")


async def test_the_bridge_is_found_while_its_device_is_connected(
    hass: HomeAssistant, client: TestClient
) -> None:
    """Connected: the registry names the live bridge; after the device leaves, none."""
    device = await bridged(hass, client)
    state = device_state(hass, device)
    bridges = hass.data[DATA_BRIDGES]
    bridge = bridges.bridge(device.mac)
    assert bridge is not None
    assert bridge.device is state
    assert bridge.connection.mac == device.mac
    assert bridges.bridge("aa:bb:cc:dd:ee:ff") is None
    assert await disconnect(hass, device, state) is bridge
    assert bridges.bridge(device.mac) is None


async def test_the_satellite_shows_the_path_of_the_registered_bridge(
    hass: HomeAssistant, client: TestClient
) -> None:
    """The satellite reads the bridge from the registry: its path, then none once it left."""
    device = await bridged(hass, client)
    entity_id = er.async_get(hass).async_get_entity_id(
        "assist_satellite", DOMAIN, f"{device.mac}_assist_satellite"
    )
    assert entity_id is not None
    satellite = hass.states.get(entity_id)
    assert satellite is not None
    assert satellite.attributes["path"] == BridgePath.REALTIME
    await disconnect(hass, device, device_state(hass, device))
    await wait_until(lambda: hass.states.get(entity_id).attributes["path"] is None, hass)


async def test_the_satellite_entity_is_registered_while_it_is_added(
    hass: HomeAssistant, client: TestClient
) -> None:
    """The entity registers under its device's MAC and is forgotten when it is removed."""
    device = await bridged(hass, client)
    satellites = hass.data[DATA_SATELLITES]
    satellite = satellites.satellite(device.mac)
    assert satellite is not None
    assert satellite.entity_id == er.async_get(hass).async_get_entity_id(
        "assist_satellite", DOMAIN, f"{device.mac}_assist_satellite"
    )
    await disconnect(hass, device, device_state(hass, device))
    entry = hass.config_entries.async_entries(DOMAIN)[0]
    assert await hass.config_entries.async_unload(entry.entry_id)
    assert entry.state is ConfigEntryState.NOT_LOADED
    assert satellites.satellite(device.mac) is None


def test_a_removed_satellite_leaves_its_successor_registered() -> None:
    """An entity's remover forgets that entity only, never one registered after it."""
    satellites = SatelliteRegistry()
    first, second = object(), object()
    remove_first = satellites.async_register("aa:bb:cc:dd:ee:01", first)
    satellites.async_register("aa:bb:cc:dd:ee:01", second)
    remove_first()
    assert satellites.satellite("aa:bb:cc:dd:ee:01") is second
