"""`RealtimeEngine`: the device's Realtime session, held while the device is connected."""

from __future__ import annotations

from aiohttp.test_utils import TestClient
from homeassistant.core import HomeAssistant
import pytest

from custom_components.openai_realtime_voice.bridge import BridgePath
from custom_components.openai_realtime_voice.realtime import RealtimeError
from realtime_server import RealtimeServer
from tests.bridge_helpers import bridge_of, bridged, device_state, disconnect

pytestmark = pytest.mark.usefixtures("lights")


async def test_the_engine_holds_the_session_until_the_device_leaves(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """Connected: one open session, configured for the device; gone with the device."""
    device = await bridged(hass, client)
    state = device_state(hass, device)
    bridge = bridge_of(hass, state)
    assert bridge is not None
    engine = bridge.realtime
    assert engine.path is BridgePath.REALTIME
    assert bridge.engine is engine
    session, config = engine.require_session()
    assert session is bridge.client
    assert session.connected
    assert engine.config is config
    assert realtime_server.of_type("session.update")
    await disconnect(hass, device, state)
    with pytest.raises(RealtimeError):
        engine.require_session()
