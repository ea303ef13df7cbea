"""A Realtime outage while Home Assistant starts: the entry loads and boards are served.

The firmware alerts with the error sound on every failed boot check (any non-200, a 503 too),
backs off and after 10 failures falls back to MQTT until it is rebooted
(`Application::CheckNewVersion`). So while the service is unreachable the entry loads, boot
checks and WebSockets are accepted, and the Assist pipeline answers until Realtime is back.
"""

from __future__ import annotations

from datetime import timedelta
import logging
from typing import Any

from aiohttp.test_utils import TestClient
from freezegun.api import FrozenDateTimeFactory
from homeassistant.config_entries import SOURCE_REAUTH, ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
import pytest
from pytest_homeassistant_custom_component.common import async_fire_time_changed

from custom_components.openai_realtime_voice.availability import (
    RECHECK_INTERVAL,
    UNREACHABLE_AFTER,
)
from custom_components.openai_realtime_voice.bridge import BridgePath
from custom_components.openai_realtime_voice.const import DOMAIN
from custom_components.openai_realtime_voice.repairs import quota_issue_id, unreachable_issue_id
from custom_components.openai_realtime_voice.xiaozhi import ListenMode
from realtime_server import RealtimeServer
from simulator.device import DeviceSimulator
from simulator.speech import synthesize
from tests.bridge_helpers import alerts, bridge_of, device_state, satellite_id, wait_tts
from tests.device_helpers import device_client, pair, simulator, wait_until
from tests.pipeline_providers import STT_TEXT, Providers

pytestmark = pytest.mark.usefixtures("fast_retries")


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
        await wait_until(
            lambda: (
                bridge_of(hass, state) is not None
                and bridge_of(hass, state).path is BridgePath.ASSIST_PIPELINE
            ),
            state,
        )
        start = await push_to_talk(device)
        await wait_tts(device, "stop", start)
        assert providers.stt.requests, "the pipeline's STT heard nothing"
        assert providers.tts.messages, "the pipeline spoke no answer"
        assert hass.states.get("light.kitchen_lights").state == "on"
        assert alerts(device) == []
        await wait_until(
            lambda: hass.states.get(satellite_id(hass, device.mac)).state == "idle", hass
        )

        # The service answers again: the board goes back to Realtime (as after any outage).
        realtime_server.handshake_status = None
        await wait_until(lambda: bridge_of(hass, state).path is BridgePath.REALTIME, state)
    finally:
        await device.close()


async def tick(hass: HomeAssistant, freezer: FrozenDateTimeFactory, delta: timedelta) -> None:
    """Move the clock on and wait for what the due timers started (the probes)."""
    freezer.tick(delta)
    async_fire_time_changed(hass)
    await hass.async_block_till_done(wait_background_tasks=True)


async def push_to_talk(device: DeviceSimulator) -> int:
    """Press, say the request, release (`Application::StartListening` / `StopListening`)."""
    start = len(device.messages)
    await device.start_listening(ListenMode.MANUAL)
    await device.send_audio(await synthesize(STT_TEXT, 16000))
    await device.stop_listening()
    return start


async def test_unreachable_issue_after_a_few_minutes_until_the_service_answers(
    hass: HomeAssistant,
    client: TestClient,
    realtime_server: RealtimeServer,
    *,
    issue_registry: ir.IssueRegistry,
    caplog: pytest.LogCaptureFixture,
    freezer: FrozenDateTimeFactory,
) -> None:
    """No issue for a short outage; one after `UNREACHABLE_AFTER`; gone when it answers."""
    entry = await restart_while_down(hass, realtime_server)
    assert entry.state is ConfigEntryState.LOADED
    assert not entry.runtime_data.service.available
    issue_id = unreachable_issue_id(entry)
    assert issue_registry.async_get_issue(DOMAIN, issue_id) is None

    probes = realtime_server.connections
    await tick(hass, freezer, RECHECK_INTERVAL)
    assert issue_registry.async_get_issue(DOMAIN, issue_id) is None  # only one minute so far
    await tick(hass, freezer, RECHECK_INTERVAL)
    assert issue_registry.async_get_issue(DOMAIN, issue_id) is None
    await tick(hass, freezer, RECHECK_INTERVAL)
    assert RECHECK_INTERVAL * 3 >= UNREACHABLE_AFTER
    issue = issue_registry.async_get_issue(DOMAIN, issue_id)
    assert issue is not None
    assert issue.translation_key == "service_unreachable"
    assert issue.translation_placeholders is not None
    assert issue.translation_placeholders["title"] == entry.title
    assert "HTTP 503" in issue.translation_placeholders["error"]
    assert realtime_server.connections == probes  # every probe was refused at the handshake

    realtime_server.handshake_status = None
    with caplog.at_level(logging.INFO, "custom_components.openai_realtime_voice"):
        await tick(hass, freezer, RECHECK_INTERVAL)
    assert issue_registry.async_get_issue(DOMAIN, issue_id) is None
    assert entry.runtime_data.service.available
    assert f"Realtime service of {entry.title} is back" in caplog.text

    # Once it answers, nothing probes any more.
    connections = realtime_server.connections
    for _ in range(3):
        await tick(hass, freezer, RECHECK_INTERVAL)
    assert realtime_server.connections == connections


