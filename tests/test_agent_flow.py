"""Conversation agents as subentries: added, reconfigured and removed through Home Assistant's
flow manager, each its own entity; devices choose theirs, and fall back with a repair."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from aiohttp.test_utils import TestClient
from homeassistant.config_entries import SOURCE_USER, ConfigEntry
from homeassistant.const import CONF_NAME
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import (
    device_registry as dr,
    entity_registry as er,
    issue_registry as ir,
    translation,
)
import pytest

from custom_components.openai_realtime_voice.agents import (
    agent_removed_issue_id,
    agent_subentries,
    device_agent,
)
from custom_components.openai_realtime_voice.const import (
    CONF_AGENT,
    DOMAIN,
    SUBENTRY_CONVERSATION,
)
from custom_components.openai_realtime_voice.endpoint import device_subentries
from custom_components.openai_realtime_voice.settings import recommended_agent
from realtime_server import RealtimeServer, ScriptedResponse
from simulator.device import DeviceSimulator
from tests.agent_helpers import AGENT, agent_of, ask_agent, reconfigure_agent
from tests.bridge_helpers import device_state, wait_realtime
from tests.device_helpers import (
    bridge_at,
    device_client,
    pair,
    release_devices,
    simulator,
    wait_until,
)

KIDS = "conversation.kids_room"
LANGUAGES = ("en", "de", "zh-Hans")


@pytest.fixture
async def client(
    hass: HomeAssistant, hass_client_no_auth: Any, realtime_server: RealtimeServer, lights: None
) -> AsyncIterator[TestClient]:
    """A loaded entry with its first agent, and an HTTP client for boards."""
    http = await device_client(hass, hass_client_no_auth, realtime_server)
    yield http
    await release_devices(hass, http)


def _entry(hass: HomeAssistant) -> ConfigEntry[Any]:
    return hass.config_entries.async_entries(DOMAIN)[0]


async def _add_agent(hass: HomeAssistant, **changes: Any) -> dict[str, Any]:
    """Open the "Add agent" flow and submit the recommended settings with `changes`."""
    entry = _entry(hass)
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_CONVERSATION), context={"source": SOURCE_USER}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "user"
    form = {CONF_NAME: "Kids' room", **recommended_agent(), **changes}
    return dict(
        await hass.config_entries.subentries.async_configure(
            result["flow_id"], {k: v for k, v in form.items() if v is not None}
        )
    )


async def _session_of(
    hass: HomeAssistant, device: DeviceSimulator, server: RealtimeServer
) -> tuple[str, dict[str, Any]]:
    """Open the board's channel; the model and settings of its new Realtime session."""
    before = len(server.sessions)
    await device.open_audio_channel()
    await wait_realtime(hass, device_state(hass, device))
    return server.models[before], dict(server.sessions[before].session)


async def _close(hass: HomeAssistant, device: DeviceSimulator) -> None:
    state = device_state(hass, device)
    await device.close()
    await wait_until(lambda: bridge_at(hass, state.mac) is None, state)


async def _choose_agent(hass: HomeAssistant, mac: str, agent_id: str) -> dict[str, Any]:
    """The device's profile form, with `agent_id` chosen."""
    entry = _entry(hass)
    device = next(s for s in device_subentries(entry) if s.unique_id == mac)
    result = await entry.start_subentry_reconfigure_flow(hass, device.subentry_id)
    assert result["step_id"] == "reconfigure"
    return dict(
        await hass.config_entries.subentries.async_configure(
            result["flow_id"], {CONF_AGENT: agent_id}
        )
    )


