"""A device's tool calls through the turn engine: recorded, replayed, bounded, never stuck."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
import json
import logging
from typing import Any

from aiohttp.test_utils import TestClient
from homeassistant.components import conversation
from homeassistant.core import HomeAssistant
from homeassistant.helpers import chat_session
import pytest

from custom_components.openai_realtime_voice.bridge import BridgePhase
from custom_components.openai_realtime_voice.history import async_replay
from custom_components.openai_realtime_voice.realtime import (
    Modality,
    RealtimeClient,
    RealtimeEndpoint,
    SessionConfig,
)
from custom_components.openai_realtime_voice.tools import ToolNames
from custom_components.openai_realtime_voice.turn import MAX_TOOL_ROUNDS
from realtime_server import RealtimeServer, ScriptedCall, ScriptedResponse, tone
from tests.agent_helpers import TURN_ON
from tests.bridge_helpers import bridge_of, bridged, device_state, say, wait_tts
from tests.device_helpers import release_devices, wait_until

pytestmark = pytest.mark.usefixtures("lights")

SET_VOLUME = "device__self_audio_speaker_set_volume"


@pytest.fixture(autouse=True)
async def _release(hass: HomeAssistant, client: TestClient) -> AsyncGenerator[None]:
    """Close every simulated device, also when a test fails half-way."""
    yield
    await release_devices(hass, client)


def _outputs(realtime_server: RealtimeServer) -> list[dict[str, Any]]:
    return [
        json.loads(event["item"]["output"])
        for event in realtime_server.of_type("conversation.item.create")
        if event["item"]["type"] == "function_call_output"
    ]


def _chat_log_content(hass: HomeAssistant, conversation_id: str | None) -> list[Any]:
    with (
        chat_session.async_get_chat_session(hass, conversation_id) as session,
        conversation.async_get_chat_log(hass, session) as chat_log,
    ):
        return list(chat_log.content)


async def test_device_tool_calls_are_recorded_and_replayed(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """Tools Home Assistant ran for a device are ordinary tool calls a new session gets back."""
    device = await bridged(hass, client)
    state = device_state(hass, device)
    realtime_server.script(
        ScriptedResponse(
            calls=[
                ScriptedCall(TURN_ON, '{"name": "Kitchen Lights"}', call_id="call_light"),
                ScriptedCall(SET_VOLUME, '{"volume": 40}', call_id="call_volume"),
            ]
        ),
        ScriptedResponse(text="Done.", audio=tone(300)),
    )
    realtime_server.user_transcript = "light on and volume 40"
    await wait_until(lambda: device.mic_active, device)
    await say(device)
    await wait_until(lambda: realtime_server.responses_done >= 2, realtime_server)
    await wait_tts(device, "stop")
    assert device.mcp.volume == 40
    assert hass.states.get("light.kitchen_lights").state == "on"

    content = _chat_log_content(hass, bridge_of(hass, state).turns.conversation_id)
    assert [entry.role for entry in content] == [
        "system",
        "user",
        "assistant",
        "tool_result",
        "tool_result",
        "assistant",
    ]
    calls = content[2].tool_calls
    assert [(call.tool_name, call.external) for call in calls] == [
        (TURN_ON, False),
        ("device__self.audio_speaker.set_volume", False),
    ]
    assert [entry.tool_call_id for entry in content[3:5]] == ["call_light", "call_volume"]
    assert not any(entry.result.error for entry in content[3:5])

    # A fresh session (the typed agent taking the conversation over) gets the calls back.
    before = len(realtime_server.of_type("conversation.item.create"))
    fresh = RealtimeClient(
        RealtimeEndpoint(
            api_key=realtime_server.api_key, model="gpt-realtime", base_url=realtime_server.url
        ),
        SessionConfig(output_modality=Modality.TEXT, turn_detection=None),
    )
    await fresh.connect()
    try:
        await async_replay(fresh, content, ToolNames())
        await wait_until(
            lambda: len(realtime_server.of_type("conversation.item.create")) >= before + 6,
            realtime_server,
        )
    finally:
        await fresh.close()
    items = [event["item"] for event in realtime_server.of_type("conversation.item.create")]
    replayed = items[before:]
    assert [item["type"] for item in replayed] == [
        "message",
        "function_call",
        "function_call",
        "function_call_output",
        "function_call_output",
        "message",
    ]
    assert replayed[1]["name"] == TURN_ON
    assert replayed[2]["name"] == SET_VOLUME
    assert json.loads(replayed[2]["arguments"]) == {"volume": 40}
    assert [item["call_id"] for item in replayed[3:5]] == ["call_light", "call_volume"]


@pytest.mark.parametrize("rounds", [MAX_TOOL_ROUNDS, 2])
async def test_a_model_that_keeps_calling_tools_is_stopped(
    hass: HomeAssistant,
    client: TestClient,
    realtime_server: RealtimeServer,
    caplog: pytest.LogCaptureFixture,
    rounds: int,
) -> None:
    """The one round limit holds on the device path: the turn ends, the device listens again.

    Also with a lower limit, so the turn engine's limit is the one that stops the model.
    """
    device = await bridged(hass, client)
    state = device_state(hass, device)
    engine = bridge_of(hass, state).turns.tool_loop
    assert engine.max_rounds == MAX_TOOL_ROUNDS
    engine.max_rounds = rounds
    realtime_server.script(
        *(
            ScriptedResponse(
                audio=tone(60), calls=[ScriptedCall(TURN_ON, '{"name": "Kitchen Lights"}')]
            )
            for _ in range(rounds + 1)
        )
    )
    creates = len(realtime_server.of_type("response.create"))
    with caplog.at_level(logging.WARNING):
        realtime_server.user_transcript = "keep going"
        await wait_until(lambda: device.mic_active, device)
        await say(device)
        await wait_until(lambda: len(_outputs(realtime_server)) >= rounds + 1, realtime_server)
        await wait_until(lambda: bridge_of(hass, state).phase is BridgePhase.LISTENING, state)
    await wait_tts(device, "stop")
    await asyncio.sleep(0.2)  # no further response is asked for
    # One response per answered round (the service's turn detection created the first); the
    # last round's outputs are added only.
    assert len(realtime_server.of_type("response.create")) - creates == rounds
    assert len(_outputs(realtime_server)) == rounds + 1
    assert f"called tools in {rounds + 1} responses in a row" in caplog.text
    assert bridge_of(hass, state).phase is BridgePhase.LISTENING  # not stuck: the device listens
    assert device.state.value == "listening"

    # The next user turn starts counting anew and is answered.
    realtime_server.script(ScriptedResponse(text="Hello again.", audio=tone(120)))
    start = len(device.messages)
    realtime_server.user_transcript = "hello"
    await wait_until(lambda: device.mic_active, device)
    await say(device)
    await wait_tts(device, "stop", start)
    assert len(realtime_server.of_type("response.create")) - creates == rounds
    assert realtime_server.responses_done >= rounds + 2


async def test_device_tool_errors_and_timeouts_are_results(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """A device tool that fails or never answers gives the model an error result in time."""
    device = await bridged(hass, client)
    state = device_state(hass, device)
    turns = bridge_of(hass, state).turns
    assert turns.tool_loop.tools is not None
    turns.tool_loop.tools.timeout = 0.3  # TOOL_TIMEOUT, shortened for the test

    realtime_server.script(
        ScriptedResponse(calls=[ScriptedCall(SET_VOLUME, '{"volume": 500}')]),  # out of range
        ScriptedResponse(text="Sorry.", audio=tone(120)),
    )
    realtime_server.user_transcript = "set the volume to 500"
    await wait_until(lambda: device.mic_active, device)
    await say(device)
    await wait_until(lambda: realtime_server.responses_done >= 2, realtime_server)
    await wait_tts(device, "stop")
    (refused,) = _outputs(realtime_server)
    assert refused["error"] is True
    assert "out of range" in refused["data"]["error_text"]

    device.mcp.mute = True  # the device stops answering MCP requests
    realtime_server.script(
        ScriptedResponse(calls=[ScriptedCall("device__self_get_device_status", "{}")]),
        ScriptedResponse(text="The device does not answer.", audio=tone(120)),
    )
    start = len(device.messages)
    realtime_server.user_transcript = "how is the battery"
    await wait_until(lambda: device.mic_active, device)
    await say(device)
    await wait_until(lambda: realtime_server.responses_done >= 4, realtime_server)
    await wait_tts(device, "stop", start)
    timed_out = _outputs(realtime_server)[1]
    assert timed_out["error"] is True
    assert timed_out["data"] == {"error": "TimeoutError", "error_text": "timed out after 0.3 s"}
    assert state.errors["tool"] == 2
    content = _chat_log_content(hass, turns.conversation_id)
    assert [entry.role for entry in content][1:] == [
        "user",
        "assistant",
        "tool_result",
        "assistant",
        "user",
        "assistant",
        "tool_result",
        "assistant",
    ]