async def test_unloading_while_down_clears_the_issue_and_stops_probing(
    hass: HomeAssistant,
    client: TestClient,
    realtime_server: RealtimeServer,
    issue_registry: ir.IssueRegistry,
    freezer: FrozenDateTimeFactory,
) -> None:
    """An entry unloaded during an outage leaves no issue and no timer behind."""
    entry = await restart_while_down(hass, realtime_server)
    for _ in range(3):
        await tick(hass, freezer, RECHECK_INTERVAL)
    assert issue_registry.async_get_issue(DOMAIN, unreachable_issue_id(entry)) is not None
    assert await hass.config_entries.async_unload(entry.entry_id)
    assert issue_registry.async_get_issue(DOMAIN, unreachable_issue_id(entry)) is None
    realtime_server.handshake_status = None
    connections = realtime_server.connections
    for _ in range(3):
        await tick(hass, freezer, RECHECK_INTERVAL)
    assert realtime_server.connections == connections


async def test_quota_at_startup_loads_with_the_quota_issue(
    hass: HomeAssistant,
    client: TestClient,
    realtime_server: RealtimeServer,
    issue_registry: ir.IssueRegistry,
    freezer: FrozenDateTimeFactory,
) -> None:
    """Out of quota at startup (HTTP 429): the entry loads, says so, and the boards are served
    by the pipeline; the issue goes once the service answers."""
    entry = hass.config_entries.async_entries(DOMAIN)[0]
    assert await hass.config_entries.async_unload(entry.entry_id)
    realtime_server.discipline.out_of_quota()  # HTTP 429 with `insufficient_quota`
    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    assert issue_registry.async_get_issue(DOMAIN, quota_issue_id(entry)) is not None
    realtime_server.discipline.handshake_429 = None
    await tick(hass, freezer, RECHECK_INTERVAL)
    assert issue_registry.async_get_issue(DOMAIN, quota_issue_id(entry)) is None
    assert issue_registry.async_get_issue(DOMAIN, unreachable_issue_id(entry)) is None


async def test_rejected_key_at_startup_still_starts_reauth(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """Invalid auth is not an outage: setup fails and asks for a new key, as before."""
    entry = hass.config_entries.async_entries(DOMAIN)[0]
    assert await hass.config_entries.async_unload(entry.entry_id)
    realtime_server.reject_auth = True
    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.SETUP_ERROR
    flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert [flow["context"]["source"] for flow in flows] == [SOURCE_REAUTH]


async def test_key_rejected_during_an_outage_starts_reauth_and_stops_probing(
    hass: HomeAssistant,
    client: TestClient,
    realtime_server: RealtimeServer,
    freezer: FrozenDateTimeFactory,
) -> None:
    """The service comes back but refuses the key: reauth instead of more checks."""
    entry = await restart_while_down(hass, realtime_server)
    realtime_server.handshake_status = None
    realtime_server.reject_auth = True
    await tick(hass, freezer, RECHECK_INTERVAL)
    flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert [flow["context"]["source"] for flow in flows] == [SOURCE_REAUTH]
    assert flows[0]["context"]["entry_id"] == entry.entry_id
    realtime_server.reject_auth = False  # a probe now would open a session: none does
    connections = realtime_server.connections
    for _ in range(3):
        await tick(hass, freezer, RECHECK_INTERVAL)
    assert realtime_server.connections == connections