async def test_agent_added_through_the_flow_is_its_own_entity(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """A second agent on the same key: validated by the service, its own entity and device,
    answering with its own model, voice and instructions; a connected board stays connected."""
    board = simulator(client)
    await pair(hass, board)
    await _session_of(hass, board, realtime_server)
    connection = device_state(hass, board).connection
    sessions = len(realtime_server.sessions)

    result = await _add_agent(
        hass,
        model="gpt-realtime-2.1-mini",
        voice="sage",
        prompt="You talk to children. Keep it simple.",
        llm_hass_api=[],
        greeting="  ",
    )
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "Kids' room"
    entry = _entry(hass)
    first, kids = agent_subentries(entry)
    assert first.title == "Mock Title"
    assert kids.title == "Kids' room"
    # Empty fields are not stored: no LLM API, no greeting.
    expected = {
        **recommended_agent(),
        "model": "gpt-realtime-2.1-mini",
        "voice": "sage",
        "prompt": "You talk to children. Keep it simple.",
    }
    del expected["llm_hass_api"]
    assert dict(kids.data) == expected
    # The service saw the new agent's own settings while it was validated.
    assert realtime_server.models[sessions] == "gpt-realtime-2.1-mini"
    # No reload: the board kept its connection, and the first agent is still there.
    assert device_state(hass, board).connection is connection
    assert not connection.closed
    entity = er.async_get(hass).async_get(KIDS)
    assert entity is not None
    assert (entity.unique_id, entity.config_subentry_id) == (kids.subentry_id, kids.subentry_id)
    device = dr.async_get(hass).async_get(entity.device_id)
    assert device is not None
    assert device.name == "Kids' room"
    assert device.model == "gpt-realtime-2.1-mini"
    assert hass.states.get(KIDS) is not None
    assert not hass.states.get(KIDS).attributes.get("supported_features")  # no LLM API

    realtime_server.script(ScriptedResponse(text="Hi there, little one."))
    answer = await ask_agent(hass, "Hello", agent_id=KIDS)
    assert answer.response.speech["plain"]["speech"] == "Hi there, little one."
    assert realtime_server.models[-1] == "gpt-realtime-2.1-mini"
    update = realtime_server.of_type("session.update")[-1]["session"]
    assert "You talk to children." in update["instructions"]
    assert update["tools"] == []


@pytest.mark.parametrize(
    ("changes", "errors"),
    [
        ({"model": "  "}, {"model": "model_required"}),
        ({"model": "no-such-model"}, {"model": "model_refused"}),
        ({"voice": "robot"}, {"voice": "voice_refused"}),
        ({"prices": "audio_out=cheap"}, {"prices": "invalid_prices"}),
        ({"model": "my-deployment", "prices": "audio_out=5"}, {"prices": "prices_incomplete"}),
    ],
)
async def test_agent_flow_refuses_what_the_service_or_the_prices_refuse(
    hass: HomeAssistant,
    client: TestClient,
    realtime_server: RealtimeServer,
    changes: dict[str, Any],
    errors: dict[str, str],
) -> None:
    """Each refusal lands on its field and nothing is added; fixing it adds the agent."""
    realtime_server.known_models = {"gpt-realtime-2.1", "gpt-realtime-2.1-mini"}
    entry = _entry(hass)
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_CONVERSATION), context={"source": SOURCE_USER}
    )
    form = {CONF_NAME: "Kids' room", **recommended_agent(), **changes}
    result = await hass.config_entries.subentries.async_configure(result["flow_id"], form)
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == errors
    assert len(agent_subentries(entry)) == 1

    form = {CONF_NAME: "Kids' room", **recommended_agent()}
    result = await hass.config_entries.subentries.async_configure(result["flow_id"], form)
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert len(agent_subentries(entry)) == 2


