"""The Assist conversation agent, talking to the local Realtime server in a real Home Assistant."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from homeassistant.components import conversation
from homeassistant.components.homeassistant.exposed_entities import async_expose_entity
from homeassistant.config_entries import SOURCE_REAUTH
from homeassistant.const import STATE_OFF, STATE_ON
from homeassistant.core import HomeAssistant
from homeassistant.helpers import chat_session, intent, issue_registry as ir
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.openai_realtime_voice.const import (
    CONF_LLM_HASS_API,
    DOMAIN,
)
from realtime_server import RealtimeServer, ScriptedCall, ScriptedResponse
from tests.agent_helpers import AGENT, TURN_ON, agent_of, ask_agent, set_settings


def _user_texts(server: RealtimeServer) -> list[str]:
    return [
        event["item"]["content"][0]["text"]
        for event in server.of_type("conversation.item.create")
        if event["item"].get("role") == "user"
    ]


async def test_turn_on_the_kitchen_lights(
    hass: HomeAssistant, entry: MockConfigEntry, realtime_server: RealtimeServer
) -> None:
    """The model calls HassTurnOn, Home Assistant runs it and the model's answer is returned."""
    assert hass.states.get("light.kitchen_lights").state == STATE_OFF
    realtime_server.script(
        ScriptedResponse(calls=[ScriptedCall(TURN_ON, '{"name": "Kitchen Lights"}')]),
        ScriptedResponse(text="The kitchen lights are on."),
    )
    result = await ask_agent(hass, "Turn on the kitchen lights")
    await hass.async_block_till_done()
    assert result.response.response_type is intent.IntentResponseType.ACTION_DONE
    assert result.response.speech["plain"]["speech"] == "The kitchen lights are on."
    assert hass.states.get("light.kitchen_lights").state == STATE_ON
    assert hass.states.get("light.bedroom_lights").state == STATE_OFF

    # The session was a text session carrying Home Assistant's tools and prompt.
    update = realtime_server.of_type("session.update")[-1]["session"]
    assert update["output_modalities"] == ["text"]
    assert TURN_ON in {tool["name"] for tool in update["tools"]}
    assert update["instructions"]
    # The tool result went back as function_call_output, followed by one response.create.
    outputs = [
        event["item"]
        for event in realtime_server.of_type("conversation.item.create")
        if event["item"]["type"] == "function_call_output"
    ]
    assert len(outputs) == 1
    output = json.loads(outputs[0]["output"])
    assert output["error"] is False
    assert output["data"]["data"]["success"][0]["id"] == "light.kitchen_lights"
    assert len(realtime_server.of_type("response.create")) == 2


async def test_unexposed_entity_cannot_be_controlled(
    hass: HomeAssistant, entry: MockConfigEntry, realtime_server: RealtimeServer
) -> None:
    """A tool call on an entity not exposed to Assist fails and changes nothing."""
    async_expose_entity(hass, conversation.DOMAIN, "light.bedroom_lights", False)
    realtime_server.script(
        ScriptedResponse(calls=[ScriptedCall(TURN_ON, '{"name": "Bedroom Lights"}')]),
        ScriptedResponse(text="I can't control that."),
    )
    result = await ask_agent(hass, "Turn on the bedroom lights")
    await hass.async_block_till_done()
    assert result.response.speech["plain"]["speech"] == "I can't control that."
    assert hass.states.get("light.bedroom_lights").state == STATE_OFF
    output = json.loads(
        next(
            event["item"]["output"]
            for event in realtime_server.of_type("conversation.item.create")
            if event["item"]["type"] == "function_call_output"
        )
    )
    assert output["error"] is True


async def test_multi_turn_reuses_the_session(
    hass: HomeAssistant, entry: MockConfigEntry, realtime_server: RealtimeServer
) -> None:
    """Follow-ups go to the same Realtime session without re-sending the history."""
    connections = realtime_server.connections
    realtime_server.script(
        ScriptedResponse(text="Which room?"), ScriptedResponse(text="Done, kitchen it is.")
    )
    first = await ask_agent(hass, "Turn on the lights")
    assert first.continue_conversation is True
    second = await ask_agent(hass, "The kitchen", first.conversation_id)
    assert second.conversation_id == first.conversation_id
    assert second.response.speech["plain"]["speech"] == "Done, kitchen it is."
    assert second.continue_conversation is False
    assert realtime_server.connections == connections + 1
    assert _user_texts(realtime_server) == ["Turn on the lights", "The kitchen"]


