"""A LAN attacker against the device endpoints: pairing hijack, discovery flood, spoofed checks.

Raw HTTP against the real Home Assistant HTTP server (`hass_client_no_auth`), the simulator as
the genuine device. Each test reproduces one hole of issue 18 (and the reflash and URL items of
issue 17) and fails on the code before its fix.
"""

from __future__ import annotations

from datetime import timedelta
from ipaddress import ip_address
import logging
from typing import Any

from aiohttp.test_utils import TestClient
from homeassistant.components.http.ban import KEY_FAILED_LOGIN_ATTEMPTS, NOTIFICATION_ID_LOGIN
from homeassistant.components.persistent_notification import (
    _async_get_or_create_notifications as notifications,
)
from homeassistant.config_entries import SOURCE_INTEGRATION_DISCOVERY, ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import async_fire_time_changed

from custom_components.openai_realtime_voice.const import (
    ACTIVATE_PATH,
    CONF_CODE,
    CONF_MAC,
    DEVICE_WS_PATH,
    DOMAIN,
    OTA_PATH,
    SUBENTRY_DEVICE,
)
from custom_components.openai_realtime_voice.endpoint import device_subentries
from custom_components.openai_realtime_voice.endpoint.hub import DATA_HUB
from custom_components.openai_realtime_voice.endpoint.pairing import (
    ACTIVATE_REQUESTS_PER_MINUTE,
    APPROVAL_GUARD,
    CODE_LIFETIME,
    MAX_PENDING_DEVICES,
    MAX_WRONG_CODES,
    NEW_DEVICES_PER_SOURCE,
    OTA_REQUESTS_PER_MINUTE,
    hash_token,
)
from custom_components.openai_realtime_voice.repairs import firmware_issue_id
from realtime_server import RealtimeServer
from tests.device_helpers import (
    connected_device,
    device_client,
    device_home,
    discovery_flow,
    pair,
    setup_entry,
    simulator,
    wait_until,
)

LOOPBACK = ip_address("127.0.0.1")


def discovery_flows(hass: HomeAssistant) -> list[dict[str, Any]]:
    """Every discovered card of the integration."""
    return [
        dict(flow)
        for flow in hass.config_entries.flow.async_progress_by_handler(DOMAIN)
        if flow["context"]["source"] == SOURCE_INTEGRATION_DISCOVERY
    ]


def boot_headers(mac: str, client_id: str, **extra: str) -> dict[str, str]:
    """The headers of a firmware boot check (`Ota::SetupHttp`)."""
    return {"Device-Id": mac, "Client-Id": client_id, "User-Agent": "esp-box-3/2.4.2"} | extra


