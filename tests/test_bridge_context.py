"""What the bridge's parts are typed against: the router's protocol, its paths and phases."""

from __future__ import annotations

from aiohttp.test_utils import TestClient
from homeassistant.components.assist_satellite.entity import AssistSatelliteState
from homeassistant.core import HomeAssistant
import pytest

from custom_components.openai_realtime_voice.bridge import PipelineEngine
from custom_components.openai_realtime_voice.bridge.context import (
    BridgeContext,
    BridgePath,
    BridgePhase,
    Engine,
    SessionAccess,
    SessionHooks,
)
from tests.bridge_helpers import bridge_of, bridged, device_state, disconnect

pytestmark = pytest.mark.usefixtures("lights")


def members(protocol: type) -> set[str]:
    """The names a protocol declares (its methods, properties and attributes)."""
    own = {name for name in vars(protocol) if not name.startswith("_")}
    return own | set(getattr(protocol, "__annotations__", {}))


def test_each_phase_is_a_satellite_state() -> None:
    """The satellite shows the router's phase as it is: every phase is a satellite state."""
    assert [AssistSatelliteState(phase) for phase in BridgePhase] == [
        AssistSatelliteState.IDLE,
        AssistSatelliteState.LISTENING,
        AssistSatelliteState.PROCESSING,
        AssistSatelliteState.RESPONDING,
    ]


def test_the_paths_are_the_satellite_attribute_values() -> None:
    """The `path` attribute automations read: `realtime` or `assist_pipeline`."""
    assert [str(path) for path in BridgePath] == ["realtime", "assist_pipeline"]


async def test_the_router_offers_what_its_parts_are_typed_against(
    hass: HomeAssistant, client: TestClient
) -> None:
    """A live router has every member of `BridgeContext`, each engine every `Engine` member."""
    device = await bridged(hass, client)
    state = device_state(hass, device)
    bridge = bridge_of(hass, state)
    assert bridge is not None
    assert {"use_pipeline", "use_realtime", "realtime", "home", "entry"} <= members(BridgeContext)
    assert [name for name in members(BridgeContext) if not hasattr(bridge, name)] == []
    for engine in (bridge.realtime, PipelineEngine(bridge)):
        assert [name for name in members(Engine) if not hasattr(engine, name)] == []
    assert [name for name in members(SessionAccess) if not hasattr(bridge.realtime, name)] == []
    assert [name for name in members(SessionHooks) if not hasattr(bridge.actions, name)] == []
    await disconnect(hass, device, state)