async def test_reconnect_replays_the_history(
    hass: HomeAssistant, entry: MockConfigEntry, realtime_server: RealtimeServer
) -> None:
    """After the connection drops mid-conversation, the new session gets the history."""
    realtime_server.script(
        ScriptedResponse(text="Hello! What can I do?"), ScriptedResponse(text="It is 21 degrees.")
    )
    first = await ask_agent(hass, "Hi there")
    await realtime_server.drop()
    await realtime_server.wait_connections(realtime_server.connections + 1)
    await realtime_server.wait_for(
        "session.update", len(realtime_server.of_type("session.update")) + 1
    )
    since = len(realtime_server.received) - 1
    result = await ask_agent(hass, "How warm is it?", first.conversation_id)
    assert result.response.speech["plain"]["speech"] == "It is 21 degrees."
    texts = [
        event["item"]["content"][0]["text"]
        for event in realtime_server.received[since:]
        if event["type"] == "conversation.item.create" and event["item"].get("type") == "message"
    ]
    assert texts == ["Hi there", "Hello! What can I do?", "How warm is it?"]


async def test_new_session_rebuilds_history_from_the_chat_log(
    hass: HomeAssistant, entry: MockConfigEntry, realtime_server: RealtimeServer
) -> None:
    """A conversation whose session was closed continues on a new one with its history."""
    realtime_server.script(
        ScriptedResponse(calls=[ScriptedCall(TURN_ON, '{"name": "Kitchen Lights"}')]),
        ScriptedResponse(text="Kitchen lights on."),
        ScriptedResponse(text="You asked for the kitchen lights."),
    )
    first = await ask_agent(hass, "Kitchen lights on please")
    entry.runtime_data.agent_sessions[agent_of(entry).subentry_id].async_discard(
        first.conversation_id
    )
    await hass.async_block_till_done()
    connections = realtime_server.connections
    since = len(realtime_server.received)
    result = await ask_agent(hass, "What did I ask?", first.conversation_id)
    assert result.response.speech["plain"]["speech"] == "You asked for the kitchen lights."
    assert realtime_server.connections == connections + 1
    replayed = [
        event["item"]["type"]
        for event in realtime_server.received[since:]
        if event["type"] == "conversation.item.create"
    ]
    assert replayed == [
        "message",  # user: Kitchen lights on please
        "function_call",
        "function_call_output",
        "message",  # assistant: Kitchen lights on.
        "message",  # user: What did I ask?
    ]


async def test_text_streams_into_the_chat_log_before_the_response_ends(
    hass: HomeAssistant, entry: MockConfigEntry, realtime_server: RealtimeServer
) -> None:
    """The first text delta reaches the chat log while the response is still running."""
    hold = asyncio.Event()
    realtime_server.script(ScriptedResponse(text="Streaming works fine.", chunks=3, hold=hold))
    deltas: list[dict[str, Any]] = []
    first_delta = asyncio.Event()

    def listener(_chat_log: conversation.ChatLog, delta: dict[str, Any]) -> None:
        deltas.append(delta)
        if delta.get("content"):
            first_delta.set()

    with (
        chat_session.async_get_chat_session(hass) as session,
        conversation.async_get_chat_log(
            hass, session, chat_log_delta_listener=listener
        ) as chat_log,
    ):
        task = hass.async_create_task(ask_agent(hass, "Say something", session.conversation_id))
        await asyncio.wait_for(first_delta.wait(), 5)
        assert not task.done()
        assert not realtime_server.of_type("response.cancel")
        hold.set()
        result = await task
        assert chat_log.content[-1].content == "Streaming works fine."
    assert result.response.speech["plain"]["speech"] == "Streaming works fine."
    assert "".join(d.get("content", "") for d in deltas) == "Streaming works fine."


