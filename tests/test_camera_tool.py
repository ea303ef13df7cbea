"""Home Assistant cameras seen through the services API: an exposed one by a typed Assist
request, an unexposed or unknown one refused alike, nothing stored."""

from __future__ import annotations

import io
import json
from typing import Any

from homeassistant.components.homeassistant.const import DATA_EXPOSED_ENTITIES
from homeassistant.const import CONF_API_KEY
from homeassistant.core import HomeAssistant
from homeassistant.helpers import llm
from PIL import Image
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
)

from custom_components.openai_realtime_voice.const import (
    CONF_BASE_URL,
    CONF_DIALECT,
    CONF_IMAGE_INPUT,
    CONF_IMAGE_MAX_SIDE,
    CONF_LLM_HASS_API,
    DOMAIN,
)
from custom_components.openai_realtime_voice.endpoint.hub import DATA_HUB
from custom_components.openai_realtime_voice.services_api import API_ID, agent_allowlist
from custom_components.openai_realtime_voice.services_api.camera import LOOK_AT_CAMERA_TOOL
from realtime_server import RealtimeServer, ScriptedCall, ScriptedResponse
from tests.agent_helpers import ask_agent, service_entry
from tests.camera_helpers import BROKEN, GARAGE, PORCH, StillCamera


async def _agent_entry(
    hass: HomeAssistant, server: RealtimeServer, **options: Any
) -> MockConfigEntry:
    entry = service_entry(
        {CONF_API_KEY: server.api_key, CONF_BASE_URL: server.url, CONF_DIALECT: "ga"},
        {CONF_LLM_HASS_API: [llm.LLM_API_ASSIST, API_ID], **options},
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return entry


async def _camera_tool(hass: HomeAssistant, server: RealtimeServer) -> tuple[str, str]:
    """Open a conversation; the camera tool's name as offered, and the conversation ID."""
    server.script(ScriptedResponse(text="Hello."))
    first = await ask_agent(hass, "Hello")
    names = [name for name in _offered(server) if name.endswith(LOOK_AT_CAMERA_TOOL)]
    assert len(names) == 1, _offered(server)
    return names[0], first.conversation_id


def _offered(server: RealtimeServer) -> set[str]:
    return {tool["name"] for tool in server.of_type("session.update")[-1]["session"]["tools"]}


def _outputs(server: RealtimeServer) -> list[dict[str, Any]]:
    return [
        json.loads(event["item"]["output"])
        for event in server.of_type("conversation.item.create")
        if event["item"]["type"] == "function_call_output"
    ]


async def test_exposed_camera_seen_by_a_typed_request(
    hass: HomeAssistant,
    cameras: dict[str, StillCamera],
    realtime_server: RealtimeServer,
) -> None:
    """The model looks at the exposed garage camera: the scaled snapshot precedes the output."""
    entry = await _agent_entry(hass, realtime_server, **{CONF_IMAGE_MAX_SIDE: 512})
    tool, conversation_id = await _camera_tool(hass, realtime_server)
    realtime_server.script(
        ScriptedResponse(calls=[ScriptedCall(tool, json.dumps({"entity_id": GARAGE}))]),
        ScriptedResponse(text="The garage door is closed."),
    )
    result = await ask_agent(hass, "Is the garage door open?", conversation_id)
    assert result.response.speech["plain"]["speech"] == "The garage door is closed."
    assert cameras[GARAGE].snapshots == 1
    images = realtime_server.images()
    assert len(images) == 1
    with Image.open(io.BytesIO(images[0])) as picture:
        assert picture.format == "JPEG"
        assert picture.size == (512, 384)  # the configured long side, aspect kept
    created = [e["item"] for e in realtime_server.of_type("conversation.item.create")]
    image_at = next(
        i
        for i, item in enumerate(created)
        if item.get("role") == "user" and item["content"][0]["type"] == "input_image"
    )
    output_at = next(i for i, item in enumerate(created) if item["type"] == "function_call_output")
    assert image_at < output_at
    assert "Garage" in _outputs(realtime_server)[0]["data"]["result"]
    assert not realtime_server.violations
    vision = hass.data[DATA_HUB].vision
    assert vision.images_sent[entry.entry_id] == 1
    assert vision.parked == 0  # collected, not kept


@pytest.mark.parametrize("entity_id", [PORCH, "camera.Porch", "camera.nowhere", "light.kitchen"])
async def test_unexposed_or_unknown_camera_refused_alike(
    hass: HomeAssistant,
    cameras: dict[str, StillCamera],
    realtime_server: RealtimeServer,
    entity_id: str,
) -> None:
    """An unexposed camera gets the very answer an unknown entity gets; no snapshot is taken."""
    await _agent_entry(hass, realtime_server)
    tool, conversation_id = await _camera_tool(hass, realtime_server)
    realtime_server.script(
        ScriptedResponse(calls=[ScriptedCall(tool, json.dumps({"entity_id": entity_id}))]),
        ScriptedResponse(text="I can't see that."),
    )
    await ask_agent(hass, "Look at it", conversation_id)
    output = _outputs(realtime_server)[0]["data"]
    assert output["error"] == "unknown_entity"
    assert output["error_text"] == f"There is no exposed camera {entity_id.lower()!r}."
    assert cameras[PORCH].snapshots == 0
    assert realtime_server.images() == []
    # Asked about an id in another case, the exposure store records no new entity.
    assert all(stored.islower() for stored in hass.data[DATA_EXPOSED_ENTITIES].entities)


async def test_image_input_off_hides_the_tool(
    hass: HomeAssistant,
    cameras: dict[str, StillCamera],
    realtime_server: RealtimeServer,
) -> None:
    """With image input switched off the camera tool is not offered at all."""
    await _agent_entry(hass, realtime_server, **{CONF_IMAGE_INPUT: False})
    realtime_server.script(ScriptedResponse(text="Hi."))
    await ask_agent(hass, "Hello")
    offered = _offered(realtime_server)
    assert not [name for name in offered if name.endswith(LOOK_AT_CAMERA_TOOL)]
    assert [name for name in offered if name.endswith("list_exposed_entities")]


@pytest.mark.parametrize(
    ("arguments", "error"),
    [({"entity_id": BROKEN}, "snapshot_failed"), ({"camera": GARAGE}, "invalid_arguments")],
)
async def test_failed_snapshot_and_bad_arguments_are_explained(
    hass: HomeAssistant,
    cameras: dict[str, StillCamera],
    realtime_server: RealtimeServer,
    arguments: dict[str, str],
    error: str,
) -> None:
    """A camera without a picture, or arguments without entity_id: a clear error, no image."""
    await _agent_entry(hass, realtime_server)
    tool, conversation_id = await _camera_tool(hass, realtime_server)
    realtime_server.script(
        ScriptedResponse(calls=[ScriptedCall(tool, json.dumps(arguments))]),
        ScriptedResponse(text="Sorry."),
    )
    await ask_agent(hass, "Look", conversation_id)
    assert _outputs(realtime_server)[0]["data"]["error"] == error
    assert realtime_server.images() == []
    assert hass.data[DATA_HUB].vision.parked == 0


@pytest.mark.parametrize(
    ("apis", "offered"),
    [
        # Assist alone: the integration's LLM tools platform adds the tool to Assist.
        ([llm.LLM_API_ASSIST], f"{DOMAIN}__{LOOK_AT_CAMERA_TOOL}"),
        # The services API alone still offers it, under its own name.
        ([API_ID], LOOK_AT_CAMERA_TOOL),
    ],
)
async def test_one_api_is_enough_to_look(
    hass: HomeAssistant,
    cameras: dict[str, StillCamera],
    realtime_server: RealtimeServer,
    apis: list[str],
    offered: str,
) -> None:
    """Whichever of the two APIs the agent uses, it is offered the camera, and the picture comes."""
    await _agent_entry(hass, realtime_server, **{CONF_LLM_HASS_API: apis})
    tool, conversation_id = await _camera_tool(hass, realtime_server)
    assert tool == offered
    realtime_server.script(
        ScriptedResponse(calls=[ScriptedCall(tool, json.dumps({"entity_id": GARAGE}))]),
        ScriptedResponse(text="The garage door is closed."),
    )
    result = await ask_agent(hass, "Is the garage door open?", conversation_id)
    assert result.response.speech["plain"]["speech"] == "The garage door is closed."
    assert cameras[GARAGE].snapshots == 1
    assert len(realtime_server.images()) == 1


async def test_assist_offers_the_camera_only_to_our_agents(
    hass: HomeAssistant, cameras: dict[str, StillCamera], realtime_server: RealtimeServer
) -> None:
    """Another agent (or HA's MCP server) using Assist is never offered the tool: it would be
    told the snapshot is in its conversation when it is not. Nor is one of ours whose entry has
    image input off."""
    await _agent_entry(hass, realtime_server, **{CONF_LLM_HASS_API: [llm.LLM_API_ASSIST]})

    async def names(platform: str) -> set[str]:
        context = llm.LLMContext(
            platform=platform, context=None, language="en", assistant="conversation", device_id=None
        )
        instance = await llm.async_get_api(hass, llm.LLM_API_ASSIST, context)
        return {tool.name for tool in instance.tools}

    ours = f"{DOMAIN}__{LOOK_AT_CAMERA_TOOL}"
    assist_only = {CONF_LLM_HASS_API: [llm.LLM_API_ASSIST]}
    assert ours not in await names(DOMAIN)  # outside an agent's turn
    with agent_allowlist(assist_only, image_side=512):
        assert ours in await names(DOMAIN)
        assert ours not in await names("openai_conversation")
    with agent_allowlist(assist_only):  # image input off
        assert ours not in await names(DOMAIN)
