"""The pool of Realtime sessions behind the Assist agent, and its unhappy paths."""

from __future__ import annotations

from datetime import timedelta
import functools
import json

from homeassistant.components import conversation
from homeassistant.core import HomeAssistant
from homeassistant.helpers import intent, llm
import homeassistant.util.dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed

from custom_components.openai_realtime_voice import agent
from custom_components.openai_realtime_voice.agent import (
    IDLE_TIMEOUT,
    RATE_LIMIT_RETRIES,
    AgentSessions,
)
from custom_components.openai_realtime_voice.const import CONF_LLM_HASS_API
from custom_components.openai_realtime_voice.realtime import ClientOptions, RealtimeClient
from custom_components.openai_realtime_voice.tools import ToolNames
from realtime_server import RealtimeServer, ScriptedCall, ScriptedResponse
from tests.agent_helpers import AGENT, TURN_ON, agent_of, ask_agent, set_settings


async def test_pool_closes_the_least_recently_used_session(
    hass: HomeAssistant, entry: MockConfigEntry, realtime_server: RealtimeServer
) -> None:
    """A full pool closes its least recently used session; the others stay open."""
    pool = AgentSessions(hass, lambda: entry.runtime_data.endpoint, max_sessions=2)
    entry.runtime_data.agent_sessions[agent_of(entry).subentry_id] = pool
    realtime_server.script(*(ScriptedResponse(text=f"Answer {i}") for i in range(4)))
    first = await ask_agent(hass, "one")
    second = await ask_agent(hass, "two")
    await ask_agent(hass, "one again", first.conversation_id)  # first is now the most recent
    third = await ask_agent(hass, "three")
    await hass.async_block_till_done()
    assert len(pool) == 2
    assert pool.get(second.conversation_id) is None
    assert pool.get(first.conversation_id) is not None
    assert pool.get(third.conversation_id) is not None
    await pool.async_close()
    assert len(pool) == 0


async def test_idle_session_is_closed(
    hass: HomeAssistant, entry: MockConfigEntry, realtime_server: RealtimeServer
) -> None:
    """A session unused for the idle timeout is closed."""
    pool = entry.runtime_data.agent_sessions[agent_of(entry).subentry_id]
    realtime_server.script(ScriptedResponse(text="Hi"))
    result = await ask_agent(hass, "hello")
    session = pool.get(result.conversation_id)
    assert session is not None
    assert session.client is not None
    assert session.client.connected
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=IDLE_TIMEOUT + 1))
    await hass.async_block_till_done()
    assert pool.get(result.conversation_id) is None
    assert session.client is None


async def test_too_many_tool_rounds_ends_with_an_error(
    hass: HomeAssistant, entry: MockConfigEntry, realtime_server: RealtimeServer
) -> None:
    """A model that keeps calling tools is stopped after the loop limit."""
    realtime_server.script(
        *(
            ScriptedResponse(calls=[ScriptedCall(TURN_ON, '{"name": "Kitchen Lights"}')])
            for _ in range(12)
        )
    )
    result = await ask_agent(hass, "Keep going")
    assert result.response.response_type is intent.IntentResponseType.ERROR
    assert "too many tools" in result.response.speech["plain"]["speech"]
    assert len(realtime_server.of_type("response.create")) == 11


RATE_LIMITED = {
    "type": "requests",
    "code": "rate_limit_exceeded",
    "message": "Rate limit reached for requests.",
}


