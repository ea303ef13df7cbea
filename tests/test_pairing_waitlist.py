"""The pairing waiting list against a LAN flood, and card titles (issue 29, item 11).

Raw boot checks and activation polls from many addresses (X-Forwarded-For through a trusted
proxy) against the real Home Assistant HTTP server; the simulator is the genuine board.
"""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient
from homeassistant.config_entries import SOURCE_INTEGRATION_DISCOVERY
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
import pytest

from custom_components.openai_realtime_voice.const import ACTIVATE_PATH, DOMAIN, OTA_PATH
from custom_components.openai_realtime_voice.endpoint import device_subentries
from custom_components.openai_realtime_voice.endpoint.hub import DATA_HUB
from custom_components.openai_realtime_voice.endpoint.pairing import (
    MAX_PENDING_DEVICES,
    QUIET_AFTER,
)
from realtime_server import RealtimeServer
from tests.device_helpers import device_client, discovery_flow, pair, simulator


@pytest.fixture
async def forwarding_client(
    hass: HomeAssistant, hass_client_no_auth: Any, realtime_server: RealtimeServer
) -> TestClient:
    """A client whose source address is set per request (X-Forwarded-For, trusted proxy)."""
    assert await async_setup_component(
        hass,
        "http",
        {"http": {"use_x_forwarded_for": True, "trusted_proxies": ["127.0.0.1"]}},
    )
    return await device_client(hass, hass_client_no_auth, realtime_server)


def cards(hass: HomeAssistant) -> dict[str, dict[str, Any]]:
    """The discovered cards of the integration, by MAC."""
    return {
        flow["context"]["unique_id"]: dict(flow)
        for flow in hass.config_entries.flow.async_progress_by_handler(DOMAIN)
        if flow["context"]["source"] == SOURCE_INTEGRATION_DISCOVERY
    }


def fake(i: int) -> dict[str, str]:
    """Headers of the attacker's i-th made-up board, from one of six addresses."""
    return {
        "Device-Id": f"02:00:00:00:00:{i:02x}",
        "Client-Id": f"fake-{i}",
        "User-Agent": "Free prize, call now/2.4.2",
        "X-Forwarded-For": f"10.0.0.{i % 6 + 1}",
    }


async def test_quiet_boards_make_room_for_a_real_one(
    hass: HomeAssistant, forwarding_client: TestClient
) -> None:
    """The list filled by boards that never poll: a real board gets a code once they went quiet.

    Before the fix the made-up boards kept their places for the code's 10 minutes and the
    real board got 503 at every boot check. Boards that keep polling (every 3 s in
    `Application::CheckNewVersion`) keep their places and cards.
    """
    client = forwarding_client
    hub = hass.data[DATA_HUB]
    statuses = [
        (await client.post(OTA_PATH, json={}, headers=fake(i))).status
        for i in range(MAX_PENDING_DEVICES)
    ]
    assert statuses == [200] * MAX_PENDING_DEVICES
    await hass.async_block_till_done()
    device = simulator(client)
    try:
        # Right now every place is taken by a board that was just heard from.
        response = await client.post(
            OTA_PATH, json=device.ota.system_info(), headers=device.ota.http_headers()
        )
        assert response.status == 503
        start = hub.pairing.clock()
        # Three of the made-up boards keep polling, as a waiting board does.
        for tick in range(1, 5):
            hub.pairing.clock = lambda tick=tick: start + tick * QUIET_AFTER / 3
            for i in range(3):
                response = await client.post(ACTIVATE_PATH, json={}, headers=fake(i))
                assert response.status == 202
        result = await device.check_version()
        assert result.activation is not None
        await hass.async_block_till_done()
        assert set(hub.pairing.pending) == {device.mac} | {fake(i)["Device-Id"] for i in range(3)}
        assert set(cards(hass)) == set(hub.pairing.pending)
    finally:
        await device.close()


async def test_a_polling_board_is_never_evicted(
    hass: HomeAssistant, forwarding_client: TestClient
) -> None:
    """A full list of boards that all keep polling: a newcomer is refused, nobody is evicted."""
    client = forwarding_client
    hub = hass.data[DATA_HUB]
    for i in range(MAX_PENDING_DEVICES):
        assert (await client.post(OTA_PATH, json={}, headers=fake(i))).status == 200
    start = hub.pairing.clock()
    hub.pairing.clock = lambda: start + QUIET_AFTER / 2
    for i in range(MAX_PENDING_DEVICES):
        assert (await client.post(ACTIVATE_PATH, json={}, headers=fake(i))).status == 202
    hub.pairing.clock = lambda: start + QUIET_AFTER + 1
    newcomer = fake(40) | {"X-Forwarded-For": "10.0.1.1"}
    assert (await client.post(OTA_PATH, json={}, headers=newcomer)).status == 503
    assert len(hub.pairing.pending) == MAX_PENDING_DEVICES


async def test_card_titles_carry_nothing_the_requester_chose(
    hass: HomeAssistant, client: TestClient
) -> None:
    """A new board's card is titled by its MAC; a reset card by the paired device's name.

    Before the fix anyone who knew a paired MAC could raise a "device was reset" card titled
    with a board name of their choice.
    """
    device = simulator(client, board_name="kitchen-box")
    try:
        await pair(hass, device)
        entry = hass.config_entries.async_entries(DOMAIN)[0]
        (subentry,) = device_subentries(entry)
        lure = {
            "Device-Id": device.mac,
            "Client-Id": "attacker",
            "User-Agent": "URGENT reset now/2.4.2",
        }
        body = {"board": {"name": "URGENT call 555 0100"}}
        response = await client.post(OTA_PATH, json=body, headers=lure)
        assert response.status == 200
        await hass.async_block_till_done()
        flow = discovery_flow(hass, device.mac)
        assert flow["context"]["title_placeholders"] == {"name": subentry.title}
        form = await hass.config_entries.flow.async_configure(flow["flow_id"])
        assert form["step_id"] == "pair_reset"
        assert form["description_placeholders"]["board"] == "kitchen-box"

        new = {"Device-Id": "02:00:00:00:00:01", "Client-Id": "fake-1"}
        assert (await client.post(OTA_PATH, json=body, headers=new)).status == 200
        await hass.async_block_till_done()
        flow = discovery_flow(hass, new["Device-Id"])
        assert flow["context"]["title_placeholders"] == {"name": new["Device-Id"]}
        form = await hass.config_entries.flow.async_configure(flow["flow_id"])
        assert form["description_placeholders"]["board"] == "URGENT call 555 0100"
    finally:
        await device.close()
