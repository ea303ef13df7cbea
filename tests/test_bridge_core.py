"""The speech bridge end to end: a simulated device, real Home Assistant, a scripted model."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp.test_utils import TestClient
from homeassistant.components import conversation
from homeassistant.core import HomeAssistant
from homeassistant.helpers import chat_session
import numpy as np
import pytest

from custom_components.openai_realtime_voice.bridge import BridgePhase
from custom_components.openai_realtime_voice.xiaozhi import ListenMode
from realtime_server import RealtimeServer, ScriptedCall, ScriptedResponse, tone
from simulator.playback import MAX_DECODE_PACKETS_IN_QUEUE
from simulator.speech import synthesize
from tests.agent_helpers import TURN_ON, set_settings
from tests.bridge_helpers import (
    appended_audio,
    bridge_of,
    bridged,
    correlation,
    device_state,
    disconnect,
    loud,
    say,
    tts_states,
    wait_tts,
)
from tests.device_helpers import wait_until

pytestmark = pytest.mark.usefixtures("lights")


async def test_spoken_turn_turns_on_the_light(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """Real speech reaches the model, its tool call runs, its reply plays in order."""
    speech = await synthesize("turn on the kitchen lights", 16000)
    realtime_server.user_transcript = "turn on the kitchen lights"
    reply = "Done. The kitchen lights are on."
    realtime_server.script(
        ScriptedResponse(calls=[ScriptedCall(TURN_ON, '{"name": "Kitchen Lights"}')]),
        ScriptedResponse(text=reply, audio=tone(1500), chunks=7),
    )
    device = await bridged(hass, client)
    state = device_state(hass, device)
    await device.send_audio(speech + bytes(32000))  # then 1 s of silence ends the turn
    await wait_until(lambda: realtime_server.responses_done >= 2, realtime_server)
    await wait_tts(device, "stop")
    await hass.async_block_till_done()

    assert hass.states.get("light.kitchen_lights").state == "on"
    # The speech arrived as 24 kHz PCM that matches what was spoken.
    received = np.frombuffer(appended_audio(realtime_server), dtype="<i2").astype(np.float64)
    spoken = np.frombuffer(speech, dtype="<i2").astype(np.float64)
    expected = np.interp(np.arange(len(spoken) * 3 // 2) * 2 / 3, np.arange(len(spoken)), spoken)
    assert correlation(expected, received) > 0.8
    # The reply: exact message order, valid Opus at 24 kHz / 60 ms, never over 40 queued.
    assert tts_states(device) == [
        "start",
        "sentence_start:Done.",
        "sentence_start:The kitchen lights are on.",
        "stop",
    ]
    assert device.user_lines == ["turn on the kitchen lights"]
    outcomes = device.downlink_outcomes()
    assert outcomes == {"played": 25}  # 1500 ms in 60 ms frames
    assert max(p.queue_depth for p in device.playback.downlink) < MAX_DECODE_PACKETS_IN_QUEUE
    assert len(device.playback.played_pcm) == 25 * 1440 * 2
    # The device listens again, the latency was measured, the turn is in the chat log.
    await wait_until(lambda: device.state.value == "listening", device)
    assert state.last_latency_ms is not None
    assert list(state.latencies) == [state.last_latency_ms]
    outputs = realtime_server.of_type("conversation.item.create")
    assert outputs[-1]["item"]["type"] == "function_call_output"
    bridge = bridge_of(hass, state)
    assert bridge.phase is BridgePhase.IDLE
    with (
        chat_session.async_get_chat_session(hass, bridge.turns.conversation_id) as session,
        conversation.async_get_chat_log(hass, session) as chat_log,
    ):
        roles = [content.role for content in chat_log.content]
        assert roles == ["system", "user", "assistant", "tool_result", "assistant"]
        assert chat_log.content[2].tool_calls[0].tool_name == TURN_ON
        assert chat_log.content[1].content == "turn on the kitchen lights"
        assert chat_log.content[4].content == reply
    await disconnect(hass, device, state)


async def test_abort_mid_reply_stops_at_once(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """`abort` -> `tts stop` at once, `response.cancel`, truncate within what was received."""
    hold = asyncio.Event()
    realtime_server.script(
        ScriptedResponse(text="Once upon a time.", audio=tone(3000), chunks=10, hold=hold)
    )
    device = await bridged(hass, client)
    state = device_state(hass, device)
    await say(device)
    await wait_until(lambda: device.downlink_outcomes().get("played", 0) >= 6, device)
    start = len(device.messages)
    loop = asyncio.get_running_loop()
    began = loop.time()
    await device.abort()
    await wait_tts(device, "stop", start)
    assert loop.time() - began < 0.1
    await realtime_server.wait_for("response.cancel")
    truncate = await realtime_server.wait_for("conversation.item.truncate")
    assert 0 < truncate["audio_end_ms"] <= 3000
    await wait_until(lambda: realtime_server.responses_done >= 1, realtime_server)
    played = device.downlink_outcomes().get("played", 0)
    assert played < 50
    assert appended_audio(realtime_server)  # the user spoke; the board types nothing
    assert bridge_of(hass, state).phase is not BridgePhase.RESPONDING
    await disconnect(hass, device, state)


async def test_device_tool_called_by_the_model(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """The device's MCP tools are offered with valid names and run when the model calls them."""
    device = await bridged(hass, client)
    state = device_state(hass, device)

    def offered() -> set[str]:
        return {tool["name"] for tool in realtime_server.session.session["tools"]}

    await wait_until(lambda: "device__self_audio_speaker_set_volume" in offered(), realtime_server)
    assert TURN_ON in offered()
    assert "device__self_reboot" not in offered()  # user-only tools stay with the user
    realtime_server.script(
        ScriptedResponse(
            calls=[
                ScriptedCall("device__self_audio_speaker_set_volume", '{"volume": 30}'),
                ScriptedCall("no_such_tool", "{}"),
                ScriptedCall(TURN_ON, "not json"),
            ]
        ),
        ScriptedResponse(text="Volume set.", audio=tone(300)),
    )
    await say(device)
    await wait_until(lambda: realtime_server.responses_done >= 2, realtime_server)
    await wait_tts(device, "stop")
    assert device.mcp.volume == 30
    outputs = [
        event["item"]["output"]
        for event in realtime_server.of_type("conversation.item.create")
        if event["item"]["type"] == "function_call_output"
    ]
    assert len(outputs) == 3
    assert '"error":false' in outputs[0]
    assert '"error":true' in outputs[1]
    assert "not a JSON object" in outputs[2]
    assert state.errors["tool"] == 2
    await disconnect(hass, device, state)


