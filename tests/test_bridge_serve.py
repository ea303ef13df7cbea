"""`async_serve_device`: a connection attached to its device's home and served by a bridge."""

from __future__ import annotations

from types import MappingProxyType

from aiohttp.test_utils import TestClient
from homeassistant.config_entries import ConfigSubentry
from homeassistant.core import HomeAssistant
import pytest

from custom_components.openai_realtime_voice.bridge import serving
from custom_components.openai_realtime_voice.const import DOMAIN, SUBENTRY_DEVICE
from custom_components.openai_realtime_voice.home import DeviceHome
from simulator.device import DeviceSimulator
from tests.bridge_helpers import bridged
from tests.device_helpers import device_home, wait_until

pytestmark = pytest.mark.usefixtures("lights")


async def test_a_connection_is_served_from_its_home(
    hass: HomeAssistant, client: TestClient
) -> None:
    """The bridge serves the home's live connection; a new one replaces it, leaving detaches."""
    device = await bridged(hass, client)
    entry = hass.config_entries.async_entries(DOMAIN)[0]
    home = device_home(hass, device.mac)
    bridge = serving(home)
    assert bridge is not None
    assert bridge.entry is entry
    assert bridge.home is home
    assert home.state.connection is bridge.connection
    twin = DeviceSimulator(
        device.ota.url,
        ws_url=str(device.nvs_websocket["url"]),
        mac=device.mac,
        token=str(device.nvs_websocket["token"]),
        client_id=device.client_id,
    )
    try:
        await twin.open_audio_channel()
        await device.wait_closed()
        await wait_until(
            lambda: (now := serving(home)) is not None and now is not bridge, home.state
        )
        assert bridge.connection.close_reason == "replaced by a new connection"
        assert not bridge.tasks
        assert home.state.connected
    finally:
        await device.close()
        await twin.close()
    await wait_until(lambda: home.bridge is None and home.state.connection is None, home.state)
    assert home.state.tools == []
    assert home.state.last_seen is not None
    await hass.async_block_till_done()


def test_a_home_without_a_bridge_is_not_served() -> None:
    """Before its first connection (and after its last) a home has no bridge."""
    home = DeviceHome(
        ConfigSubentry(
            data=MappingProxyType({}),
            subentry_type=SUBENTRY_DEVICE,
            title="Board",
            unique_id="aa:bb:cc:dd:ee:01",
        )
    )
    assert serving(home) is None
    assert not home.state.connected