async def test_agent_runs_in_an_assist_pipeline(
    hass: HomeAssistant, entry: MockConfigEntry, realtime_server: RealtimeServer, hass_ws_client
) -> None:
    """The agent can be chosen as a pipeline's conversation engine."""
    assert await async_setup_component(hass, "assist_pipeline", {})
    client = await hass_ws_client(hass)
    await client.send_json_auto_id(
        {
            "type": "assist_pipeline/pipeline/create",
            "conversation_engine": AGENT,
            "conversation_language": "en",
            "language": "en",
            "name": "Realtime",
            "stt_engine": None,
            "stt_language": None,
            "tts_engine": None,
            "tts_language": None,
            "tts_voice": None,
            "wake_word_entity": None,
            "wake_word_id": None,
        }
    )
    msg = await client.receive_json()
    assert msg["success"], msg
    pipeline_id = msg["result"]["id"]

    realtime_server.script(ScriptedResponse(text="Hello from the pipeline."))
    await client.send_json_auto_id(
        {
            "type": "assist_pipeline/run",
            "start_stage": "intent",
            "end_stage": "intent",
            "input": {"text": "Hello"},
            "pipeline": pipeline_id,
        }
    )
    msg = await client.receive_json()
    assert msg["success"]
    speech = None
    while True:
        msg = await client.receive_json()
        event = msg["event"]
        if event["type"] == "intent-end":
            speech = event["data"]["intent_output"]["response"]["speech"]["plain"]["speech"]
        if event["type"] == "run-end":
            break
    assert speech == "Hello from the pipeline."


async def test_auth_failure_starts_reauth(
    hass: HomeAssistant, entry: MockConfigEntry, realtime_server: RealtimeServer
) -> None:
    """A rejected key on a new session answers with an error and asks for a new key."""
    realtime_server.reject_auth = True
    result = await ask_agent(hass, "Hello")
    assert result.response.response_type is intent.IntentResponseType.ERROR
    assert "rejected the API key" in result.response.speech["plain"]["speech"]
    await hass.async_block_till_done()
    flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert [flow["context"]["source"] for flow in flows] == [SOURCE_REAUTH]


async def test_quota_exhausted_creates_a_repair_issue(
    hass: HomeAssistant, entry: MockConfigEntry, realtime_server: RealtimeServer
) -> None:
    """No quota: a spoken error and a repair issue, cleared by the next good answer."""
    realtime_server.on_connect_error = {
        "type": "insufficient_quota",
        "code": "insufficient_quota",
        "message": "You exceeded your current quota.",
    }
    result = await ask_agent(hass, "Hello")
    assert result.response.response_type is intent.IntentResponseType.ERROR
    assert "quota" in result.response.speech["plain"]["speech"]
    issue_id = f"quota_exceeded_{entry.entry_id}"
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is not None

    realtime_server.on_connect_error = None
    realtime_server.script(ScriptedResponse(text="Back again."))
    result = await ask_agent(hass, "Hello")
    assert result.response.speech["plain"]["speech"] == "Back again."
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is None


@pytest.mark.parametrize("failure", ["failed", "drop"])
async def test_failure_mid_response_then_next_request_works(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    realtime_server: RealtimeServer,
    failure: str,
) -> None:
    """A response that fails or loses its connection gives an error; the next one works."""
    if failure == "failed":
        realtime_server.script(ScriptedResponse(text="Half an ans", status="failed"))
        result = await ask_agent(hass, "Hello")
    else:
        hold = asyncio.Event()
        realtime_server.script(ScriptedResponse(text="Half an ans", hold=hold))
        task = hass.async_create_task(ask_agent(hass, "Hello"))
        await realtime_server.wait_for("response.create")
        await asyncio.sleep(0.05)
        await realtime_server.drop()
        result = await task
    assert result.response.response_type is intent.IntentResponseType.ERROR

    realtime_server.script(ScriptedResponse(text="All good now."))
    result = await ask_agent(hass, "Hello again", result.conversation_id)
    assert result.response.speech["plain"]["speech"] == "All good now."


async def test_chat_only_without_llm_api(
    hass: HomeAssistant, entry: MockConfigEntry, realtime_server: RealtimeServer
) -> None:
    """Without LLM APIs the session carries no tools and the agent cannot control the home."""
    set_settings(hass, entry, **{CONF_LLM_HASS_API: None})
    await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    realtime_server.script(ScriptedResponse(text="Just chatting."))
    result = await ask_agent(hass, "Hi")
    assert result.response.speech["plain"]["speech"] == "Just chatting."
    assert realtime_server.of_type("session.update")[-1]["session"]["tools"] == []
    state = hass.states.get(AGENT)
    assert state is not None
    assert not state.attributes.get("supported_features")
