"""Config flow: adding, reauthenticating, reconfiguring and tuning a Realtime endpoint."""

from __future__ import annotations

import logging
from typing import Any
from unittest.mock import patch

from homeassistant import config_entries
from homeassistant.const import CONF_API_KEY
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import entity_registry as er, translation
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.openai_realtime_voice.agents import agent_subentries
from custom_components.openai_realtime_voice.const import (
    CONF_BASE_URL,
    CONF_DIALECT,
    CONF_MODEL,
    DOMAIN,
    MODELS,
    RECOMMENDED_MODEL,
)
from custom_components.openai_realtime_voice.settings import default_options, recommended_agent
from realtime_server import RealtimeServer, closed_port_url
from tests.agent_helpers import agent_of, service_entry


async def _start_user_flow(hass: HomeAssistant) -> dict[str, Any]:
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": config_entries.SOURCE_USER}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "user"
    assert result["errors"] == {}
    return result


async def test_user_flow_creates_entry(
    hass: HomeAssistant, realtime_server: RealtimeServer
) -> None:
    """A working key and endpoint create an entry with recommended options."""
    result = await _start_user_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {
            CONF_API_KEY: f"  {realtime_server.api_key} ",
            CONF_BASE_URL: realtime_server.url + "/",
            CONF_DIALECT: "ga",
            CONF_MODEL: "gpt-realtime-2.1-mini",
        },
    )
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "OpenAI Realtime"
    assert result["data"] == {
        CONF_API_KEY: realtime_server.api_key,
        CONF_BASE_URL: realtime_server.url,
        CONF_DIALECT: "ga",
    }
    assert result["options"] == default_options()
    # The flow really opened a session, asking for the chosen model.
    assert realtime_server.connections >= 1
    entry = result["result"]
    assert entry.state is config_entries.ConfigEntryState.LOADED
    # One conversation agent with the recommended settings and the chosen model.
    (agent,) = agent_subentries(entry)
    assert agent.title == "OpenAI Realtime"
    assert dict(agent.data) == {**recommended_agent(), CONF_MODEL: "gpt-realtime-2.1-mini"}
    entity = er.async_get(hass).async_get("conversation.openai_realtime")
    assert entity is not None
    assert entity.unique_id == agent.subentry_id
    assert entity.config_subentry_id == agent.subentry_id


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({CONF_API_KEY: "sk-wrong"}, {"base": "invalid_auth"}),
        ({CONF_BASE_URL: "unreachable"}, {"base": "cannot_connect"}),
        ({CONF_BASE_URL: "ftp://example.com/v1"}, {CONF_BASE_URL: "invalid_url"}),
        # The service refuses the legacy beta shape: the form says to choose the GA protocol.
        ({CONF_DIALECT: "beta"}, {CONF_DIALECT: "beta_protocol_disabled"}),
    ],
)
async def test_user_flow_errors_then_recovers(
    hass: HomeAssistant,
    realtime_server: RealtimeServer,
    change: dict[str, str],
    error: dict[str, str],
) -> None:
    """A wrong key, an unreachable or malformed URL show an error; fixing it succeeds."""
    if change.get(CONF_BASE_URL) == "unreachable":
        change = {CONF_BASE_URL: closed_port_url()}
    good = {CONF_API_KEY: realtime_server.api_key, CONF_BASE_URL: realtime_server.url}
    result = await _start_user_flow(hass)
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {**good, **change})
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == error

    result = await hass.config_entries.flow.async_configure(result["flow_id"], good)
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert agent_of(result["result"]).data[CONF_MODEL] == RECOMMENDED_MODEL


async def test_user_flow_unknown_error(
    hass: HomeAssistant, realtime_server: RealtimeServer, caplog: pytest.LogCaptureFixture
) -> None:
    """An unexpected failure is reported as unknown and logged."""
    result = await _start_user_flow(hass)
    with patch(
        "custom_components.openai_realtime_voice.validation.async_probe",
        side_effect=RuntimeError("boom"),
    ):
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"],
            {CONF_API_KEY: realtime_server.api_key, CONF_BASE_URL: realtime_server.url},
        )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "unknown"}
    assert "Unexpected error while validating" in caplog.text


