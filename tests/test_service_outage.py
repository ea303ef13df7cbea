"""A Realtime outage while Home Assistant starts: the entry loads and boards are served.

The firmware alerts with the error sound on every failed boot check (any non-200, a 503 too),
backs off and after 10 failures falls back to MQTT until it is rebooted
(`Application::CheckNewVersion`). So while the service is unreachable the entry loads, boot
checks and WebSockets are accepted, and the Assist pipeline answers until Realtime is back.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from aiohttp.test_utils import TestClient
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
import pytest

from custom_components.openai_realtime_voice.bridge import BridgePath
from custom_components.openai_realtime_voice.const import DOMAIN
from custom_components.openai_realtime_voice.xiaozhi import ListenMode
from simulator.device import DeviceSimulator
from simulator.speech import synthesize
from tests.bridge_helpers import alerts, bridge_of, device_state, satellite_id, wait_tts
from tests.device_helpers import device_client, pair, simulator, until
from tests.pipeline_providers import STT_TEXT, Providers, providers_flow, setup_providers
from tests.realtime_server import RealtimeServer

pytestmark = pytest.mark.usefixtures("fast_retries")


@pytest.fixture
async def providers(
    hass: HomeAssistant, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Providers]:
    """The test STT and TTS entities in the preferred pipeline."""
    with providers_flow():
        yield await setup_providers(hass, tmp_path, monkeypatch)


@pytest.fixture
async def client(
    hass: HomeAssistant,
    hass_client_no_auth: Any,
    realtime_server: RealtimeServer,
    lights: None,
    providers: Providers,
) -> TestClient:
    """A loaded entry with lights and providers, and an HTTP client for devices."""
    return await device_client(hass, hass_client_no_auth, realtime_server)


async def restart_while_down(hass: HomeAssistant, realtime_server: RealtimeServer) -> Any:
    """Unload the entry, make the service answer 503, and set the entry up again."""
    entry = hass.config_entries.async_entries(DOMAIN)[0]
    assert await hass.config_entries.async_unload(entry.entry_id)
    realtime_server.handshake_status = 503
    connections = realtime_server.connections
    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert realtime_server.connections == connections  # refused before any session opened
    return entry


async def test_paired_board_is_served_by_the_pipeline_while_the_service_is_down(
    hass: HomeAssistant,
    client: TestClient,
    realtime_server: RealtimeServer,
    providers: Providers,
) -> None:
    """Unreachable at startup: boot check 200, WebSocket accepted, a spoken request answered
    by the Assist pipeline; once the service answers, the board is back on Realtime."""
    device = simulator(client)
    try:
        await pair(hass, device)
        await device.close_audio_channel()
        entry = await restart_while_down(hass, realtime_server)
        assert entry.state is ConfigEntryState.LOADED

        # The board reboots: boot check, then a push-to-talk turn.
        result = await device.check_version()
        assert result.websocket is not None
        assert result.activation is None
        await device.open_audio_channel()
        state = device_state(hass, device)
        await until(
            lambda: (
                bridge_of(hass, state) is not None
                and bridge_of(hass, state).path is BridgePath.ASSIST_PIPELINE
            )
        )
        start = await push_to_talk(device)
        await wait_tts(device, "stop", start)
        assert providers.stt.requests, "the pipeline's STT heard nothing"
        assert providers.tts.messages, "the pipeline spoke no answer"
        assert hass.states.get("light.kitchen_lights").state == "on"
        assert alerts(device) == []
        await until(lambda: hass.states.get(satellite_id(hass, device.mac)).state == "idle")

        # The service answers again: the board goes back to Realtime (as after any outage).
        realtime_server.handshake_status = None
        await until(lambda: bridge_of(hass, state).path is BridgePath.REALTIME)
    finally:
        await device.close()


async def push_to_talk(device: DeviceSimulator) -> int:
    """Press, say the request, release (`Application::StartListening` / `StopListening`)."""
    start = len(device.messages)
    await device.start_listening(ListenMode.MANUAL)
    await device.send_audio(await synthesize(STT_TEXT, 16000))
    await device.stop_listening()
    return start