async def test_manual_mode_commits_on_listen_stop(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """Push-to-talk: no server turn detection, a commit and a response on `listen stop`."""
    realtime_server.script(ScriptedResponse(text="Yes?", audio=tone(120)))
    device = await bridged(hass, client)
    state = device_state(hass, device)
    await device.start_listening(ListenMode.MANUAL)

    def turn_detection() -> Any:
        return realtime_server.session.session["audio"]["input"]["turn_detection"]

    await wait_until(lambda: turn_detection() is None, realtime_server)
    await device.send_audio(loud(500))
    await device.stop_listening()
    await realtime_server.wait_for("input_audio_buffer.commit")
    await realtime_server.wait_for("response.create")
    await wait_tts(device, "stop")
    assert device.state.value == "idle"  # manual mode idles after the reply
    assert state.last_latency_ms is not None
    await device.start_listening(ListenMode.AUTO)
    await wait_until(lambda: turn_detection() is not None, realtime_server)
    await disconnect(hass, device, state)


async def test_too_short_push_to_talk_is_not_sent(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """A press under 100 ms: no commit the service would refuse, no billed reply to nothing."""
    realtime_server.script(ScriptedResponse(text="Yes?", audio=tone(120)))
    device = await bridged(hass, client)
    state = device_state(hass, device)
    await device.start_listening(ListenMode.MANUAL)
    await wait_until(
        lambda: realtime_server.session.session["audio"]["input"]["turn_detection"] is None,
        realtime_server,
    )
    await device.send_audio(loud(60))  # one frame
    await device.stop_listening()
    # The turn's end reaches the server: as a commit before, as a clear of the buffer now.
    await wait_until(
        lambda: bool(
            realtime_server.of_type("input_audio_buffer.clear")
            or realtime_server.of_type("input_audio_buffer.commit")
        ),
        realtime_server,
    )
    assert not realtime_server.of_type("input_audio_buffer.commit")
    await wait_until(lambda: bridge_of(hass, state).phase is BridgePhase.IDLE, state)
    # The next, real turn is the only one committed and answered.
    await device.start_listening(ListenMode.MANUAL)
    await device.send_audio(loud(500))
    await device.stop_listening()
    await realtime_server.wait_for("response.create")
    await wait_tts(device, "stop")
    assert len(realtime_server.of_type("input_audio_buffer.commit")) == 1
    assert len(realtime_server.of_type("response.create")) == 1
    await disconnect(hass, device, state)


async def test_speech_while_speaking_barges_in(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """Realtime mode: the user talks over the reply -> playback stops, the reply is truncated."""
    hold = asyncio.Event()
    realtime_server.script(
        ScriptedResponse(text="A long answer.", audio=tone(3000), chunks=10, hold=hold)
    )
    device = await bridged(hass, client, default_mode=ListenMode.REALTIME)
    state = device_state(hass, device)
    await say(device)
    await wait_until(lambda: device.downlink_outcomes().get("played", 0) >= 6, device)
    start = len(device.messages)
    await device.send_audio(loud(300))
    await wait_tts(device, "stop", start)
    truncate = await realtime_server.wait_for("conversation.item.truncate")
    assert 0 < truncate["audio_end_ms"] <= 3000
    assert not realtime_server.of_type("response.cancel")  # server VAD cancels by itself
    await disconnect(hass, device, state)


async def test_greeting_when_the_session_opens(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """The optional greeting is spoken first."""
    entry = hass.config_entries.async_entries("openai_realtime_voice")[0]
    set_settings(hass, entry, greeting="Hello there")
    realtime_server.script(ScriptedResponse(text="Hello there", audio=tone(120)))
    device = await bridged(hass, client)
    state = device_state(hass, device)
    create = await realtime_server.wait_for("response.create")
    assert "Hello there" in create["response"]["instructions"]
    await wait_tts(device, "stop")
    assert device.assistant_lines == ["Hello there"]
    await disconnect(hass, device, state)
