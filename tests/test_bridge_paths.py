"""The speech bridge's less travelled paths: failures, races with its own start, odd inputs.

Each case runs a paired simulated device through real Home Assistant against the scripted
Realtime server. Where no real input can produce a fault (a codec that will not load, a send
that fails on a healthy session), one function is replaced to inject it; the test says so.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from typing import Any

from aiohttp.test_utils import TestClient
from homeassistant.components import conversation
from homeassistant.components.assist_satellite.entity import AssistSatelliteState
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import chat_session
import pytest

from custom_components.openai_realtime_voice import turn as turn_engine
from custom_components.openai_realtime_voice.audio import OpusNotFoundError, load_opuslib
from custom_components.openai_realtime_voice.bridge import (
    BridgePath,
    BridgePhase,
    RealtimeEngine,
    Speaker,
    core as bridge_core,
)
from custom_components.openai_realtime_voice.bridge.core import BridgeBusyError
from custom_components.openai_realtime_voice.const import DOMAIN
from custom_components.openai_realtime_voice.realtime import (
    RealtimeError,
    RealtimeSessionClosed,
)
from custom_components.openai_realtime_voice.xiaozhi import (
    DeviceEvent,
    ListenDetect,
    ListenMode,
    ListenStopped,
    encode_object,
)
from realtime_server import RealtimeServer, ScriptedCall, ScriptedResponse, tone
from simulator.changes import Recorded
from simulator.device import DeviceSimulator
from tests.agent_helpers import TURN_ON, set_settings
from tests.bridge_helpers import (
    appended_audio,
    bridge_of,
    bridged,
    device_state,
    disconnect,
    loud,
    satellite_of,
    satellite_state,
    tts_states,
    wait_tts,
)
from tests.device_helpers import device_client, finished, live, pair, simulator, wait_until

OUR_LOGGER = "custom_components.openai_realtime_voice"
QUOTA = {
    "type": "insufficient_quota",
    "code": "insufficient_quota",
    "message": "You exceeded your current quota.",
}


@pytest.fixture(autouse=True)
def _client_options(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bridges retry Realtime every 50 ms, and allow one tool round per user turn."""
    monkeypatch.setattr(turn_engine, "MAX_TOOL_ROUNDS", 1)
    monkeypatch.setattr(RealtimeEngine, "retry_delays", (0.05,))


@pytest.fixture
async def client(
    hass: HomeAssistant,
    hass_client_no_auth: Any,
    realtime_server: RealtimeServer,
    lights: None,
    caplog: pytest.LogCaptureFixture,
) -> TestClient:
    """A loaded entry with lights, and an HTTP client for the simulated devices."""
    caplog.set_level(logging.DEBUG, logger=OUR_LOGGER)
    return await device_client(hass, hass_client_no_auth, realtime_server)


def warnings(caplog: pytest.LogCaptureFixture, text: str) -> list[logging.LogRecord]:
    """Our WARNING records containing `text`."""
    return [
        r
        for r in caplog.records
        if r.name.startswith(OUR_LOGGER) and r.levelno == logging.WARNING and text in r.getMessage()
    ]


async def listen_detect(device: DeviceSimulator, text: str) -> None:
    """A typed request in `listen detect`, whatever the device's state, as clients that are no
    stock board send it (the firmware only ever sends its wake word there)."""
    await device.send_raw_text(
        encode_object(ListenDetect(text, session_id=device.session_id).to_dict())
    )


async def held_reply(device: DeviceSimulator, server: RealtimeServer, **kwargs: Any) -> None:
    """Start a long reply the server holds open, and wait until the device plays it."""
    server.script(
        ScriptedResponse(
            text="A long answer.", audio=tone(3000), chunks=10, hold=asyncio.Event(), **kwargs
        )
    )
    await listen_detect(device, "tell me something")
    await wait_until(lambda: device.downlink_outcomes().get("played", 0) >= 3, device)


async def typed_turn(device: DeviceSimulator, server: RealtimeServer, text: str = "hi") -> None:
    """One complete typed turn: `listen detect` -> reply -> `tts stop`."""
    server.script(ScriptedResponse(text="Ok.", audio=tone(120)))
    start = len(device.messages)
    await listen_detect(device, text)
    await wait_tts(device, "stop", start)