@pytest.fixture
def quick_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Agent sessions back off for milliseconds instead of half a second and more."""
    options = ClientOptions(backoff_base=0.01, backoff_max=0.02)
    monkeypatch.setattr(agent, "RealtimeClient", functools.partial(RealtimeClient, options=options))


@pytest.mark.usefixtures("quick_backoff")
async def test_rate_limited_response_is_asked_for_again(
    hass: HomeAssistant, entry: MockConfigEntry, realtime_server: RealtimeServer
) -> None:
    """A response the service failed for a rate limit is asked for again after a backoff."""
    realtime_server.script(
        ScriptedResponse(status="failed", error=RATE_LIMITED),
        ScriptedResponse(status="failed", error=RATE_LIMITED),
        ScriptedResponse(text="Here you are."),
    )
    result = await ask_agent(hass, "Hello")
    assert result.response.speech["plain"]["speech"] == "Here you are."
    assert len(realtime_server.of_type("response.create")) == 3


@pytest.mark.usefixtures("quick_backoff")
async def test_rate_limit_retries_are_bounded(
    hass: HomeAssistant, entry: MockConfigEntry, realtime_server: RealtimeServer
) -> None:
    """A rate limit that does not lift ends the turn with an error after the retries."""
    realtime_server.script(
        *(
            ScriptedResponse(status="failed", error=RATE_LIMITED)
            for _ in range(RATE_LIMIT_RETRIES + 2)
        )
    )
    result = await ask_agent(hass, "Hello")
    assert result.response.response_type is intent.IntentResponseType.ERROR
    assert len(realtime_server.of_type("response.create")) == RATE_LIMIT_RETRIES + 1


async def test_arguments_that_are_not_a_json_object_are_refused(
    hass: HomeAssistant, entry: MockConfigEntry, realtime_server: RealtimeServer
) -> None:
    """A call with broken arguments is not run; the model is told why and may try again."""
    realtime_server.script(
        ScriptedResponse(calls=[ScriptedCall(TURN_ON, "{not json")]),
        ScriptedResponse(calls=[ScriptedCall(TURN_ON, "[1, 2]")]),
        ScriptedResponse(text="Sorry."),
    )
    result = await ask_agent(hass, "Do it")
    assert result.response.speech["plain"]["speech"] == "Sorry."
    outputs = [
        json.loads(event["item"]["output"])
        for event in realtime_server.of_type("conversation.item.create")
        if event["item"]["type"] == "function_call_output"
    ]
    assert len(outputs) == 2
    assert all(output["error"] for output in outputs)
    assert [output["data"]["error"] for output in outputs] == ["InvalidArguments"] * 2
    assert hass.states.get("light.kitchen_lights").state == "off"


async def test_unknown_llm_api_is_reported(
    hass: HomeAssistant, entry: MockConfigEntry, realtime_server: RealtimeServer
) -> None:
    """An LLM API that no longer exists gives Home Assistant's error, without a session."""
    set_settings(hass, entry, **{CONF_LLM_HASS_API: ["removed_api"]})
    await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    connections = realtime_server.connections
    result = await ask_agent(hass, "Hello")
    assert result.response.response_type is intent.IntentResponseType.ERROR
    assert realtime_server.connections == connections


async def test_agent_accepts_every_language(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    """Realtime models are multilingual."""
    info = conversation.async_get_agent_info(hass, AGENT)
    assert info is not None
    assert info.supports_streaming is True
    agent = hass.data[conversation.DATA_COMPONENT].get_entity(AGENT)
    assert agent.supported_languages == "*"


def test_tool_names_are_made_valid_and_unique() -> None:
    """Names with dots or too long become valid function names that map back."""
    names = ToolNames()
    assert names.add("intent__HassTurnOn") == "intent__HassTurnOn"
    assert names.add("self.audio_speaker.set_volume") == "self_audio_speaker_set_volume"
    assert names.add("self_audio_speaker.set_volume") == "self_audio_speaker_set_volume_2"
    assert names.add("self.audio_speaker.set_volume") == "self_audio_speaker_set_volume"
    long_name = "x" * 80
    assert len(names.add(long_name)) == 64
    assert names.add("") == "tool"
    assert names.add_all(["a.b", "intent__HassTurnOn"]) == ["a_b", "intent__HassTurnOn"]
    assert names.original("self_audio_speaker_set_volume_2") == "self_audio_speaker.set_volume"
    assert names.original("unknown") is None
    assert llm.LLM_API_ASSIST == "assist"
