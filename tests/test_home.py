"""The device home: one per paired device in its entry, outliving the device's connections."""

from __future__ import annotations

from aiohttp.test_utils import TestClient
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
import pytest

from custom_components.openai_realtime_voice.bridge import BridgePath
from custom_components.openai_realtime_voice.const import DOMAIN
from custom_components.openai_realtime_voice.endpoint import DATA_HUB
from custom_components.openai_realtime_voice.home import DeviceHome
from custom_components.openai_realtime_voice.models import find_home
from tests.bridge_helpers import bridged, device_state, disconnect
from tests.device_helpers import bridge_at, device_home, wait_until

pytestmark = pytest.mark.usefixtures("lights")


async def test_the_bridge_is_found_in_the_home_while_its_device_is_connected(
    hass: HomeAssistant, client: TestClient
) -> None:
    """Connected: the home names the live bridge; after the device leaves, none."""
    device = await bridged(hass, client)
    home = device_home(hass, device.mac)
    bridge = bridge_at(hass, device.mac)
    assert bridge is not None
    assert bridge.home is home
    assert bridge.device is home.state
    assert bridge.connection.mac == device.mac
    assert find_home(hass, "aa:bb:cc:dd:ee:ff") is None
    assert await disconnect(hass, device, home.state) is bridge
    assert home.bridge is None


async def test_the_home_outlives_its_connections(hass: HomeAssistant, client: TestClient) -> None:
    """Reconnecting finds the same home: one state, one typed-turn budget per device."""
    device = await bridged(hass, client)
    home = device_home(hass, device.mac)
    first = bridge_at(hass, device.mac)
    home.detects.append(hass.loop.time())
    await disconnect(hass, device, home.state)
    assert device_home(hass, device.mac) is home
    assert not home.state.connected
    await device.open_audio_channel()
    await wait_until(
        lambda: (bridge := bridge_at(hass, device.mac)) is not None and bridge is not first,
        home.state,
    )
    assert device_home(hass, device.mac) is home
    assert len(home.detects) == 1
    assert home.state.connected
    await disconnect(hass, device, home.state)


async def test_no_runtime_state_in_hass_data_but_the_views_hub(
    hass: HomeAssistant, client: TestClient
) -> None:
    """A connected device leaves nothing of its own in `hass.data`: only the views' hub.

    Home Assistant registers the HTTP views once per instance; their shared state (pending
    pairings, failed logins, photo tokens) is the integration's one `hass.data` entry.
    """
    device = await bridged(hass, client)
    ours = [key for key in hass.data if DOMAIN in str(key)]
    assert ours == [DATA_HUB]
    assert device.mac in hass.config_entries.async_entries(DOMAIN)[0].runtime_data.devices
    await disconnect(hass, device, device_state(hass, device))


async def test_the_satellite_shows_the_path_of_the_bridge_in_its_home(
    hass: HomeAssistant, client: TestClient
) -> None:
    """The satellite reads the bridge from its home: its path, then none once it left."""
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


async def test_the_satellite_is_the_face_of_its_home_while_it_is_added(
    hass: HomeAssistant, client: TestClient
) -> None:
    """The entity becomes its home's face and is forgotten when it is removed."""
    device = await bridged(hass, client)
    home = device_home(hass, device.mac)
    assert home.face is not None
    assert home.face.entity_id == er.async_get(hass).async_get_entity_id(
        "assist_satellite", DOMAIN, f"{device.mac}_assist_satellite"
    )
    await disconnect(hass, device, home.state)
    entry = hass.config_entries.async_entries(DOMAIN)[0]
    assert await hass.config_entries.async_unload(entry.entry_id)
    assert entry.state is ConfigEntryState.NOT_LOADED
    assert home.face is None


def test_a_removed_face_leaves_its_successor(hass: HomeAssistant) -> None:
    """An entity's remover forgets that entity only, never one shown after it."""
    home = DeviceHome(_subentry("aa:bb:cc:dd:ee:01"))
    first, second = _Face("first"), _Face("second")
    remove_first = home.async_show(first)
    home.async_show(second)
    remove_first()
    assert home.face is second


class _Face:
    """A stand-in satellite: the home only keeps and compares it."""

    def __init__(self, entity_id: str) -> None:
        self.entity_id = entity_id

    async def async_accept_pipeline_from_satellite(self, *args: object, **kwargs: object) -> None:
        raise AssertionError("not run")

    def tts_response_finished(self) -> None:
        raise AssertionError("not run")


def _subentry(mac: str):
    from types import MappingProxyType

    from homeassistant.config_entries import ConfigSubentry

    return ConfigSubentry(
        data=MappingProxyType({}), subentry_type="device", title="Board", unique_id=mac
    )