async def test_same_endpoint_and_key_cannot_be_added_twice(
    hass: HomeAssistant, realtime_server: RealtimeServer
) -> None:
    """A second entry for the same key and base URL is refused; another URL is fine."""
    MockConfigEntry(
        domain=DOMAIN,
        data={CONF_API_KEY: realtime_server.api_key, CONF_BASE_URL: realtime_server.url},
    ).add_to_hass(hass)
    result = await _start_user_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {CONF_API_KEY: realtime_server.api_key, CONF_BASE_URL: realtime_server.url},
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"

    # The same key against OpenAI's default endpoint is another service.
    result = await _start_user_flow(hass)
    with patch("custom_components.openai_realtime_voice.validation.async_probe") as probe:
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {CONF_API_KEY: realtime_server.api_key}
        )
        assert probe.await_args is not None
        assert probe.await_args.args[0].url().startswith("wss://api.openai.com/v1/realtime")
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert CONF_BASE_URL not in result["data"]


async def _setup_entry(hass: HomeAssistant, server: RealtimeServer, **data: Any) -> MockConfigEntry:
    entry = service_entry(
        {CONF_API_KEY: server.api_key, CONF_BASE_URL: server.url, CONF_DIALECT: "ga", **data}
    )
    entry.add_to_hass(hass)
    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return entry


async def test_reauth(hass: HomeAssistant, realtime_server: RealtimeServer) -> None:
    """A rejected key leads to reauth; a wrong new key is refused, a good one saved."""
    entry = await _setup_entry(hass, realtime_server, api_key="sk-old")
    assert entry.state is config_entries.ConfigEntryState.SETUP_ERROR
    flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert [flow["context"]["source"] for flow in flows] == [config_entries.SOURCE_REAUTH]
    flow_id = flows[0]["flow_id"]
    assert flows[0]["step_id"] == "reauth_confirm"

    result = await hass.config_entries.flow.async_configure(flow_id, {CONF_API_KEY: "sk-bad"})
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "invalid_auth"}

    result = await hass.config_entries.flow.async_configure(
        flow_id, {CONF_API_KEY: realtime_server.api_key}
    )
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reauth_successful"
    assert entry.data[CONF_API_KEY] == realtime_server.api_key
    assert entry.data[CONF_BASE_URL] == realtime_server.url
    assert entry.state is config_entries.ConfigEntryState.LOADED


async def test_reconfigure(hass: HomeAssistant, realtime_server: RealtimeServer) -> None:
    """Reconfigure validates the new connection and keeps the options."""
    entry = await _setup_entry(hass, realtime_server)
    result = await entry.start_reconfigure_flow(hass)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "reconfigure"

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {CONF_API_KEY: realtime_server.api_key, CONF_BASE_URL: closed_port_url()},
    )
    assert result["errors"] == {"base": "cannot_connect"}

    second = RealtimeServer(api_key="sk-second")
    await second.start()
    try:
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"],
            {CONF_API_KEY: "sk-second", CONF_BASE_URL: second.url, CONF_DIALECT: "ga"},
        )
        await hass.async_block_till_done()
        assert result["type"] is FlowResultType.ABORT
        assert result["reason"] == "reconfigure_successful"
        assert entry.data == {
            CONF_API_KEY: "sk-second",
            CONF_BASE_URL: second.url,
            CONF_DIALECT: "ga",
        }
        assert entry.options == default_options()
        assert entry.state is config_entries.ConfigEntryState.LOADED
    finally:
        await hass.config_entries.async_unload(entry.entry_id)
        await second.stop()
    assert not second.violations


async def test_reconfigure_to_another_entrys_endpoint_aborts(
    hass: HomeAssistant, realtime_server: RealtimeServer
) -> None:
    """Reconfiguring onto an endpoint another entry already uses is refused."""
    MockConfigEntry(
        domain=DOMAIN, data={CONF_API_KEY: "sk-other", CONF_BASE_URL: realtime_server.url}
    ).add_to_hass(hass)
    entry = await _setup_entry(hass, realtime_server)
    result = await entry.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_API_KEY: "sk-other", CONF_BASE_URL: realtime_server.url}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"


async def test_options_flow(hass: HomeAssistant, realtime_server: RealtimeServer) -> None:
    """Options show only what is entry-wide and save what the user chose; the agent's settings
    stay in its subentry."""
    entry = await _setup_entry(hass, realtime_server)
    agent = dict(agent_of(entry).data)
    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "init"
    fields = {str(key) for key in result["data_schema"].schema}
    assert fields == {
        "device_websocket_url",
        "listening_timeout",
        "wake_words",
        "services_allowlist",
        "monthly_budget",
        "budget_action",
        "budget_model",
    }

    chosen = {
        **default_options(),
        "listening_timeout": 40,
        "wake_words": "Hey Nova, 你好小白",
        "device_websocket_url": "wss://voice.example/ws",
        "monthly_budget": 20,
    }
    result = await hass.config_entries.options.async_configure(result["flow_id"], chosen)
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert entry.options == chosen
    assert dict(agent_of(entry).data) == agent
    assert entry.state is config_entries.ConfigEntryState.LOADED
    assert entry.runtime_data.budget.limit == 20