async def test_pairing_cannot_be_hijacked_by_another_client_id(
    hass: HomeAssistant, client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    """An attacker who sends the pairing device's MAC with its own Client-Id gets nothing.

    Before the fix its request took over the pending record (same code), and when the user
    typed the code the real device showed, the token was handed to the attacker.
    """
    device = simulator(client, board_name="esp-box-3", firmware_version="2.4.2")
    hub = hass.data[DATA_HUB]
    try:
        code = (await device.check_version()).activation["code"]
        await hass.async_block_till_done()
        attacker = boot_headers(device.mac, "attacker-client-id")
        # The attacker asks while the pairing is in progress: refused, one log line.
        for _ in range(3):
            response = await client.post(OTA_PATH, json=device.ota.system_info(), headers=attacker)
            assert response.status == 409
            assert code not in await response.text()
        assert caplog.text.count("asked to be paired with another Client-Id") == 1
        assert hub.pairing.pending[device.mac].client_id == device.client_id
        assert hub.pairing.pending[device.mac].code == code
        # Nor can it watch the pairing through the activation poll.
        response = await client.post(ACTIVATE_PATH, json={}, headers=attacker)
        assert response.status == 404

        # The card names the device the user approves: board, MAC, firmware, Client-Id.
        flow = discovery_flow(hass, device.mac)
        form = await hass.config_entries.flow.async_configure(flow["flow_id"])
        assert form["step_id"] == "pair"
        assert form["description_placeholders"] == {
            "board": "esp-box-3",
            "mac": device.mac,
            "firmware": "2.4.2",
            "client_id": device.client_id[:8],
        }
        done = await hass.config_entries.flow.async_configure(flow["flow_id"], {CONF_CODE: code})
        assert done["reason"] == "device_paired"
        await hass.async_block_till_done()  # the entry adds the new device

        # Approved: the attacker still gets no token, no 200 from the poll.
        for _ in range(3):
            response = await client.post(OTA_PATH, json=device.ota.system_info(), headers=attacker)
            assert response.status == 409
        assert caplog.text.count("while its token waits for the approved one") == 1
        response = await client.post(ACTIVATE_PATH, json={}, headers=attacker)
        assert response.status == 404
        # The real device gets it (at every check, until it presents it).
        assert await device.activate(max_attempts=1)
        token = (await device.check_version()).websocket["token"]
        (subentry,) = device_subentries(hass.config_entries.async_entries(DOMAIN)[0])
        assert subentry.data["client_id"] == device.client_id
        assert subentry.data["token_hash"] == hash_token(token)
        await device.open_audio_channel()
        assert device_home(hass, device.mac).state.connected
    finally:
        await device.close()


async def test_the_add_device_form_names_the_device(
    hass: HomeAssistant, client: TestClient
) -> None:
    """ "Add device" lists board, MAC, firmware and the start of the Client-Id."""
    device = simulator(client, board_name="esp-box-3", firmware_version="2.4.2")
    entry = hass.config_entries.async_entries(DOMAIN)[0]
    try:
        await device.check_version()
        result = await hass.config_entries.subentries.async_init(
            (entry.entry_id, SUBENTRY_DEVICE), context={"source": "user"}
        )
        (option,) = result["data_schema"].schema[CONF_MAC].config["options"]
        assert option["value"] == device.mac
        assert option["label"] == f"esp-box-3 ({device.mac}) 2.4.2 · {device.client_id[:8]}…"
    finally:
        await device.close()


async def test_wrong_code_budget_survives_a_new_code(
    hass: HomeAssistant, client: TestClient
) -> None:
    """Letting a code expire does not give a fresh budget of guesses within the window."""
    device = simulator(client)
    hub = hass.data[DATA_HUB]
    try:
        code = (await device.check_version()).activation["code"]
        wrong = f"{(int(code) + 1) % 1_000_000:06d}"
        await hass.async_block_till_done()
        flow = discovery_flow(hass, device.mac)
        for _ in range(MAX_WRONG_CODES - 1):
            await hass.config_entries.flow.async_configure(flow["flow_id"], {CONF_CODE: wrong})
        now = hub.pairing.clock()
        hub.pairing.clock = lambda: now + CODE_LIFETIME / 2
        hub.pairing.pending[device.mac].expires = now  # the code expired early (a reset device)
        code = (await device.check_version()).activation["code"]
        await hass.async_block_till_done()
        flow = discovery_flow(hass, device.mac)
        wrong = f"{(int(code) + 1) % 1_000_000:06d}"
        step = await hass.config_entries.flow.async_configure(flow["flow_id"], {CONF_CODE: wrong})
        assert step["errors"] == {"base": "invalid_code"}
        step = await hass.config_entries.flow.async_configure(flow["flow_id"], {CONF_CODE: code})
        assert step["errors"] == {"base": "too_many_attempts"}
    finally:
        await device.close()


async def test_ota_and_activate_are_rate_limited_per_address(
    hass: HomeAssistant, client: TestClient
) -> None:
    """One address gets a bounded number of answers a minute from each endpoint."""
    hub = hass.data[DATA_HUB]
    headers = boot_headers("aa:bb:cc:dd:ee:01", "c1")
    for _ in range(OTA_REQUESTS_PER_MINUTE):
        assert (await client.post(OTA_PATH, json={}, headers=headers)).status == 200
    assert (await client.post(OTA_PATH, json={}, headers=headers)).status == 429
    assert (await client.get(OTA_PATH, headers=headers)).status == 429
    for _ in range(ACTIVATE_REQUESTS_PER_MINUTE):
        assert (await client.post(ACTIVATE_PATH, json={}, headers=headers)).status == 202
    assert (await client.post(ACTIVATE_PATH, json={}, headers=headers)).status == 429
    now = hub.pairing.clock()
    hub.pairing.clock = lambda: now + 61
    assert (await client.post(OTA_PATH, json={}, headers=headers)).status == 200
    assert (await client.post(ACTIVATE_PATH, json={}, headers=headers)).status == 202


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


async def test_discovery_flood_from_many_addresses(
    hass: HomeAssistant, forwarding_client: TestClient
) -> None:
    """300 random MACs from 300 addresses: the cards are capped, the real device keeps its own.

    Before the fix every request made a card, and the real device's record was evicted.
    """
    client = forwarding_client
    hub = hass.data[DATA_HUB]
    device = simulator(client)
    try:
        code = (await device.check_version()).activation["code"]
        statuses: list[int] = []
        for i in range(300):
            mac = f"02:00:00:00:{i // 256:02x}:{i % 256:02x}"
            address = f"10.0.{i // 200}.{i % 200}"
            headers = boot_headers(mac, f"c{i}", **{"X-Forwarded-For": address})
            statuses.append((await client.post(OTA_PATH, json={}, headers=headers)).status)
        await hass.async_block_till_done()
        assert statuses.count(200) == MAX_PENDING_DEVICES - 1
        assert set(statuses[MAX_PENDING_DEVICES:]) == {503}
        assert len(hub.pairing.pending) == MAX_PENDING_DEVICES
        assert len(discovery_flows(hass)) == MAX_PENDING_DEVICES
        assert hub.pairing.pending[device.mac].code == code
        assert (await device.check_version()).activation["code"] == code
        discovery_flow(hass, device.mac)
    finally:
        await device.close()


async def test_new_devices_per_address_are_limited(hass: HomeAssistant, client: TestClient) -> None:
    """One address may put only a few new MACs up for pairing within a code's lifetime."""
    hub = hass.data[DATA_HUB]
    statuses = [
        (
            await client.post(
                OTA_PATH, json={}, headers=boot_headers(f"02:00:00:00:00:{i:02x}", f"c{i}")
            )
        ).status
        for i in range(40)
    ]
    await hass.async_block_till_done()
    assert statuses[:NEW_DEVICES_PER_SOURCE] == [200] * NEW_DEVICES_PER_SOURCE
    assert set(statuses[NEW_DEVICES_PER_SOURCE:OTA_REQUESTS_PER_MINUTE]) == {429}
    assert len(hub.pairing.pending) == NEW_DEVICES_PER_SOURCE
    assert len(discovery_flows(hass)) == NEW_DEVICES_PER_SOURCE


async def test_expired_codes_take_their_cards_with_them(
    hass: HomeAssistant, client: TestClient
) -> None:
    """When a pairing code expires, its discovered card is aborted and the record forgotten."""
    hub = hass.data[DATA_HUB]
    device = simulator(client)
    try:
        await device.check_version()
        await hass.async_block_till_done()
        discovery_flow(hass, device.mac)
        now = hub.pairing.clock()
        hub.pairing.clock = lambda: now + CODE_LIFETIME + 1
        async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=CODE_LIFETIME + 1))
        await hass.async_block_till_done()
        assert not discovery_flows(hass)
        assert not hub.pairing.pending
        response = await client.post(ACTIVATE_PATH, json={}, headers=device.ota.http_headers())
        assert response.status == 404
    finally:
        await device.close()


