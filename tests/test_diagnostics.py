"""Diagnostics downloads: what they contain, and that no secret appears anywhere in them."""

from __future__ import annotations

import json
from typing import Any

from aiohttp.test_utils import TestClient
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
    get_diagnostics_for_device,
)

from custom_components.openai_realtime_voice.const import (
    CONF_BASE_URL,
    CONF_DEVICE_WEBSOCKET_URL,
    CONF_TOKEN_HASH,
    DOMAIN,
)
from custom_components.openai_realtime_voice.endpoint import device_subentries
from realtime_server import RealtimeServer, default_usage
from tests.agent_helpers import agent_of
from tests.device_helpers import device_client, device_home, pair, simulator


@pytest.fixture
async def client(
    hass: HomeAssistant, hass_client_no_auth: Any, realtime_server: RealtimeServer
) -> TestClient:
    """A loaded entry and a client without Home Assistant credentials (for the devices)."""
    assert await async_setup_component(hass, "diagnostics", {})
    return await device_client(hass, hass_client_no_auth, realtime_server)


async def test_diagnostics_redact_every_secret(
    hass: HomeAssistant,
    client: TestClient,
    hass_client: Any,
    realtime_server: RealtimeServer,
    device_registry: dr.DeviceRegistry,
) -> None:
    """Entry and device downloads hold settings, usage and device state, but no secret."""
    paired = simulator(client)
    waiting = simulator(client)
    try:
        await pair(hass, paired)
        check = await waiting.check_version()
        assert check.activation is not None
        await hass.async_block_till_done()

        entry = hass.config_entries.async_entries(DOMAIN)[0]
        assert entry.state is ConfigEntryState.LOADED
        entry.runtime_data.usage.record(default_usage())
        state = device_home(hass, paired.mac).state
        state.latencies.extend([510.0, 730.0])
        state.last_latency_ms = 730.0
        state.errors["realtime_timeout"] += 2
        subentry = next(device_subentries(entry))
        hass.config_entries.async_update_subentry(
            entry, subentry, data={**subentry.data, "profile": {"voice": "coral"}}
        )
        subentry = entry.subentries[subentry.subentry_id]

        secrets = {
            "api key": realtime_server.api_key,
            "device token": str(paired.nvs_websocket["token"]),
            "token hash": str(subentry.data[CONF_TOKEN_HASH]),
            "paired client id": paired.client_id,
            "waiting client id": waiting.client_id,
            "pairing code": str(check.activation["code"]),
            "challenge": str(check.activation["challenge"]),
        }

        diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, entry)
        device = device_registry.async_get_device_by_identifier(
            (DOMAIN, paired.mac), entry.entry_id
        )
        assert device is not None
        device_diagnostics = await get_diagnostics_for_device(hass, hass_client, entry, device)
        service = device_registry.async_get_device_by_identifier(
            (DOMAIN, entry.entry_id), entry.entry_id
        )
        assert service is not None
        service_diagnostics = await get_diagnostics_for_device(hass, hass_client, entry, service)
    finally:
        await paired.close()
        await waiting.close()

    for dump in (diagnostics, device_diagnostics, service_diagnostics):
        text = json.dumps(dump)
        for what, secret in secrets.items():
            assert secret not in text, what

    assert diagnostics["entry"]["data"]["api_key"] == "**REDACTED**"
    agent = agent_of(entry)
    assert diagnostics["entry"]["agents"][agent.title]["voice"] == agent.data["voice"]
    assert diagnostics["service"]["model"] == entry.runtime_data.endpoint.model
    assert diagnostics["service"]["available"] is True
    assert diagnostics["usage"]["responses"] == 1
    assert diagnostics["usage"]["text_in"] == 119
    assert [p["mac"] for p in diagnostics["pending_devices"]] == [waiting.mac]
    assert diagnostics["pending_devices"][0]["code"] == "**REDACTED**"
    assert service_diagnostics == diagnostics

    assert device_diagnostics["board"] == "bread-compact-wifi"
    assert device_diagnostics["firmware"] == "2.4.2"
    assert device_diagnostics["connected"] is False
    assert device_diagnostics["latencies_ms"] == [510.0, 730.0]
    assert device_diagnostics["last_latency_ms"] == 730.0
    # The settings the device's next session gets: its profile over its agent's settings.
    assert device_diagnostics["effective_settings"]["voice"] == "coral"
    assert device_diagnostics["effective_settings"]["model"] == agent.data["model"]
    assert device_diagnostics["errors"] == {"realtime_timeout": 2}
    assert device_diagnostics["data"][CONF_TOKEN_HASH] == "**REDACTED**"
    assert diagnostics["devices"] == [
        {k: v for k, v in device_diagnostics.items() if k != "effective_settings"}
    ]


async def test_diagnostics_of_an_entry_that_is_not_loaded(
    hass: HomeAssistant, client: TestClient, hass_client: Any
) -> None:
    """An unloaded entry still downloads its redacted settings, without live state."""
    entry = hass.config_entries.async_entries(DOMAIN)[0]
    assert await hass.config_entries.async_unload(entry.entry_id)
    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, entry)
    assert diagnostics["entry"]["state"] == "not_loaded"
    assert "usage" not in diagnostics
    assert "service" not in diagnostics
    assert diagnostics["entry"]["data"]["api_key"] == "**REDACTED**"


async def test_diagnostics_hide_url_credentials(
    hass: HomeAssistant, client: TestClient, hass_client: Any
) -> None:
    """URLs in the settings are shown without user info or query values."""
    entry = hass.config_entries.async_entries(DOMAIN)[0]
    assert await hass.config_entries.async_unload(entry.entry_id)
    hass.config_entries.async_update_entry(
        entry,
        data={**entry.data, CONF_BASE_URL: "https://proxy:PASSWORD-1@llm.example/v1?key=Q-2"},
        options={
            **entry.options,
            CONF_DEVICE_WEBSOCKET_URL: "ws://ha.local:8123/ws?token=Q-3",
        },
    )
    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, entry)
    text = json.dumps(diagnostics)
    for secret in ("PASSWORD-1", "proxy", "Q-2", "Q-3"):
        assert secret not in text
    assert diagnostics["entry"]["data"][CONF_BASE_URL] == "https://***@llm.example/v1?key=***"
    assert diagnostics["entry"]["options"][CONF_DEVICE_WEBSOCKET_URL] == (
        "ws://ha.local:8123/ws?token=***"
    )