async def test_options_flow_drops_empty_optional_values(
    hass: HomeAssistant, realtime_server: RealtimeServer
) -> None:
    """No wake words, no device URL and no budget are stored as absent, not as empty values."""
    entry = await _setup_entry(hass, realtime_server)
    result = await hass.config_entries.options.async_init(entry.entry_id)
    options = {**default_options(), "wake_words": " ", "device_websocket_url": " "}
    result = await hass.config_entries.options.async_configure(result["flow_id"], options)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert "wake_words" not in entry.options
    assert "device_websocket_url" not in entry.options
    assert "monthly_budget" not in entry.options


async def test_api_key_never_leaks_from_a_failed_connection(
    hass: HomeAssistant, realtime_server: RealtimeServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Neither logs nor the flow result of failed attempts contain the key."""
    caplog.set_level(logging.DEBUG)
    secret = "sk-proj-SECRET-4f1c9a7e2b"
    for base_url in (realtime_server.url, closed_port_url()):
        result = await _start_user_flow(hass)
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {CONF_API_KEY: secret, CONF_BASE_URL: base_url}
        )
        assert result["type"] is FlowResultType.FORM
        assert result["errors"]["base"] in {"invalid_auth", "cannot_connect"}
        assert secret not in repr(result)
    with patch(
        "custom_components.openai_realtime_voice.validation.async_probe",
        side_effect=RuntimeError("unexpected"),
    ):
        result = await _start_user_flow(hass)
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {CONF_API_KEY: secret, CONF_BASE_URL: realtime_server.url}
        )
    assert result["errors"] == {"base": "unknown"}
    assert secret not in caplog.text
    assert "SECRET" not in caplog.text


async def test_connection_forms_fill_every_placeholder_of_their_texts(
    hass: HomeAssistant, realtime_server: RealtimeServer
) -> None:
    """The example URLs of the base URL's help come as placeholders (hassfest bans URLs in
    translated text), and every placeholder of the user and reconfigure texts is filled."""
    strings = await translation.async_get_translations(hass, "en", "config", [DOMAIN])
    user = await _start_user_flow(hass)
    entry = await _setup_entry(hass, realtime_server)
    reconfigure = await entry.start_reconfigure_flow(hass)
    for result in (user, reconfigure):
        prefix = f"component.{DOMAIN}.config.step.{result['step_id']}."
        texts = {key: text for key, text in strings.items() if key.startswith(prefix)}
        assert f"{prefix}data_description.base_url" in texts
        rendered = {
            key: text.format(**(result["description_placeholders"] or {}))
            for key, text in texts.items()
        }
        help_text = rendered[f"{prefix}data_description.base_url"]
        assert "https://YOUR-RESOURCE.openai.azure.com/openai/v1" in help_text
        assert "http://HOST:PORT/v1" in help_text
    hass.config_entries.flow.async_abort(user["flow_id"])
    hass.config_entries.flow.async_abort(reconfigure["flow_id"])
    await hass.config_entries.async_unload(entry.entry_id)


async def test_model_choices_are_model_names_and_any_name_may_be_typed(
    hass: HomeAssistant, realtime_server: RealtimeServer
) -> None:
    """The model dropdown lists the model names themselves (no translation keys, which
    cannot contain their dots) and keeps a typed Azure deployment name."""
    result = await _start_user_flow(hass)
    model = next(key for key in result["data_schema"].schema if key == CONF_MODEL)
    config = result["data_schema"].schema[model].config
    assert "translation_key" not in config
    assert config["custom_value"] is True
    assert [(o["value"], o["label"]) for o in config["options"]] == [(m, m) for m in MODELS]
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {
            CONF_API_KEY: realtime_server.api_key,
            CONF_BASE_URL: realtime_server.url,
            CONF_MODEL: "my-realtime-deployment",
        },
    )
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert agent_of(result["result"]).data[CONF_MODEL] == "my-realtime-deployment"
    await hass.config_entries.async_unload(result["result"].entry_id)