async def test_card_titles_from_the_device_are_sanitised(
    hass: HomeAssistant, client: TestClient
) -> None:
    """A board name with markdown, markup or control characters is cleaned and cut short
    in the form; the card title is the MAC alone."""
    name = "[Click me](http://evil.example) **now** <img src=x>\u202e" + "x" * 200
    headers = boot_headers("aa:bb:cc:dd:ee:05", "c5", **{"User-Agent": "agent/2.4.2"})
    body = {"board": {"name": name}, "application": {"version": "2.4.2`![x](y)"}}
    response = await client.post(OTA_PATH, json=body, headers=headers)
    assert response.status == 200
    await hass.async_block_till_done()
    flow = discovery_flow(hass, "aa:bb:cc:dd:ee:05")
    assert flow["context"]["title_placeholders"]["name"] == "aa:bb:cc:dd:ee:05"
    form = await hass.config_entries.flow.async_configure(flow["flow_id"])
    board = form["description_placeholders"]["board"]
    assert len(board) <= 32
    assert board.startswith("Click me http")
    assert not set(board) & set("[]()<>*`!\u202e")
    assert not set(form["description_placeholders"]["firmware"]) & set("[]()<>*`!")


async def test_valid_token_while_the_entry_is_not_loaded(
    hass: HomeAssistant, client: TestClient
) -> None:
    """A paired device during a reload or outage gets 503, and no failed login is counted."""
    device = simulator(client)
    try:
        await pair(hass, device)
        entry = hass.config_entries.async_entries(DOMAIN)[0]
        await hass.config_entries.async_unload(entry.entry_id)
        assert entry.state is ConfigEntryState.NOT_LOADED
        for _ in range(3):
            response = await client.get(DEVICE_WS_PATH, headers=device.ws_headers())
            assert response.status == 503
        assert client.app[KEY_FAILED_LOGIN_ATTEMPTS][LOOPBACK] == 0
        assert NOTIFICATION_ID_LOGIN not in notifications(hass)
        # A wrong token of the right shape is still a failed login.
        headers = device.ws_headers() | {"Authorization": f"Bearer {'w' * 43}"}
        assert (await client.get(DEVICE_WS_PATH, headers=headers)).status == 401
        assert client.app[KEY_FAILED_LOGIN_ATTEMPTS][LOOPBACK] == 1
        assert NOTIFICATION_ID_LOGIN in notifications(hass)
    finally:
        await device.close()


