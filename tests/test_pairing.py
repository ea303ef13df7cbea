"""Pairing a device: the discovered flow, the "Add device" subentry flow, removal."""

from __future__ import annotations

from aiohttp.test_utils import TestClient
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import device_registry as dr

from custom_components.openai_realtime_voice.const import (
    CONF_CODE,
    CONF_MAC,
    DEVICE_WS_PATH,
    DOMAIN,
    SUBENTRY_DEVICE,
)
from custom_components.openai_realtime_voice.endpoint import device_subentries
from custom_components.openai_realtime_voice.endpoint.hub import DATA_HUB
from custom_components.openai_realtime_voice.endpoint.pairing import (
    CODE_LIFETIME,
    MAX_WRONG_CODES,
    hash_token,
)
from tests.device_helpers import (
    connected_device,
    discovery_flow,
    pair,
    simulator,
)


async def test_discovered_device_paired_with_its_code(
    hass: HomeAssistant, client: TestClient, device_registry: dr.DeviceRegistry
) -> None:
    """The right code adds a device subentry with the token's hash, and an HA device."""
    device = simulator(client, board_name="esp-box-3", firmware_version="2.4.2")
    try:
        await pair(hass, device)
        entry = hass.config_entries.async_entries(DOMAIN)[0]
        await hass.async_block_till_done()
        (subentry,) = device_subentries(entry)
        assert subentry.subentry_type == SUBENTRY_DEVICE
        assert subentry.unique_id == device.mac
        assert subentry.title == f"esp-box-3 ({device.mac})"
        assert subentry.data == {
            "mac": device.mac,
            "client_id": device.client_id,
            "board": "esp-box-3",
            "firmware": "2.4.2",
            "token_hash": hash_token(str(device.nvs_websocket["token"])),
        }
        assert entry.state is ConfigEntryState.LOADED
        ha_device = device_registry.async_get_device_by_identifier(
            (DOMAIN, device.mac), entry.entry_id
        )
        assert ha_device is not None
        assert ha_device.connections == {(dr.CONNECTION_NETWORK_MAC, device.mac)}
        assert ha_device.manufacturer == "xiaozhi"
        assert ha_device.model == "esp-box-3"
        assert ha_device.sw_version == "2.4.2"
        assert ha_device.config_subentry_id == subentry.subentry_id
    finally:
        await device.close()


async def test_wrong_codes_are_rate_limited(hass: HomeAssistant, client: TestClient) -> None:
    """Wrong codes show an error; after five the flow refuses even the right one."""
    device = simulator(client)
    try:
        result = await device.check_version()
        await hass.async_block_till_done()
        flow = discovery_flow(hass, device.mac)
        assert flow["context"]["title_placeholders"]["name"] == device.mac
        code = result.activation["code"]
        wrong = f"{(int(code) + 1) % 1_000_000:06d}"
        for _ in range(MAX_WRONG_CODES):
            step = await hass.config_entries.flow.async_configure(
                flow["flow_id"], {CONF_CODE: wrong}
            )
            assert step["errors"] == {"base": "invalid_code"}
        step = await hass.config_entries.flow.async_configure(flow["flow_id"], {CONF_CODE: code})
        assert step["errors"] == {"base": "too_many_attempts"}
        pairing = hass.data[DATA_HUB].pairing
        now = pairing.clock()
        pairing.clock = lambda: now + CODE_LIFETIME + 1  # the window passed, and the code expired
        step = await hass.config_entries.flow.async_configure(flow["flow_id"], {CONF_CODE: code})
        assert step["type"] is FlowResultType.ABORT
        assert step["reason"] == "code_expired"
        # The device's next check gets a new code, and a new card for it.
        renewed = await device.check_version()
        await hass.async_block_till_done()
        flow = discovery_flow(hass, device.mac)
        step = await hass.config_entries.flow.async_configure(
            flow["flow_id"], {CONF_CODE: renewed.activation["code"]}
        )
        assert step["type"] is FlowResultType.ABORT
        assert step["reason"] == "device_paired"
    finally:
        await device.close()


