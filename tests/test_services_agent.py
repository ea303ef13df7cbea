"""The services API used by the Realtime Assist agent, end to end through the local server."""

from __future__ import annotations

import json
from typing import Any

from homeassistant.components import conversation
from homeassistant.components.homeassistant.exposed_entities import async_expose_entity
from homeassistant.const import CONF_API_KEY
from homeassistant.core import Context, HomeAssistant
from homeassistant.helpers import entity_registry as er, llm
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.openai_realtime_voice.const import (
    CONF_BASE_URL,
    CONF_DIALECT,
    CONF_LLM_HASS_API,
    CONF_SERVICES_ALLOWLIST,
    DEFAULT_SERVICES_ALLOWLIST,
    DOMAIN,
)
from custom_components.openai_realtime_voice.services_api import API_ID
from realtime_server import RealtimeServer, ScriptedCall, ScriptedResponse
from tests.agent_helpers import agent_of, ask_agent, service_entry


async def _agent_entry(
    hass: HomeAssistant, server: RealtimeServer, options: dict[str, Any] | None = None
) -> MockConfigEntry:
    entry = service_entry(
        {CONF_API_KEY: server.api_key, CONF_BASE_URL: server.url, CONF_DIALECT: "ga"},
        {CONF_LLM_HASS_API: [llm.LLM_API_ASSIST, API_ID], **(options or {})},
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return entry


def _tool_named(server: RealtimeServer, suffix: str) -> str:
    tools = server.of_type("session.update")[-1]["session"]["tools"]
    matches = [tool["name"] for tool in tools if tool["name"].endswith(suffix)]
    assert len(matches) == 1, [tool["name"] for tool in tools]
    return matches[0]


async def test_set_hvac_mode_through_the_agent(
    hass: HomeAssistant,
    demo_home: None,
    realtime_server: RealtimeServer,
) -> None:
    """The model sets an exposed thermostat's mode; an unexposed one is refused."""
    await _agent_entry(hass, realtime_server)
    async_expose_entity(hass, conversation.DOMAIN, "climate.hvac", True)
    async_expose_entity(hass, conversation.DOMAIN, "climate.ecobee", False)

    realtime_server.script(ScriptedResponse(text="Hello."))
    first = await ask_agent(hass, "Hello")
    name = _tool_named(realtime_server, "climate__set_hvac_mode")
    assert len(name) <= 64

    realtime_server.script(
        ScriptedResponse(
            calls=[ScriptedCall(name, '{"entity_id": "climate.hvac", "hvac_mode": "heat"}')]
        ),
        ScriptedResponse(text="Heating."),
        ScriptedResponse(
            calls=[ScriptedCall(name, '{"entity_id": "climate.ecobee", "hvac_mode": "heat"}')]
        ),
        ScriptedResponse(text="I can't."),
    )
    result = await ask_agent(hass, "Heat the house", first.conversation_id)
    assert result.response.speech["plain"]["speech"] == "Heating."
    await hass.async_block_till_done()
    assert hass.states.get("climate.hvac").state == "heat"

    ecobee_before = hass.states.get("climate.ecobee").state
    result = await ask_agent(hass, "And the ecobee", first.conversation_id)
    assert result.response.speech["plain"]["speech"] == "I can't."
    assert hass.states.get("climate.ecobee").state == ecobee_before
    outputs = [
        json.loads(event["item"]["output"])
        for event in realtime_server.of_type("conversation.item.create")
        if event["item"]["type"] == "function_call_output"
    ]
    assert [output["error"] for output in outputs] == [False, True]


async def test_each_agent_uses_its_own_entrys_allowlist(
    hass: HomeAssistant,
    demo_home: None,
    realtime_server: RealtimeServer,
) -> None:
    """An entry that allows locks does not widen what another entry's agent may call."""
    with_locks = await _agent_entry(
        hass, realtime_server, {CONF_SERVICES_ALLOWLIST: [*DEFAULT_SERVICES_ALLOWLIST, "lock"]}
    )
    default = await _agent_entry(hass, realtime_server)
    registry = er.async_get(hass)

    async def offered(entry: MockConfigEntry) -> set[str]:
        agent_id = registry.async_get_entity_id("conversation", DOMAIN, agent_of(entry).subentry_id)
        assert agent_id is not None
        realtime_server.script(ScriptedResponse(text="Hello."))
        await conversation.async_converse(
            hass, "Hello", None, Context(), language="en", agent_id=agent_id
        )
        tools = realtime_server.of_type("session.update")[-1]["session"]["tools"]
        return {tool["name"].rpartition("__")[2] for tool in tools}

    assert "unlock" not in await offered(default)
    assert "unlock" in await offered(with_locks)
    assert "open_cover" in await offered(default)
