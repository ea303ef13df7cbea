"""The Assist pipeline path: it serves while Realtime is unreachable and is left when it is back."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient
from homeassistant.core import HomeAssistant
import pytest

from custom_components.openai_realtime_voice.bridge import BridgePath, RealtimeEngine
from realtime_server import RealtimeServer, ScriptedResponse, tone
from tests.bridge_helpers import (
    bridge_of,
    bridged,
    device_state,
    disconnect,
    satellite_id,
    say,
    wait_tts,
)
from tests.device_helpers import device_client, wait_until


@pytest.fixture
async def client(
    hass: HomeAssistant,
    hass_client_no_auth: Any,
    realtime_server: RealtimeServer,
    lights: None,
    monkeypatch: pytest.MonkeyPatch,
) -> TestClient:
    """A loaded entry whose bridges retry Realtime quickly."""
    monkeypatch.setattr(RealtimeEngine, "retry_delays", (0.05,))
    return await device_client(hass, hass_client_no_auth, realtime_server)


async def test_pipeline_path_while_realtime_is_down_and_back(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """Refused connections switch the device to the pipeline; recovery switches it back."""
    device = await bridged(hass, client)
    state = device_state(hass, device)
    entity_id = satellite_id(hass, device.mac)
    # The account runs out of quota: the client stops for good, no reconnect.
    realtime_server.on_connect_error = {
        "type": "insufficient_quota",
        "code": "insufficient_quota",
        "message": "You exceeded your current quota.",
    }
    await realtime_server.close_connection(1008, "insufficient_quota")
    await wait_until(
        lambda: (
            bridge_of(hass, state) is not None
            and bridge_of(hass, state).path is BridgePath.ASSIST_PIPELINE
        ),
        state,
    )
    await wait_until(
        lambda: hass.states.get(entity_id).attributes["path"] == "assist_pipeline", hass
    )
    assert state.errors["realtime"] >= 1
    # The listening board's turn runs through the satellite's pipeline from the switch on.
    await device.send_audio(tone(300)[:9600])
    await wait_until(
        lambda: (
            bridge_of(hass, state).pipeline is not None
            and bridge_of(hass, state).pipeline.turns == 1
        ),
        state,
    )
    realtime_server.on_connect_error = None
    await wait_until(lambda: bridge_of(hass, state).path is BridgePath.REALTIME, state)
    await wait_until(
        lambda: (
            bridge_of(hass, state).client is not None and bridge_of(hass, state).client.connected
        ),
        state,
    )
    assert hass.states.get(entity_id).attributes["path"] == "realtime"
    assert bridge_of(hass, state).pipeline is None
    # Realtime answers again.
    realtime_server.script(ScriptedResponse(text="I am back.", audio=tone(120)))
    start = len(device.messages)
    await say(device)
    await wait_tts(device, "stop", start)
    await disconnect(hass, device, state)