def typed_texts(server: RealtimeServer) -> list[str]:
    """The user texts the bridge added to the conversation."""
    return [
        part["text"]
        for event in server.of_type("conversation.item.create")
        for part in event["item"].get("content") or []
        if part.get("type") == "input_text"
    ]


# --- start-up ---------------------------------------------------------------------------------


async def test_missing_opus_alerts_the_device(
    hass: HomeAssistant,
    client: TestClient,
    realtime_server: RealtimeServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """No libopus: the device shows an alert once it said hello; no session is opened.

    libopus is loaded once per process, so its absence is injected by replacing the loader.
    """

    def no_opus() -> None:
        raise OpusNotFoundError("libopus not found", platform_hint="apt install libopus0")

    monkeypatch.setattr(bridge_core, "load_opuslib", no_opus)
    device = simulator(client)
    await pair(hass, device)
    connections = realtime_server.connections
    await device.open_audio_channel()
    state = device_state(hass, device)
    await wait_until(lambda: bool(device.alerts), device)
    assert device.alerts[0].status == "Error"
    assert "Opus is not available: libopus not found" in device.alerts[0].message
    assert state.errors["opus"] == 1
    assert len(warnings(caplog, "Opus is not available")) == 1
    assert realtime_server.connections == connections
    # Actions on the device fail at once instead of waiting for a codec that never comes.
    with pytest.raises(HomeAssistantError) as err:
        await hass.services.async_call(
            DOMAIN,
            "speak",
            {"entity_id": satellite_of(hass, state).entity_id, "message": "Dinner is ready"},
            blocking=True,
        )
    assert err.value.translation_key == "realtime_unavailable"
    assert "Opus is not available" in str(err.value.__cause__)
    await device.close()
    await wait_until(lambda: bridge_of(hass, state) is None, state)


async def test_actions_waiting_for_the_hello_fail_when_the_device_leaves(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """An action sent before the device's hello fails cleanly if the device leaves first."""
    device = simulator(client)
    await pair(hass, device)
    state = device_state(hass, device)
    session = await device.http()
    async with session.ws_connect(
        str(device.nvs_websocket["url"]), headers=device.ws_headers()
    ) as ws:  # connected, but no hello yet
        await wait_until(lambda: bridge_of(hass, state) is not None, state)
        speak = hass.async_create_task(bridge_of(hass, state).async_say("hello"))
        await asyncio.sleep(0)
        assert not speak.done()
        await ws.close()
    with pytest.raises(RealtimeSessionClosed):
        await speak
    await wait_until(lambda: bridge_of(hass, state) is None, state)
    await device.close()


async def test_push_to_talk_pressed_before_the_bridge_is_ready(
    hass: HomeAssistant,
    client: TestClient,
    realtime_server: RealtimeServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A push-to-talk turn while the codec still loads: its audio is dropped, not committed,
    and the session then opens without server turn detection (manual mode).

    A slow codec load is injected by making the loader wait for the test.
    """
    release = threading.Event()

    def slow_opus() -> Any:
        release.wait(10)
        return load_opuslib()

    monkeypatch.setattr(bridge_core, "load_opuslib", slow_opus)
    try:
        device = simulator(client)
        await pair(hass, device)
        await device.open_audio_channel()
        events: Recorded[DeviceEvent] = Recorded()
        live(hass, device.mac).async_add_listener(events.append)
        await device.start_listening(ListenMode.MANUAL)
        await device.send_audio(loud(300))
        await device.stop_listening()
        await wait_until(lambda: any(isinstance(e, ListenStopped) for e in events), events)
    finally:
        release.set()
    state = device_state(hass, device)
    await wait_until(
        lambda: bridge_of(hass, state) is not None and bridge_of(hass, state).client is not None,
        state,
    )
    await wait_until(lambda: bridge_of(hass, state).client.connected, state)
    assert realtime_server.session.session["audio"]["input"]["turn_detection"] is None
    assert not realtime_server.of_type("input_audio_buffer.append")
    assert not realtime_server.of_type("input_audio_buffer.commit")
    # The next push-to-talk turn goes through as usual.
    realtime_server.script(ScriptedResponse(text="Yes?", audio=tone(120)))
    await device.start_listening(ListenMode.MANUAL)
    await device.send_audio(loud(300))
    await device.stop_listening()
    await wait_tts(device, "stop")
    assert len(realtime_server.of_type("input_audio_buffer.commit")) == 1
    await disconnect(hass, device, state)


async def test_input_while_a_failing_session_opens_is_dropped(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """Speech and a typed turn wait while the first session opens; when that attempt fails
    (the Assist pipeline takes over) they are dropped and never reach a later session."""
    device = simulator(client)
    await pair(hass, device)
    connections = realtime_server.connections
    realtime_server.stall = True
    await device.open_audio_channel()
    state = device_state(hass, device)
    # the bridge is connecting
    await wait_until(lambda: realtime_server.connections > connections, realtime_server)
    bridge = bridge_of(hass, state)
    assert bridge.client is None
    assert bridge.path is BridgePath.REALTIME
    await device.start_listening()
    sent = await device.send_audio(loud(600))
    await listen_detect(device, "hello there")
    connection = live(hass, device.mac)
    await wait_until(lambda: connection.audio_packets_received >= sent, connection)
    assert bridge.realtime.uplink.queued  # kept for the session being opened
    realtime_server.stall = False
    await realtime_server.drop()  # the stalled attempt fails; the next one succeeds
    await wait_until(lambda: bridge.client is not None and bridge.client.connected, bridge.device)
    await wait_until(lambda: not bridge.realtime.uplink.queued, bridge.device)
    typed = [t for t in bridge.tasks if t.get_name().endswith("typed turn")]
    await finished(typed, "the typed turn waiting for the failed session is dropped")
    assert not realtime_server.of_type("input_audio_buffer.append")
    assert typed_texts(realtime_server) == []
    await typed_turn(device, realtime_server, "are you there")
    assert typed_texts(realtime_server) == ["are you there"]
    await disconnect(hass, device, state)


async def test_unknown_llm_api_still_opens_a_session(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """A configured LLM API that no longer exists: counted, and the session runs without it."""
    entry = hass.config_entries.async_entries(DOMAIN)[0]
    set_settings(hass, entry, llm_hass_api=["no_such_api"])
    await hass.async_block_till_done()
    device = await bridged(hass, client)
    state = device_state(hass, device)
    assert state.errors["llm_api"] >= 1
    offered = {tool["name"] for tool in realtime_server.session.session["tools"]}
    assert TURN_ON not in offered
    await typed_turn(device, realtime_server)
    await disconnect(hass, device, state)


# --- device events ----------------------------------------------------------------------------


async def test_wake_word_while_speaking_cuts_the_reply(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """`listen detect` during a reply barges in (`tts stop`, cancel); an empty one is ignored."""
    device = await bridged(hass, client)
    state = device_state(hass, device)
    await held_reply(device, realtime_server)
    start = len(device.messages)
    await listen_detect(device, "hey")
    await wait_tts(device, "stop", start)
    await realtime_server.wait_for("response.cancel")
    await wait_until(lambda: realtime_server.responses_done == 1, realtime_server)
    assert typed_texts(realtime_server) == ["tell me something"]  # "hey" only interrupted
    # Not speaking: a blank wake word text and a `listen stop` in auto mode start nothing.
    await listen_detect(device, "   ")
    await device.stop_listening()
    await typed_turn(device, realtime_server, "next")
    assert typed_texts(realtime_server) == ["tell me something", "next"]
    assert not realtime_server.of_type("input_audio_buffer.commit")
    assert len(realtime_server.of_type("response.create")) == 2
    await disconnect(hass, device, state)


async def test_push_to_talk_of_whole_batches_is_sent_whole(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """300 ms of push-to-talk (three whole 100 ms batches): all appended, one commit, one reply."""
    realtime_server.script(ScriptedResponse(text="Yes?", audio=tone(120)))
    device = await bridged(hass, client)
    state = device_state(hass, device)
    await device.start_listening(ListenMode.MANUAL)
    await wait_until(
        lambda: realtime_server.session.session["audio"]["input"]["turn_detection"] is None,
        realtime_server,
    )
    assert await device.send_audio(loud(300)) == 5
    await device.stop_listening()
    await realtime_server.wait_for("input_audio_buffer.commit")
    await wait_tts(device, "stop")
    assert len(appended_audio(realtime_server)) == 300 * 48  # 24 kHz PCM16
    assert len(realtime_server.of_type("input_audio_buffer.append")) == 3
    assert len(realtime_server.of_type("response.create")) == 1
    await disconnect(hass, device, state)


async def test_failed_commit_is_counted_and_frees_the_device(
    hass: HomeAssistant,
    client: TestClient,
    realtime_server: RealtimeServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A push-to-talk commit that fails: logged once, counted, the satellite idles again.

    The session ending under a commit is a race; the failure is injected into the commit.
    """
    device = await bridged(hass, client)
    state = device_state(hass, device)
    bridge = bridge_of(hass, state)
    commits: list[None] = []

    async def failing_commit() -> None:
        commits.append(None)
        raise RealtimeSessionClosed("client closed")

    monkeypatch.setattr(bridge.client, "commit_audio", failing_commit)
    for turn in (1, 2):
        await device.start_listening(ListenMode.MANUAL)
        await device.send_audio(loud(200))
        await device.stop_listening()
        await wait_until(
            lambda turn=turn: len(commits) == turn and state.errors["realtime"] == turn, state
        )
    await wait_until(lambda: bridge.phase is BridgePhase.IDLE, bridge.device)
    await hass.async_block_till_done()
    assert satellite_state(hass, state) == AssistSatelliteState.IDLE
    assert len(warnings(caplog, "Realtime request failed: client closed")) == 1
    assert not realtime_server.of_type("response.create")
    await disconnect(hass, device, state)


async def test_late_speech_started_does_not_reopen_a_closed_microphone(
    hass: HomeAssistant,
    client: TestClient,
    realtime_server: RealtimeServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The service's VAD may report speech after the device has stopped listening (a push-to-talk
    turn whose audio reached the service before its turn detection was switched off, and whose
    commit failed, so no speech_stopped follows): the device's microphone is closed, so the phase
    and the satellite do not go back to listening."""
    device = await bridged(hass, client)
    state = device_state(hass, device)
    bridge = bridge_of(hass, state)
    commits: list[None] = []

    async def failing_commit() -> None:
        commits.append(None)
        raise RealtimeSessionClosed("client closed")

    monkeypatch.setattr(bridge.client, "commit_audio", failing_commit)
    await device.start_listening(ListenMode.MANUAL)
    await device.send_audio(loud(100))
    await device.stop_listening()
    await wait_until(lambda: commits and bridge.phase is BridgePhase.IDLE, bridge.device)
    await realtime_server.send(
        {
            "type": "input_audio_buffer.speech_started",
            "audio_start_ms": 0,
            "item_id": realtime_server.new_id("item"),
        }
    )
    await asyncio.sleep(0.2)
    await hass.async_block_till_done()
    assert bridge.phase is BridgePhase.IDLE
    assert satellite_state(hass, state) == AssistSatelliteState.IDLE
    await disconnect(hass, device, state)


async def test_failed_typed_turn_is_counted_and_logged_once(
    hass: HomeAssistant,
    client: TestClient,
    realtime_server: RealtimeServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Typed turns the session refuses: counted each time, logged once, no response asked for.

    The failure is injected into `add_user_text` (the session ending under it is a race).
    """
    device = await bridged(hass, client)
    state = device_state(hass, device)
    bridge = bridge_of(hass, state)
    real_add = bridge.client.add_user_text

    async def failing_add(text: str) -> None:
        raise RealtimeSessionClosed("client closed")

    monkeypatch.setattr(bridge.client, "add_user_text", failing_add)
    await listen_detect(device, "one")
    await wait_until(lambda: state.errors["realtime"] == 1, state)
    await listen_detect(device, "two")
    await wait_until(lambda: state.errors["realtime"] == 2, state)
    assert len(warnings(caplog, "Realtime request failed: client closed")) == 1
    assert not realtime_server.of_type("response.create")
    monkeypatch.setattr(bridge.client, "add_user_text", real_add)
    await typed_turn(device, realtime_server, "three")
    assert typed_texts(realtime_server) == ["three"]
    await disconnect(hass, device, state)


# --- replies ----------------------------------------------------------------------------------


async def test_reply_that_fails_to_play_frees_the_device(
    hass: HomeAssistant,
    client: TestClient,
    realtime_server: RealtimeServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A reply that breaks mid-way: `tts stop`, an alert, a logged traceback; the next one plays.

    No real reply makes the downlink fail; the failure is injected into its last step.
    """
    device = await bridged(hass, client)
    state = device_state(hass, device)
    downlink = bridge_of(hass, state).downlink
    assert downlink is not None

    async def broken_finish() -> None:
        raise RuntimeError("encoder failed")

    monkeypatch.setattr(downlink, "finish", broken_finish)
    realtime_server.script(ScriptedResponse(text="Broken.", audio=tone(300)))
    await listen_detect(device, "hi")
    await wait_tts(device, "stop")
    await wait_until(lambda: bool(device.alerts), device)
    assert device.alerts[0].message == "Speech bridge failed"
    assert state.errors["bridge"] == 1
    (record,) = warnings(caplog, "Speech bridge failed")
    assert record.exc_info is not None
    assert bridge_of(hass, state).phase is BridgePhase.IDLE
    monkeypatch.undo()
    await typed_turn(device, realtime_server)
    assert tts_states(device)[-3:] == ["start", "sentence_start:Ok.", "stop"]
    await disconnect(hass, device, state)


async def test_tool_outputs_that_cannot_be_sent_end_the_reply(
    hass: HomeAssistant,
    client: TestClient,
    realtime_server: RealtimeServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The tool ran but its output cannot reach the session: logged, counted, `tts stop`.

    The failure is injected into `submit_tool_outputs` (the session ending under it is a race).
    """
    device = await bridged(hass, client)
    state = device_state(hass, device)
    bridge = bridge_of(hass, state)

    async def failing_submit(outputs: Any) -> None:
        raise RealtimeSessionClosed("client closed")

    monkeypatch.setattr(bridge.client, "submit_tool_outputs", failing_submit)
    realtime_server.script(
        ScriptedResponse(
            text="Turning it on.",
            audio=tone(120),
            calls=[ScriptedCall(TURN_ON, '{"name": "Kitchen Lights"}')],
        )
    )
    await listen_detect(device, "kitchen lights on")
    await wait_tts(device, "stop")
    await hass.async_block_till_done()
    assert hass.states.get("light.kitchen_lights").state == "on"
    assert state.errors["realtime"] == 1
    assert len(warnings(caplog, "Realtime request failed: client closed")) == 1
    await wait_until(lambda: bridge.phase is BridgePhase.IDLE, bridge.device)
    await disconnect(hass, device, state)


async def test_tool_loop_limit_ends_the_reply(
    hass: HomeAssistant,
    client: TestClient,
    realtime_server: RealtimeServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A model that keeps calling tools past the round limit: no more responses, `tts stop`."""
    device = await bridged(hass, client)
    state = device_state(hass, device)
    calls = [ScriptedCall(TURN_ON, '{"name": "Kitchen Lights"}')]
    realtime_server.script(ScriptedResponse(calls=calls), ScriptedResponse(calls=calls))
    await listen_detect(device, "lights")
    await wait_tts(device, "stop")
    await wait_until(lambda: realtime_server.responses_done == 2, realtime_server)
    assert len(realtime_server.of_type("response.create")) == 2  # the turn, one tool round
    outputs = [
        e
        for e in realtime_server.of_type("conversation.item.create")
        if e["item"]["type"] == "function_call_output"
    ]
    assert len(outputs) == 2  # both rounds' results are in the conversation
    assert len(warnings(caplog, "tool outputs are answered at most 1 times a turn")) == 1
    assert bridge_of(hass, state).phase is BridgePhase.IDLE
    assert state.errors["realtime"] == 0
    await disconnect(hass, device, state)


async def test_empty_reply_records_only_the_user_turn(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """A reply with neither words nor tools: the device is freed, the chat log has the user only."""
    device = await bridged(hass, client)
    state = device_state(hass, device)
    realtime_server.script(ScriptedResponse())
    await listen_detect(device, "hmm")
    await wait_tts(device, "stop")
    bridge = bridge_of(hass, state)
    await wait_until(lambda: bridge.phase is BridgePhase.IDLE, bridge.device)
    with (
        chat_session.async_get_chat_session(hass, bridge.turns.conversation_id) as session,
        conversation.async_get_chat_log(hass, session) as chat_log,
    ):
        assert [content.role for content in chat_log.content] == ["system", "user"]
        assert chat_log.content[1].content == "hmm"
    await disconnect(hass, device, state)


# --- actions ----------------------------------------------------------------------------------


async def test_actions_refused_while_the_pipeline_stands_in(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """On the Assist pipeline path, speak/ask/converse need Realtime and say so at once."""
    device = await bridged(hass, client)
    state = device_state(hass, device)
    realtime_server.on_connect_error = QUOTA
    await realtime_server.close_connection(1008, "insufficient_quota")
    bridge = bridge_of(hass, state)
    await wait_until(lambda: bridge.path is BridgePath.ASSIST_PIPELINE, bridge.device)
    satellite = satellite_of(hass, state).entity_id
    for action, data, response in (
        ("speak", {"message": "hello"}, False),
        ("ask", {"question": "Ready?"}, True),
        ("converse", {"instructions": "Be brief."}, False),
    ):
        with pytest.raises(HomeAssistantError) as err:
            await hass.services.async_call(
                DOMAIN,
                action,
                {"entity_id": satellite, **data},
                blocking=True,
                return_response=response,
            )
        assert err.value.translation_key == "realtime_unavailable"
        assert isinstance(err.value.__cause__, RealtimeError)
    # The satellite's announcement (no TTS engine: the Realtime voice) fails translated.
    with pytest.raises(HomeAssistantError) as err:
        await hass.services.async_call(
            "assist_satellite",
            "announce",
            {"message": "Dinner is ready", "preannounce": False},
            target={"entity_id": satellite_of(hass, state).entity_id},
            blocking=True,
        )
    assert err.value.translation_key == "announcement_failed"
    realtime_server.on_connect_error = None
    await wait_until(lambda: bridge.client is not None and bridge.client.connected, bridge.device)
    await disconnect(hass, device, state)


async def test_speak_fails_when_the_device_leaves(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """A device that leaves mid-announcement fails the announcement (no stray cancellation)."""
    device = await bridged(hass, client)
    state = device_state(hass, device)
    realtime_server.script(
        ScriptedResponse(text="Dinner is ready.", audio=tone(3000), hold=asyncio.Event())
    )
    announce = hass.async_create_task(
        hass.services.async_call(
            "assist_satellite",
            "announce",
            {"message": "Dinner is ready", "preannounce": False},
            target={"entity_id": satellite_of(hass, state).entity_id},
            blocking=True,
        )
    )
    await wait_until(lambda: device.downlink_outcomes().get("played", 0) >= 2, device)
    await device.close()
    with pytest.raises(HomeAssistantError) as err:
        await announce
    assert err.value.translation_key == "announcement_failed"
    assert isinstance(err.value.__cause__, RealtimeSessionClosed)
    await wait_until(lambda: bridge_of(hass, state) is None, state)


async def test_second_ask_is_refused_while_one_waits(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """One question at a time: a second ask is refused; the first times out unanswered."""
    device = await bridged(hass, client)
    state = device_state(hass, device)
    bridge = bridge_of(hass, state)
    realtime_server.script(ScriptedResponse(text="Are you there?", audio=tone(120)))
    first = hass.async_create_task(bridge.async_ask("Are you there?", answer_timeout=1))
    await realtime_server.wait_for("response.create")
    with pytest.raises(HomeAssistantError) as err:
        await hass.services.async_call(
            DOMAIN,
            "ask",
            {"entity_id": satellite_of(hass, state).entity_id, "question": "And now?"},
            blocking=True,
            return_response=True,
        )
    assert err.value.translation_key == "device_busy"
    assert isinstance(err.value.__cause__, BridgeBusyError)
    assert await first == {"answered": False}
    assert len(realtime_server.of_type("response.create")) == 1
    await disconnect(hass, device, state)


async def test_ask_fails_when_the_session_ends_while_it_waits(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """A question whose Realtime session ends for good fails at once, not after its timeout."""
    device = await bridged(hass, client)
    state = device_state(hass, device)
    realtime_server.script(ScriptedResponse(text="Are you there?", audio=tone(120)))
    asking = hass.async_create_task(
        hass.services.async_call(
            DOMAIN,
            "ask",
            {
                "entity_id": satellite_of(hass, state).entity_id,
                "question": "Are you there?",
                "timeout": 60,
            },
            blocking=True,
            return_response=True,
        )
    )
    await wait_tts(device, "stop")  # the question was heard; the answer is awaited
    realtime_server.on_connect_error = QUOTA
    await realtime_server.close_connection(1008, "insufficient_quota")
    with pytest.raises(HomeAssistantError) as err:
        async with asyncio.timeout(10):
            await asking
    assert err.value.translation_key == "realtime_unavailable"
    assert isinstance(err.value.__cause__, RealtimeSessionClosed)
    assert not bridge_of(hass, state).actions.asking
    realtime_server.on_connect_error = None
    await wait_until(
        lambda: (
            bridge_of(hass, state).client is not None and bridge_of(hass, state).client.connected
        ),
        state,
    )
    await disconnect(hass, device, state)


async def test_reply_the_service_stalls_is_abandoned(
    hass: HomeAssistant,
    client: TestClient,
    realtime_server: RealtimeServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A reply that stops mid-way is cut off: `tts stop`, cancelled, logged; the next turn works."""
    monkeypatch.setattr(Speaker, "stall_timeout", 0.5)
    device = await bridged(hass, client)
    state = device_state(hass, device)
    realtime_server.script(
        ScriptedResponse(text="Half a sentence.", audio=tone(600), hold=asyncio.Event())
    )
    await listen_detect(device, "hi")
    await wait_tts(device, "stop")
    await realtime_server.wait_for("response.cancel")
    assert len(warnings(caplog, "Realtime reply stalled for 0.5 s")) == 1
    assert state.errors["stalled"] == 1
    realtime_server.script(ScriptedResponse(text="Back again.", audio=tone(120)))
    start = len(device.messages)
    await listen_detect(device, "hello")
    await wait_tts(device, "stop", start)
    assert tts_states(device)[-3:] == ["start", "sentence_start:Back again.", "stop"]
    await disconnect(hass, device, state)


async def test_ask_on_push_to_talk_without_options(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """A push-to-talk answer is committed but not answered; without options only its text."""
    device = await bridged(hass, client)
    state = device_state(hass, device)
    await device.start_listening(ListenMode.MANUAL)
    await wait_until(
        lambda: realtime_server.session.session["audio"]["input"]["turn_detection"] is None,
        realtime_server,
    )
    realtime_server.user_transcript = "the blue one"
    realtime_server.script(ScriptedResponse(text="Which one?", audio=tone(120)))
    asking = hass.async_create_task(
        bridge_of(hass, state).async_ask("Which one?", answer_timeout=20)
    )
    await wait_tts(device, "stop")
    await device.start_listening(ListenMode.MANUAL)
    await device.send_audio(loud(300))
    await device.stop_listening()
    assert await asking == {"answered": True, "transcript": "the blue one"}
    assert len(realtime_server.of_type("input_audio_buffer.commit")) == 1
    assert len(realtime_server.of_type("response.create")) == 1  # the question only
    await disconnect(hass, device, state)


async def test_option_match_when_the_model_does_not_answer_in_json(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """Not JSON: the option the transcript names; an option not offered: none, confidence kept
    within 0..1."""
    device = await bridged(hass, client)
    state = device_state(hass, device)
    bridge = bridge_of(hass, state)
    realtime_server.user_transcript = "yes please"

    async def ask(match_reply: str) -> dict[str, Any]:
        realtime_server.script(
            ScriptedResponse(text="Lights off?", audio=tone(120)),
            ScriptedResponse(text=match_reply),
        )
        start = len(device.messages)
        asking = hass.async_create_task(
            bridge.async_ask("Lights off?", options=["yes", "no"], answer_timeout=20)
        )
        await wait_tts(device, "stop", start)
        # listen start once the question played out
        await wait_until(lambda: device.mic_active, device)
        await device.send_audio(loud(300) + bytes(32000))
        return await asking

    assert await ask("Sure, they said yes.") == {
        "answered": True,
        "transcript": "yes please",
        "option": "yes",
        "confidence": None,
    }
    assert await ask(json.dumps({"option": "maybe", "confidence": 3})) == {
        "answered": True,
        "transcript": "yes please",
        "option": None,
        "confidence": 1.0,
    }
    await disconnect(hass, device, state)


async def test_converse_without_a_message_lets_the_model_open(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """converse without a message: the model words the opening line, which is remembered."""
    device = await bridged(hass, client)
    state = device_state(hass, device)
    realtime_server.script(ScriptedResponse(text="Shall we plan dinner?", audio=tone(120)))
    await bridge_of(hass, state).async_converse(None, "Help the user plan dinner.")
    create = realtime_server.of_type("response.create")[-1]["response"]
    assert "Open the conversation in one short sentence" in create["instructions"]
    assert "conversation" not in create  # in the conversation, not out of band
    assert device.assistant_lines[-1] == "Shall we plan dinner?"
    await disconnect(hass, device, state)