async def test_add_device_subentry_flow(hass: HomeAssistant, client: TestClient) -> None:
    """A waiting device can be paired from the entry's "Add device" button."""
    entry = hass.config_entries.async_entries(DOMAIN)[0]
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_DEVICE), context={"source": "user"}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "no_pending_devices"

    device = simulator(client)
    try:
        ota = await device.check_version()
        await hass.async_block_till_done()
        result = await hass.config_entries.subentries.async_init(
            (entry.entry_id, SUBENTRY_DEVICE), context={"source": "user"}
        )
        assert result["type"] is FlowResultType.FORM
        result = await hass.config_entries.subentries.async_configure(
            result["flow_id"], {CONF_MAC: device.mac, CONF_CODE: "000000x"}
        )
        assert result["errors"] == {"base": "invalid_code"}
        result = await hass.config_entries.subentries.async_configure(
            result["flow_id"], {CONF_MAC: device.mac, CONF_CODE: ota.activation["code"]}
        )
        assert result["type"] is FlowResultType.CREATE_ENTRY
        await hass.async_block_till_done()
        assert [s.unique_id for s in device_subentries(entry)] == [device.mac]
        assert not hass.config_entries.flow.async_progress_by_handler(DOMAIN)
        assert await device.activate(max_attempts=1)
        assert (await device.check_version()).websocket["token"]
    finally:
        await device.close()


async def test_subentry_flow_needs_a_loaded_entry(hass: HomeAssistant, client: TestClient) -> None:
    """Pairing needs the service loaded."""
    entry = hass.config_entries.async_entries(DOMAIN)[0]
    device = simulator(client)
    try:
        await device.check_version()
        await hass.async_block_till_done()
        flow = discovery_flow(hass, device.mac)
        await hass.config_entries.async_unload(entry.entry_id)
        result = await hass.config_entries.subentries.async_init(
            (entry.entry_id, SUBENTRY_DEVICE), context={"source": "user"}
        )
        assert result["reason"] == "entry_not_loaded"
        result = await hass.config_entries.flow.async_configure(
            flow["flow_id"], {CONF_CODE: device.ota.result.activation["code"]}
        )
        assert result["reason"] == "entry_not_loaded"
    finally:
        await device.close()


async def test_removing_the_device_revokes_it(
    hass: HomeAssistant, client: TestClient, device_registry: dr.DeviceRegistry
) -> None:
    """Removing the subentry closes the live connection, refuses the token, drops the device."""
    device = await connected_device(hass, client)
    try:
        entry = hass.config_entries.async_entries(DOMAIN)[0]
        (subentry,) = device_subentries(entry)
        hass.config_entries.async_remove_subentry(entry, subentry.subentry_id)
        await device.wait_closed()
        await hass.async_block_till_done()
        assert entry.state is ConfigEntryState.LOADED
        assert not device_registry.async_get_devices(identifiers={(DOMAIN, device.mac)})
        response = await client.get(DEVICE_WS_PATH, headers=device.ws_headers())
        assert response.status == 401
        assert (await device.check_version()).activation is not None
    finally:
        await device.close()


async def test_discovery_of_a_paired_or_forgotten_device(
    hass: HomeAssistant, client: TestClient
) -> None:
    """A discovery for a paired device, or one no longer waiting, aborts."""
    device = simulator(client)
    try:
        await pair(hass, device)
        await hass.async_block_till_done()
        result = await hass.config_entries.flow.async_init(
            DOMAIN, context={"source": "integration_discovery"}, data={CONF_MAC: device.mac}
        )
        assert result["reason"] == "already_configured"
        result = await hass.config_entries.flow.async_init(
            DOMAIN,
            context={"source": "integration_discovery"},
            data={CONF_MAC: "aa:bb:cc:00:00:01"},
        )
        assert result["reason"] == "code_expired"
    finally:
        await device.close()
