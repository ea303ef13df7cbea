"""`async_device_action`: a device action's failures as the messages users see."""

from __future__ import annotations

from aiohttp.test_utils import TestClient
from homeassistant.components.assist_satellite.errors import SatelliteBusyError
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
import pytest

from custom_components.openai_realtime_voice.bridge import BridgeBusyError, async_device_action
from custom_components.openai_realtime_voice.realtime import RealtimeError
from tests.bridge_helpers import bridge_of, bridged, device_state, disconnect

pytestmark = pytest.mark.usefixtures("lights")


async def _raise(error: Exception) -> None:
    raise error


async def _value() -> int:
    return 42


async def test_failures_name_the_device(hass: HomeAssistant, client: TestClient) -> None:
    """Busy and Realtime failures become translated errors naming the device; values pass."""
    device = await bridged(hass, client)
    state = device_state(hass, device)
    bridge = bridge_of(hass, state)
    assert bridge is not None
    placeholders = {"device": bridge.subentry.title}
    assert await async_device_action(bridge, _value()) == 42
    with pytest.raises(HomeAssistantError) as err:
        await async_device_action(bridge, _raise(BridgeBusyError("asking")))
    assert type(err.value) is HomeAssistantError
    assert err.value.translation_key == "device_busy"
    assert err.value.translation_placeholders == placeholders
    with pytest.raises(SatelliteBusyError) as busy:
        await async_device_action(
            bridge, _raise(BridgeBusyError("asking")), busy=SatelliteBusyError
        )
    assert busy.value.translation_key == "device_busy"
    with pytest.raises(HomeAssistantError) as err:
        await async_device_action(bridge, _raise(RealtimeError("gone")))
    assert err.value.translation_key == "realtime_unavailable"
    assert err.value.translation_placeholders == placeholders
    with pytest.raises(ValueError, match="other"):
        await async_device_action(bridge, _raise(ValueError("other")))
    await disconnect(hass, device, state)
