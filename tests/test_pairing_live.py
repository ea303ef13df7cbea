"""Pairing or removing a board while others talk: the entry does not reload.

A reload closes every board's connection and, for as long as the probe of the Realtime
service takes, answers boot checks with 503: the board being paired shows an error, plays
the exclamation sound and retries only after 10 s (`Application::CheckNewVersion`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Final

from aiohttp.test_utils import TestClient
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import device_registry as dr, entity_registry as er
import pytest

from custom_components.openai_realtime_voice.const import CONF_CODE, DOMAIN
from custom_components.openai_realtime_voice.xiaozhi import ListenMode
from realtime_server import RealtimeServer, ScriptedResponse, tone
from simulator.device import DeviceSimulator
from tests.bridge_helpers import (
    bridge_of,
    bridged,
    device_state,
    loud,
    satellite_id,
    wait_tts,
)
from tests.device_helpers import discovery_flow, live, release_devices, simulator, wait_until

SLOW_ACCEPT: Final = 0.8
"""Seconds the test service takes to accept a session: the slow end of the real service's
0.3-0.8 s from connect to a configured session (see `RealtimeServer.accept_delay`)."""


@pytest.fixture(autouse=True)
async def _release(hass: HomeAssistant, client: TestClient) -> AsyncGenerator[None]:
    """Close every simulated board, also when a test fails half-way."""
    yield
    await release_devices(hass, client)


async def long_reply(device: DeviceSimulator, server: RealtimeServer) -> asyncio.Event:
    """Push to talk, say something, release; wait until the held reply is playing."""
    hold = asyncio.Event()
    server.script(ScriptedResponse(text="A long answer.", audio=tone(3000), chunks=10, hold=hold))
    await device.start_listening(ListenMode.MANUAL)
    await wait_until(
        lambda: server.session.session["audio"]["input"]["turn_detection"] is None, server
    )
    await device.send_audio(loud(500))
    await device.stop_listening()
    await wait_until(lambda: device.downlink_outcomes().get("played", 0) >= 3, device)
    return hold


async def test_pairing_shows_no_error_and_cuts_no_conversation(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """A board is paired while another plays a reply: the new board's activation poll and
    boot check succeed at once, and the other board's reply plays to its end."""
    realtime_server.accept_delay = SLOW_ACCEPT
    talker = await bridged(hass, client)
    talking = live(hass, talker.mac)
    bridge = bridge_of(hass, device_state(hass, talker))
    start = len(talker.messages)
    hold = await long_reply(talker, realtime_server)

    newcomer = simulator(client)
    entry = hass.config_entries.async_entries(DOMAIN)[0]
    # Firmware order (`CheckNewVersion`): the boot check shows the code, the board polls
    # /activate until it is approved, then checks again for its settings and token.
    result = await newcomer.check_version()
    assert result.activation is not None
    await hass.async_block_till_done()
    done = await hass.config_entries.flow.async_configure(
        discovery_flow(hass, newcomer.mac)["flow_id"], {CONF_CODE: result.activation["code"]}
    )
    assert done["type"] is FlowResultType.ABORT
    assert done["reason"] == "device_paired"
    assert await newcomer.activate(max_attempts=1)  # 200 at the first poll
    result = await newcomer.check_version()  # raises on any status but 200
    assert result.websocket is not None
    assert "token" in result.websocket
    assert entry.state is ConfigEntryState.LOADED

    # The new board is served at once, with its entities, and nothing else moved.
    await newcomer.open_audio_channel()
    state = device_state(hass, newcomer)
    await wait_until(lambda: bridge_of(hass, state) is not None, state)
    await hass.async_block_till_done()
    assert hass.states.get(satellite_id(hass, newcomer.mac)) is not None
    assert not talking.closed
    assert live(hass, talker.mac) is talking
    assert bridge_of(hass, device_state(hass, talker)) is bridge

    hold.set()
    await wait_tts(talker, "stop", start)
    assert set(talker.downlink_outcomes()) == {"played"}
    assert talker.alerts == []
    assert newcomer.alerts == []


async def test_removing_a_board_disconnects_only_it(
    hass: HomeAssistant,
    client: TestClient,
    realtime_server: RealtimeServer,
    device_registry: dr.DeviceRegistry,
    entity_registry: er.EntityRegistry,
) -> None:
    """The removed board is closed and its entities and device go; the other talks on."""
    removed = await bridged(hass, client)
    talker = await bridged(hass, client)
    talking = live(hass, talker.mac)
    satellite = satellite_id(hass, removed.mac)
    start = len(talker.messages)
    hold = await long_reply(talker, realtime_server)

    entry = hass.config_entries.async_entries(DOMAIN)[0]
    subentry = next(s for s in entry.subentries.values() if s.unique_id == removed.mac)
    assert hass.config_entries.async_remove_subentry(entry, subentry.subentry_id)
    await removed.wait_closed()
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    assert hass.states.get(satellite) is None
    assert entity_registry.async_get(satellite) is None
    assert not device_registry.async_get_devices(identifiers={(DOMAIN, removed.mac)})
    assert not talking.closed

    hold.set()
    await wait_tts(talker, "stop", start)
    assert set(talker.downlink_outcomes()) == {"played"}
    assert live(hass, talker.mac) is talking
