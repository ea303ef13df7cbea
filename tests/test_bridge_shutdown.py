"""Home Assistant stops promptly while devices are connected and Realtime is unreachable.

A device's WebSocket handler only ends when its channel closes; aiohttp waits for running
handlers when the HTTP server shuts down (60 s by default, 10 s in Home Assistant), so the
channel must be closed when Home Assistant stops or the entry unloads, and every task of
the bridge (retrying Realtime with sleeps on the Assist pipeline path) must be cancelled.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp.test_utils import TestClient
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
import pytest

from custom_components.openai_realtime_voice.bridge import (
    BridgePath,
    RealtimeEngine,
    SpeechBridge,
)
from custom_components.openai_realtime_voice.const import DOMAIN
from realtime_server import RealtimeServer
from simulator.device import DeviceSimulator
from tests.bridge_helpers import bridge_of, bridged, device_state
from tests.device_helpers import device_client, wait_until


@pytest.fixture
async def client(
    hass: HomeAssistant,
    hass_client_no_auth: Any,
    realtime_server: RealtimeServer,
    lights: None,
    monkeypatch: pytest.MonkeyPatch,
) -> TestClient:
    """A loaded entry whose bridges retry once quickly, then sleep long between attempts."""
    monkeypatch.setattr(RealtimeEngine, "retry_delays", (0.01, 300.0))
    return await device_client(hass, hass_client_no_auth, realtime_server)


async def on_the_pipeline_path(
    hass: HomeAssistant, client: TestClient, server: RealtimeServer
) -> tuple[DeviceSimulator, SpeechBridge]:
    """A device on the Assist pipeline path whose bridge sleeps before trying Realtime again.

    Sessions are refused (quota) until the bridge sleeps 300 s before its next attempt;
    then the server goes away, so that attempt would find nobody listening.
    """
    device = await bridged(hass, client)
    bridge = bridge_of(hass, device_state(hass, device))
    server.on_connect_error = {
        "type": "insufficient_quota",
        "code": "insufficient_quota",
        "message": "You exceeded your current quota.",
    }
    await server.close_connection(1008, "insufficient_quota")
    await wait_until(lambda: bridge.path is BridgePath.ASSIST_PIPELINE, bridge.device)
    # The drop, then one refused attempt 0.01 s later; the next waits 300 s.
    await wait_until(lambda: bridge.device.errors["realtime"] >= 2, bridge.device)
    await server.stop()
    return device, bridge


async def assert_released(device: DeviceSimulator, bridge: SpeechBridge) -> None:
    """The channel is closed on both ends and the bridge owns no task any more."""
    await wait_until(lambda: bridge.connection.closed, bridge.device)
    await asyncio.wait_for(device.wait_closed(), 5)
    assert bridge.connection.close_reason is not None
    assert not bridge.tasks
    assert bridge.home.bridge is None
    assert bridge.pipeline is None
    assert bridge.client is None
    await device.close()


async def test_stop_closes_devices_on_the_pipeline_path(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """Stopping Home Assistant closes the device's channel and stops its bridge at once."""
    device, bridge = await on_the_pipeline_path(hass, client, realtime_server)
    async with asyncio.timeout(10):
        await hass.async_stop()
    await assert_released(device, bridge)
    assert bridge.connection.close_reason == "server stopping"
    # The test HTTP server now shuts down without waiting for a handler.
    async with asyncio.timeout(5):
        await client.close()


async def test_unload_closes_devices_on_the_pipeline_path(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """Unloading the entry while the bridge sleeps between attempts ends everything."""
    device, bridge = await on_the_pipeline_path(hass, client, realtime_server)
    (entry,) = hass.config_entries.async_entries(DOMAIN)
    async with asyncio.timeout(10):
        assert await hass.config_entries.async_unload(entry.entry_id)
    assert entry.state is ConfigEntryState.NOT_LOADED
    await assert_released(device, bridge)
    assert bridge.connection.close_reason == "integration reloading"
    async with asyncio.timeout(5):
        await client.close()