async def test_spoofed_boot_check_does_not_change_a_paired_device(
    hass: HomeAssistant, client: TestClient, issue_registry: ir.IssueRegistry
) -> None:
    """A boot check with a paired device's MAC (and even its Client-Id) changes nothing.

    Before the fix it raised or cleared the device's firmware issue and set its last seen.
    """
    device = simulator(client, firmware_version="2.4.2")
    try:
        await pair(hass, device)
        await hass.async_block_till_done()
        state = device_home(hass, device.mac).state
        seen = state.last_seen
        for client_id in (device.client_id, "someone-else"):
            body = device.ota.system_info()
            body["application"]["version"] = "1.0.0"
            headers = device.ota.http_headers() | {"Client-Id": client_id}
            response = await client.post(OTA_PATH, json=body, headers=headers)
            assert response.status == 200
        assert issue_registry.async_get_issue(DOMAIN, firmware_issue_id(device.mac)) is None
        assert state.last_seen == seen
        (subentry,) = device_subentries(hass.config_entries.async_entries(DOMAIN)[0])
        assert subentry.data["firmware"] == "2.4.2"
    finally:
        await device.close()


async def test_refused_connections_log_one_warning_per_address(
    hass: HomeAssistant, client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    """Twenty refused connections from one address: one WARNING line, the rest at debug."""
    caplog.set_level(logging.DEBUG)
    for i in range(20):
        headers = {"Device-Id": f"aa:bb:cc:dd:ee:{i:02x}", "Authorization": "Bearer nope"}
        assert (await client.get(DEVICE_WS_PATH, headers=headers)).status == 401
    refused = [r for r in caplog.records if "Refused a device connection" in r.getMessage()]
    assert len(refused) == 20
    assert [r.levelno for r in refused].count(logging.WARNING) == 1


async def test_reflashed_device_pairs_again(
    hass: HomeAssistant, client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    """A paired MAC with a new Client-Id (NVS erased) is offered pairing again as a reset
    device; the old token works until the new one is issued, then stops (`board.cc`
    regenerates the Client-Id when NVS is erased; the MAC stays)."""
    old = await connected_device(hass, client)
    entry = hass.config_entries.async_entries(DOMAIN)[0]
    old_headers = old.ws_headers()
    # The same board, erased: a new Client-Id, no token (the old board's connection stays
    # open meanwhile, as if the erased board were a second one with the old settings).
    new = simulator(client, mac=old.mac, client_id=old.client_id)
    new.erase_settings()
    try:
        assert new.client_id != old.client_id
        assert not new.nvs_websocket
        check = await new.check_version()
        assert check.activation is not None
        assert check.websocket is None
        await hass.async_block_till_done()
        assert "was reset" in caplog.text
        assert not await new.activate(max_attempts=1)  # 202: waiting for the user
        flow = discovery_flow(hass, old.mac)
        form = await hass.config_entries.flow.async_configure(flow["flow_id"])
        assert form["step_id"] == "pair_reset"
        assert form["description_placeholders"]["client_id"] == new.client_id[:8]
        # Until the user approves, the old token still works.
        assert device_home(hass, old.mac).state.connected
        # "Add device" would make a second subentry for the MAC: the card is the one way.
        add = await hass.config_entries.subentries.async_init(
            (entry.entry_id, SUBENTRY_DEVICE), context={"source": "user"}
        )
        assert add["reason"] == "no_pending_devices"
        done = await hass.config_entries.flow.async_configure(
            flow["flow_id"], {CONF_CODE: check.activation["code"]}
        )
        assert done["reason"] == "device_paired"
        await old.wait_closed()
        await hass.async_block_till_done()
        response = await client.get(DEVICE_WS_PATH, headers=old_headers)
        assert response.status == 401
        assert await new.activate(max_attempts=1)
        assert "token" in (await new.check_version()).websocket
        (subentry,) = device_subentries(entry)
        assert subentry.unique_id == old.mac
        assert subentry.data["client_id"] == new.client_id
        assert entry.state is ConfigEntryState.LOADED
        await new.open_audio_channel()
        state = device_home(hass, new.mac).state
        await wait_until(lambda: state.connected, state)
    finally:
        await new.close()
        await old.close()


async def test_websocket_url_follows_the_request_host(
    hass: HomeAssistant, client: TestClient
) -> None:
    """The URL handed to a device is the host and port it reached, not HA's internal URL."""
    hass.config.internal_url = "http://homeassistant.local:8123"
    device = simulator(client)
    try:
        await pair(hass, device)
        assert device.nvs_websocket["url"] == str(client.make_url(DEVICE_WS_PATH)).replace(
            "http://", "ws://"
        )
        headers = device.ota.http_headers() | {"Host": "192.168.1.50:8123"}
        response = await client.post(OTA_PATH, json=device.ota.system_info(), headers=headers)
        body = await response.json()
        assert body["websocket"]["url"] == "ws://192.168.1.50:8123/api/openai_realtime_voice/ws"
    finally:
        await device.close()


async def test_paired_device_gets_503_not_401_during_setup(
    hass: HomeAssistant, hass_client_no_auth: Any, realtime_server: RealtimeServer
) -> None:
    """The same holds for a second entry's device while only that entry is unloaded."""
    client = await device_client(hass, hass_client_no_auth, realtime_server)
    device = simulator(client)
    try:
        await pair(hass, device)
        other = await setup_entry(hass, realtime_server)
        first = hass.config_entries.async_entries(DOMAIN)[0]
        assert other.entry_id != first.entry_id
        await hass.config_entries.async_unload(first.entry_id)
        response = await client.get(DEVICE_WS_PATH, headers=device.ws_headers())
        assert response.status == 503
        assert client.app[KEY_FAILED_LOGIN_ATTEMPTS][LOOPBACK] == 0
    finally:
        await device.close()


async def test_add_device_pairs_only_the_device_it_listed(
    hass: HomeAssistant, client: TestClient
) -> None:
    """A code typed into "Add device" pairs the listed device, not one that took its place;
    a listed device whose code expired meanwhile says so."""
    hub = hass.data[DATA_HUB]
    entry = hass.config_entries.async_entries(DOMAIN)[0]
    first, second = simulator(client), simulator(client)
    try:
        await first.check_version()
        second_code = (await second.check_version()).activation["code"]
        form = await hass.config_entries.subentries.async_init(
            (entry.entry_id, SUBENTRY_DEVICE), context={"source": "user"}
        )
        # The first device's code expires; an impostor then asks with its MAC and gets a new
        # code for its own Client-Id.
        hub.pairing.pending[first.mac].expires = hub.pairing.clock()
        impostor = boot_headers(first.mac, "impostor")
        response = await client.post(OTA_PATH, json={}, headers=impostor)
        impostor_code = (await response.json())["activation"]["code"]
        form = await hass.config_entries.subentries.async_configure(
            form["flow_id"], {CONF_MAC: first.mac, CONF_CODE: impostor_code}
        )
        assert form["errors"] == {"base": "unknown_device"}
        # The second device's code expires while the form is open.
        hub.pairing.pending[second.mac].expires = hub.pairing.clock()
        form = await hass.config_entries.subentries.async_configure(
            form["flow_id"], {CONF_MAC: second.mac, CONF_CODE: second_code}
        )
        assert form["errors"] == {"base": "code_expired"}
        assert not list(device_subentries(entry))
    finally:
        await first.close()
        await second.close()


async def test_another_client_id_is_refused_only_while_the_approval_is_fresh(
    hass: HomeAssistant, client: TestClient
) -> None:
    """Right after the approval another Client-Id is refused; an hour later it may ask to
    pair (a board reset before it ever connected), and the approved one still gets its token.
    """
    hub = hass.data[DATA_HUB]
    device = simulator(client)
    try:
        code = (await device.check_version()).activation["code"]
        await hass.async_block_till_done()
        flow = discovery_flow(hass, device.mac)
        await hass.config_entries.flow.async_configure(flow["flow_id"], {CONF_CODE: code})
        await hass.async_block_till_done()
        other = boot_headers(device.mac, "another-client-id")
        assert (await client.post(OTA_PATH, json={}, headers=other)).status == 409
        now = hub.pairing.clock()
        hub.pairing.clock = lambda: now + APPROVAL_GUARD
        response = await client.post(OTA_PATH, json={}, headers=other)
        assert response.status == 200
        assert "activation" in await response.json()
        result = await device.check_version()
        assert result.websocket is not None
        assert "token" in result.websocket
    finally:
        await device.close()


async def test_removing_a_device_drops_its_reset_card(
    hass: HomeAssistant, client: TestClient
) -> None:
    """A paired device with a pending "was reset" card: removing the device drops the card."""
    device = simulator(client)
    try:
        await pair(hass, device)
        device.erase_settings()
        assert (await device.check_version()).activation is not None
        await hass.async_block_till_done()
        discovery_flow(hass, device.mac)
        entry = hass.config_entries.async_entries(DOMAIN)[0]
        (subentry,) = device_subentries(entry)
        hass.config_entries.async_remove_subentry(entry, subentry.subentry_id)
        await hass.async_block_till_done()
        assert not discovery_flows(hass)
        assert device.mac not in hass.data[DATA_HUB].pairing.pending
    finally:
        await device.close()
