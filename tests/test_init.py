"""Setting up and unloading a config entry."""

from __future__ import annotations

from homeassistant.config_entries import SOURCE_REAUTH, ConfigEntryState
from homeassistant.const import CONF_API_KEY
from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.openai_realtime_voice.const import CONF_BASE_URL, CONF_DIALECT, DOMAIN
from custom_components.openai_realtime_voice.realtime import AuthStyle, Dialect
from custom_components.openai_realtime_voice.settings import endpoint_from_config
from realtime_server import RealtimeServer, closed_port_url
from tests.agent_helpers import service_entry


def _entry(hass: HomeAssistant, api_key: str, base_url: str) -> MockConfigEntry:
    entry = service_entry({CONF_API_KEY: api_key, CONF_BASE_URL: base_url, CONF_DIALECT: "ga"})
    entry.add_to_hass(hass)
    return entry


async def test_setup_and_unload(hass: HomeAssistant, realtime_server: RealtimeServer) -> None:
    """The entry loads after a successful session and unloads cleanly."""
    entry = _entry(hass, realtime_server.api_key, realtime_server.url)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    assert entry.runtime_data.endpoint.base_url == realtime_server.url
    assert realtime_server.connections == 1

    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.NOT_LOADED


async def test_setup_rejected_key_starts_reauth(
    hass: HomeAssistant, realtime_server: RealtimeServer
) -> None:
    """A rejected key fails setup and asks the user for a new one."""
    entry = _entry(hass, "sk-revoked", realtime_server.url)
    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.SETUP_ERROR
    flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert [flow["context"]["source"] for flow in flows] == [SOURCE_REAUTH]


async def test_setup_unreachable_loads(hass: HomeAssistant, socket_enabled: None) -> None:
    """An unreachable service does not keep the entry from loading (devices fall back to the
    Assist pipeline); the entry knows the service is unavailable and checks it again."""
    entry = _entry(hass, "sk-any", closed_port_url())
    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    assert not entry.runtime_data.service.available
    assert await hass.config_entries.async_unload(entry.entry_id)


def test_endpoint_from_config() -> None:
    """Azure hosts authenticate with api-key; the dialect and model carry over."""
    azure = endpoint_from_config(
        {CONF_API_KEY: "k", CONF_BASE_URL: "https://home.openai.azure.com/openai/v1"}, "voice"
    )
    assert azure.auth_style is AuthStyle.API_KEY
    assert azure.url() == "wss://home.openai.azure.com/openai/v1/realtime?model=voice"
    local = endpoint_from_config(
        {CONF_API_KEY: "k", CONF_BASE_URL: "http://10.0.0.2:8000", CONF_DIALECT: "beta"}
    )
    assert local.auth_style is AuthStyle.BEARER
    assert local.dialect is Dialect.BETA
    assert local.url() == "ws://10.0.0.2:8000/v1/realtime?model=gpt-realtime-2.1"
    assert endpoint_from_config({CONF_API_KEY: "k"}).base_url is None


async def test_setup_refused_for_good_does_not_retry(
    hass: HomeAssistant, realtime_server: RealtimeServer
) -> None:
    """The service refuses the beta protocol: setup fails for good, saying which to choose."""
    entry = service_entry(
        {
            CONF_API_KEY: realtime_server.api_key,
            CONF_BASE_URL: realtime_server.url,
            CONF_DIALECT: "beta",
        }
    )
    entry.add_to_hass(hass)
    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.SETUP_ERROR
    assert "GA protocol" in (entry.reason or "")