async def test_reconfigured_agent_reaches_the_next_sessions(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """A changed agent is saved after the service took it, renamed, and its sessions (typed
    and the boards') use the new settings; the entity keeps its id."""
    entry = _entry(hass)
    agent = agent_of(entry)
    first = hass.states.get("conversation.mock_title")
    assert first is not None
    result = await entry.start_subentry_reconfigure_flow(hass, agent.subentry_id)
    assert result["step_id"] == "reconfigure"
    shown = {
        str(key): key.description["suggested_value"]
        for key in result["data_schema"].schema
        if key.description and "suggested_value" in key.description
    }
    assert shown[CONF_NAME] == "Mock Title"
    assert shown["voice"] == agent.data["voice"]

    result = await reconfigure_agent(hass, entry, name="Living room", voice="ballad")
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    agent = agent_of(entry)
    assert agent.title == "Living room"
    assert agent.data["voice"] == "ballad"
    assert hass.states.get("conversation.mock_title") is not None  # the same entity id

    board = simulator(client)
    await pair(hass, board)
    _, session = await _session_of(hass, board, realtime_server)
    assert session["audio"]["output"]["voice"] == "ballad"


async def test_device_chooses_its_agent_and_falls_back_with_a_repair(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """The device's profile form picks its agent; its sessions use that agent. Removing the
    agent keeps the board connected, falls back to the first agent and raises a repair naming
    both, which goes when the user picks an agent."""
    await _add_agent(hass, model="gpt-realtime-2.1-mini", voice="sage")
    entry = _entry(hass)
    first, kids = agent_subentries(entry)
    board = simulator(client)
    await pair(hass, board)
    (device,) = device_subentries(entry)

    # The form lists the agents, the first one chosen while the device names none.
    result = await entry.start_subentry_reconfigure_flow(hass, device.subentry_id)
    key, selector = next(
        (key, value) for key, value in result["data_schema"].schema.items() if key == CONF_AGENT
    )
    assert [(o["value"], o["label"]) for o in selector.config["options"]] == [
        (first.subentry_id, first.title),
        (kids.subentry_id, kids.title),
    ]
    assert key.description["suggested_value"] == first.subentry_id
    hass.config_entries.subentries.async_abort(result["flow_id"])

    result = await _choose_agent(hass, board.mac, kids.subentry_id)
    assert result["reason"] == "reconfigure_successful"
    (device,) = device_subentries(entry)
    assert device.data[CONF_AGENT] == kids.subentry_id
    assert device_agent(entry, device) is entry.subentries[kids.subentry_id]
    model, session = await _session_of(hass, board, realtime_server)
    assert (model, session["audio"]["output"]["voice"]) == ("gpt-realtime-2.1-mini", "sage")
    connection = device_state(hass, board).connection

    # Removing the agent: no reload, its entity and device go, the board falls back.
    kids_entity = er.async_get(hass).async_get(KIDS)
    assert kids_entity is not None
    assert hass.config_entries.async_remove_subentry(entry, kids.subentry_id)
    await hass.async_block_till_done()
    assert device_state(hass, board).connection is connection
    assert not connection.closed
    assert er.async_get(hass).async_get(KIDS) is None
    assert hass.states.get(KIDS) is None
    assert dr.async_get(hass).async_get(kids_entity.device_id) is None
    assert hass.states.get(AGENT.replace("openai_realtime", "mock_title")) is not None
    issue = ir.async_get(hass).async_get_issue(DOMAIN, agent_removed_issue_id(board.mac))
    assert issue is not None
    assert issue.translation_key == "agent_removed"
    assert issue.translation_placeholders == {
        "device": device.title,
        "agent": first.title,
        "title": entry.title,
    }
    await _close(hass, board)
    model, session = await _session_of(hass, board, realtime_server)
    assert (model, session["audio"]["output"]["voice"]) == (
        first.data["model"],
        first.data["voice"],
    )

    # Choosing an agent clears the repair.
    result = await _choose_agent(hass, board.mac, first.subentry_id)
    assert result["reason"] == "reconfigure_successful"
    await hass.async_block_till_done()
    assert ir.async_get(hass).async_get_issue(DOMAIN, agent_removed_issue_id(board.mac)) is None


async def test_a_device_of_a_removed_entry_agent_without_any_agent_left(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """With every agent removed, the device uses the recommended settings and the repair
    says so; an agent removed while its form is open is refused there."""
    entry = _entry(hass)
    board = simulator(client)
    await pair(hass, board)
    (device,) = device_subentries(entry)
    first = agent_of(entry)
    result = await entry.start_subentry_reconfigure_flow(hass, device.subentry_id)
    hass.config_entries.async_update_subentry(
        entry, device, data={**device.data, CONF_AGENT: first.subentry_id}
    )
    assert hass.config_entries.async_remove_subentry(entry, first.subentry_id)
    await hass.async_block_till_done()
    issue = ir.async_get(hass).async_get_issue(DOMAIN, agent_removed_issue_id(board.mac))
    assert issue is not None
    assert issue.translation_key == "agent_removed_none"

    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {CONF_AGENT: first.subentry_id}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {CONF_AGENT: "unknown_agent"}
    _, session = await _session_of(hass, board, realtime_server)
    assert session["audio"]["output"]["voice"] == recommended_agent()["voice"]

    # Removing the device takes its repair with it.
    (device,) = device_subentries(entry)
    assert hass.config_entries.async_remove_subentry(entry, device.subentry_id)
    await hass.async_block_till_done()
    assert ir.async_get(hass).async_get_issue(DOMAIN, agent_removed_issue_id(board.mac)) is None


@pytest.mark.parametrize("language", LANGUAGES)
async def test_agent_and_device_forms_are_translated(hass: HomeAssistant, language: str) -> None:
    """Every field of the agent forms and the device's agent choice has a label and a help
    text, and the repairs a title and description, in English, German and Chinese."""
    subentries = await translation.async_get_translations(
        hass, language, "config_subentries", [DOMAIN]
    )
    issues = await translation.async_get_translations(hass, language, "issues", [DOMAIN])
    prefix = f"component.{DOMAIN}.config_subentries"
    fields = [CONF_NAME, *recommended_agent(), "prices", "max_output_tokens", "greeting"]
    for step in ("user", "reconfigure"):
        for name in fields:
            for part in ("data", "data_description"):
                text = subentries.get(f"{prefix}.conversation.step.{step}.{part}.{name}")
                assert text, (step, part, name)
    for key in ("initiate_flow.user", "initiate_flow.reconfigure", "entry_type"):
        assert subentries.get(f"{prefix}.conversation.{key}"), key
    for part in ("data", "data_description"):
        assert subentries.get(f"{prefix}.device.step.reconfigure.{part}.agent"), part
    assert subentries.get(f"{prefix}.device.error.unknown_agent")
    for issue in ("agent_removed", "agent_removed_none"):
        title = issues[f"component.{DOMAIN}.issues.{issue}.title"]
        description = issues[f"component.{DOMAIN}.issues.{issue}.description"]
        assert "{device}" in title + description
    assert "{agent}" in issues[f"component.{DOMAIN}.issues.agent_removed.description"]
    if language != "en":
        english = await translation.async_get_translations(
            hass, "en", "config_subentries", [DOMAIN]
        )
        key = f"{prefix}.conversation.step.user.title"
        assert subentries[key] != english[key]
