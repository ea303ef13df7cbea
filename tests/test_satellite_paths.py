"""The satellite's conversations and announcements on each path, and their failures.

`start_conversation` goes to the Realtime session on the Realtime path and through Home
Assistant's announce-then-listen flow (the pipeline's TTS) on the Assist pipeline path;
announcements fail cleanly when their TTS result is gone or no Realtime session can speak them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from aiohttp.test_utils import TestClient
from homeassistant.components.assist_pipeline.pipeline import (
    async_get_pipeline,
    async_update_pipeline,
)
from homeassistant.components.assist_satellite.errors import SatelliteBusyError
from homeassistant.components.tts import DATA_TTS_MANAGER, ResultStream
from homeassistant.const import EVENT_STATE_CHANGED
from homeassistant.core import Event, EventStateChangedData, HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.setup import async_setup_component
import pytest

from custom_components.openai_realtime_voice.bridge import (
    BridgePath,
    BridgePhase,
)
from custom_components.openai_realtime_voice.const import CONF_LISTENING_TIMEOUT, DOMAIN
from realtime_server import RealtimeServer, ScriptedResponse, tone
from simulator.device import DeviceSimulator
from simulator.speech import synthesize
from tests.bridge_helpers import (
    bridge_of,
    bridged,
    device_state,
    disconnect,
    refuse_realtime,
    satellite_id,
    say,
    tts_states,
    wait_tts,
)
from tests.device_helpers import device_client, wait_until
from tests.pipeline_providers import (
    TONE_HZ,
    Providers,
    dominant_hz,
    providers_flow,
    scripted_providers,
)

pytestmark = pytest.mark.usefixtures("lights", "fast_retries")

OPENING = "Shall I turn on the lights?"
EXTRA = "The user just came home in the dark."


@pytest.fixture
async def providers(
    hass: HomeAssistant, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Providers]:
    """STT and TTS entities in the preferred pipeline."""
    with providers_flow():
        yield await scripted_providers(hass, tmp_path, monkeypatch)


@pytest.fixture
async def websocket_api(hass: HomeAssistant) -> None:
    """The WebSocket API, set up before the HTTP server starts (its router is then frozen)."""
    assert await async_setup_component(hass, "websocket_api", {})


@pytest.fixture
async def tts_client(
    hass: HomeAssistant,
    hass_client_no_auth: Any,
    realtime_server: RealtimeServer,
    lights: None,
    providers: Providers,
) -> TestClient:
    """As `client`, with STT and TTS entities in the preferred pipeline."""
    return await device_client(hass, hass_client_no_auth, realtime_server)


def last_instructions(server: RealtimeServer) -> str:
    """The session's instructions as last set by a session.update."""
    updates = [
        e["session"] for e in server.of_type("session.update") if "instructions" in e["session"]
    ]
    return str(updates[-1]["instructions"])


def record_states(hass: HomeAssistant, entity_id: str) -> list[str]:
    """Every state the entity takes from now on."""
    seen: list[str] = []

    @callback
    def changed(event: Event[EventStateChangedData]) -> None:
        if event.data["entity_id"] == entity_id and (new := event.data["new_state"]):
            seen.append(new.state)

    hass.bus.async_listen(EVENT_STATE_CHANGED, changed)
    return seen


async def start_conversation(hass: HomeAssistant, entity_id: str, **data: Any) -> None:
    """Call `assist_satellite.start_conversation` (no pre-announce sound) and wait for it."""
    await hass.services.async_call(
        "assist_satellite",
        "start_conversation",
        {"preannounce": False, **data},
        target={"entity_id": entity_id},
        blocking=True,
    )


async def test_start_conversation_on_the_realtime_path(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """The session gets the extra prompt and says the opening line; the device then listens."""
    device = await bridged(hass, client)
    state = device_state(hass, device)
    entity_id = satellite_id(hass, device.mac)
    base = last_instructions(realtime_server)
    seen = record_states(hass, entity_id)
    realtime_server.script(ScriptedResponse(text=OPENING, audio=tone(300)))
    await start_conversation(hass, entity_id, start_message=OPENING, extra_system_prompt=EXTRA)
    assert last_instructions(realtime_server) == f"{base}\n\n{EXTRA}"
    create = realtime_server.of_type("response.create")[-1]["response"]
    assert OPENING in create["instructions"]
    assert create.get("conversation") != "none"  # the opening line stays in the conversation
    await wait_tts(device, "stop")
    assert tts_states(device) == ["start", f"sentence_start:{OPENING}", "stop"]
    assert device.downlink_outcomes() == {"played": 5}
    # Responding while the line plays, idle after it, then listening with the device.
    await wait_until(lambda: seen[-1:] == ["listening"], hass)
    assert seen[:2] == ["responding", "idle"]
    await disconnect(hass, device, state)


async def test_start_conversation_without_a_message_lets_the_model_open(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """No start message: the model words the opening itself, following the extra prompt."""
    device = await bridged(hass, client)
    state = device_state(hass, device)
    entity_id = satellite_id(hass, device.mac)
    base = last_instructions(realtime_server)
    realtime_server.script(ScriptedResponse(text="Hello there.", audio=tone(120)))
    await start_conversation(hass, entity_id, start_message="", extra_system_prompt=EXTRA)
    assert last_instructions(realtime_server) == f"{base}\n\n{EXTRA}"
    create = realtime_server.of_type("response.create")[-1]["response"]
    assert "Open the conversation in one short sentence" in create["instructions"]
    await wait_tts(device, "stop")
    assert tts_states(device) == ["start", "sentence_start:Hello there.", "stop"]
    await disconnect(hass, device, state)


async def test_start_conversation_refused_by_the_session(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """The session refuses the extra prompt: a translated error, nothing said, satellite idle."""
    device = await bridged(hass, client)
    state = device_state(hass, device)
    entity_id = satellite_id(hass, device.mac)

    async def refuse(event: dict[str, Any]) -> bool:
        await realtime_server.session.error(
            "invalid_value", "instructions too long", event["event_id"]
        )
        return True

    realtime_server.hooks["session.update"] = refuse
    creates = len(realtime_server.of_type("response.create"))
    with pytest.raises(HomeAssistantError) as err:
        await start_conversation(hass, entity_id, start_message=OPENING, extra_system_prompt=EXTRA)
    assert err.value.translation_key == "realtime_unavailable"
    # Named as every other action names it: the device's title, as in the error of `ask`.
    assert err.value.translation_placeholders == {"device": bridge_of(hass, state).subentry.title}
    assert hass.states.get(entity_id).state == "idle"
    assert len(realtime_server.of_type("response.create")) == creates
    assert tts_states(device) == []
    # The session itself is still fine: the device can talk to it.
    del realtime_server.hooks["session.update"]
    realtime_server.script(ScriptedResponse(text="Still here.", audio=tone(120)))
    await say(device)
    await wait_tts(device, "stop")
    await disconnect(hass, device, state)


async def test_start_conversation_on_the_pipeline_path_announces_then_listens(
    hass: HomeAssistant,
    tts_client: TestClient,
    realtime_server: RealtimeServer,
    providers: Providers,
) -> None:
    """Pipeline path: the pipeline's TTS says the opening line on the device, which then listens."""
    # Home Assistant's flow needs a pipeline agent other than the built-in one: this one.
    agent = next(
        e
        for e in hass.states.async_entity_ids("conversation")
        if e != "conversation.home_assistant"
    )
    await async_update_pipeline(hass, async_get_pipeline(hass), conversation_engine=agent)
    device = await bridged(hass, tts_client)
    state = device_state(hass, device)
    entity_id = satellite_id(hass, device.mac)
    await refuse_realtime(hass, realtime_server, state)
    creates = len(realtime_server.of_type("response.create"))
    start = len(device.messages)
    await start_conversation(hass, entity_id, start_message=OPENING, extra_system_prompt=EXTRA)
    assert providers.tts.messages == [OPENING]
    await wait_tts(device, "stop", start)
    assert tts_states(device) == ["start", f"sentence_start:{OPENING}", "stop"]
    played = bytes(device.playback.played_pcm)
    assert abs(dominant_hz(played, 24000) - TONE_HZ) < 5
    assert len(realtime_server.of_type("response.create")) == creates
    # After `tts stop` the device listens again, into a run of the Assist pipeline.
    await wait_until(
        lambda: (
            bridge_of(hass, state).pipeline is not None
            and bridge_of(hass, state).pipeline.turns == 1
        ),
        state,
    )
    assert bridge_of(hass, state).path is BridgePath.ASSIST_PIPELINE
    await disconnect(hass, device, state)


async def test_announcement_whose_tts_result_is_gone(
    hass: HomeAssistant,
    tts_client: TestClient,
    realtime_server: RealtimeServer,
    providers: Providers,
) -> None:
    """The TTS result vanished before playing: the action fails, nothing plays, satellite idle.

    A state listener deletes the result (HA's own `async_delete_result_stream`, as its expiry
    does) the moment the satellite starts responding: expiry itself takes minutes.
    """
    device = await bridged(hass, tts_client)
    state = device_state(hass, device)
    entity_id = satellite_id(hass, device.mac)
    manager = hass.data[DATA_TTS_MANAGER]
    expired: list[ResultStream] = []

    @callback
    def expire(event: Event[EventStateChangedData]) -> None:
        new = event.data["new_state"]
        if event.data["entity_id"] == entity_id and new and new.state == "responding":
            for token, stream in list(manager.token_to_stream.items()):
                expired.append(stream)
                manager.async_delete_result_stream(token)

    remove = hass.bus.async_listen(EVENT_STATE_CHANGED, expire)
    with pytest.raises(HomeAssistantError) as err:
        await hass.services.async_call(
            "assist_satellite",
            "announce",
            {"message": "Dinner is ready", "preannounce": False},
            target={"entity_id": entity_id},
            blocking=True,
        )
    remove()
    assert err.value.translation_key == "announcement_failed"
    assert hass.states.get(entity_id).state == "idle"
    assert tts_states(device) == []
    assert bridge_of(hass, state).phase is not BridgePhase.RESPONDING
    # The result itself was fine (reading it also lets HA finish caching it).
    [stream] = expired
    assert b"".join([chunk async for chunk in stream.async_stream_result()])
    await disconnect(hass, device, state)


async def test_announce_in_the_realtime_voice_needs_the_realtime_path(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """Without a TTS engine and on the Assist pipeline path, nobody can speak: the action fails."""
    device = await bridged(hass, client)
    state = device_state(hass, device)
    entity_id = satellite_id(hass, device.mac)
    await refuse_realtime(hass, realtime_server, state)
    with pytest.raises(HomeAssistantError) as err:
        await hass.services.async_call(
            "assist_satellite",
            "announce",
            {"message": "Dinner is ready", "preannounce": False},
            target={"entity_id": entity_id},
            blocking=True,
        )
    assert err.value.translation_key == "announcement_failed"
    assert hass.states.get(entity_id).state == "idle"
    assert tts_states(device) == []
    await disconnect(hass, device, state)


QUESTION = "Shall I turn off the downstairs lights?"
ANSWERS = [
    {"id": "yes", "sentences": ["yes [please]", "sure"]},
    {"id": "no", "sentences": ["no [thanks]"]},
    {"id": "minutes", "sentences": ["in {minutes} minutes"]},
]


async def ask_question(hass: HomeAssistant, entity_id: str, **data: Any) -> dict[str, Any]:
    """Call `assist_satellite.ask_question` (no pre-announce sound) and return its response."""
    response = await hass.services.async_call(
        "assist_satellite",
        "ask_question",
        {"entity_id": entity_id, "preannounce": False, **data},
        blocking=True,
        return_response=True,
    )
    assert response is not None
    return dict(response)


async def answer_by_voice(device: DeviceSimulator, spoken: str) -> None:
    """Once the question has played and the device listens, say the answer (then silence)."""
    answer = await synthesize(spoken, 16000)
    await wait_tts(device, "stop")
    await wait_until(lambda: device.mic_active, device)  # listen start once the question played out
    await device.send_audio(answer + bytes(32000))


@pytest.mark.parametrize(
    ("spoken", "expected"),
    [
        ("Yes, please.", {"id": "yes", "sentence": "Yes, please.", "slots": {}}),
        (
            "In ten minutes.",
            {"id": "minutes", "sentence": "In ten minutes.", "slots": {"minutes": "ten"}},
        ),
        ("Ask me later.", {"id": None, "sentence": "Ask me later.", "slots": {}}),
    ],
)
async def test_ask_question_on_the_realtime_path(
    hass: HomeAssistant,
    client: TestClient,
    realtime_server: RealtimeServer,
    spoken: str,
    expected: dict[str, Any],
) -> None:
    """HA's `ask_question`: the session speaks the question, the spoken answer is matched.

    The device hears the question, then answers by voice; the transcript comes back as the
    action's `sentence`, matched against `answers` by Home Assistant's own matcher. The model
    does not answer the answer (turn detection creates no response while asking).
    """
    device = await bridged(hass, client)
    state = device_state(hass, device)
    entity_id = satellite_id(hass, device.mac)
    seen = record_states(hass, entity_id)
    realtime_server.user_transcript = spoken
    realtime_server.script(ScriptedResponse(text=QUESTION, audio=tone(240)))
    replying = hass.async_create_task(answer_by_voice(device, spoken))
    response = await ask_question(hass, entity_id, question=QUESTION, answers=ANSWERS)
    await replying
    assert response == expected
    assert tts_states(device) == ["start", f"sentence_start:{QUESTION}", "stop"]
    create = realtime_server.of_type("response.create")[-1]["response"]
    assert QUESTION in create["instructions"]
    assert realtime_server.responses_done == 1  # the question only: the answer is not answered
    assert seen[0] == "responding"
    assert hass.states.get(entity_id).state == "idle"
    # Turn detection creates responses again afterwards.
    update = realtime_server.of_type("session.update")[-1]["session"]
    assert update["audio"]["input"]["turn_detection"]["create_response"] is True
    await disconnect(hass, device, state)


async def test_ask_question_without_answers_returns_the_sentence(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """Without `answers` the action returns what was said, with no id."""
    device = await bridged(hass, client)
    state = device_state(hass, device)
    entity_id = satellite_id(hass, device.mac)
    realtime_server.user_transcript = "the blue one"
    realtime_server.script(ScriptedResponse(text="Which one?", audio=tone(120)))
    replying = hass.async_create_task(answer_by_voice(device, "the blue one"))
    response = await ask_question(hass, entity_id, question="Which one?")
    await replying
    assert response == {"id": None, "sentence": "the blue one", "slots": {}}
    await disconnect(hass, device, state)


async def test_ask_question_unanswered_and_while_busy(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """A second question while one waits is refused; no answer is a translated error.

    The answer is awaited for the device's listening timeout; after it, with no speech,
    the device goes back to idle as after any conversation.
    """
    entry = hass.config_entries.async_entries(DOMAIN)[0]
    hass.config_entries.async_update_entry(
        entry, options={**entry.options, CONF_LISTENING_TIMEOUT: 1.5}
    )
    device = await bridged(hass, client)
    state = device_state(hass, device)
    bridge = bridge_of(hass, state)
    entity_id = satellite_id(hass, device.mac)
    realtime_server.script(ScriptedResponse(text="Are you there?", audio=tone(120)))
    first = hass.async_create_task(ask_question(hass, entity_id, question="Are you there?"))
    await wait_until(lambda: bridge.actions.asking, realtime_server)
    with pytest.raises(SatelliteBusyError):
        await ask_question(hass, entity_id, question="Hello?")
    with pytest.raises(HomeAssistantError) as err:
        await first
    assert err.value.translation_key == "no_answer"
    assert err.value.translation_placeholders == {"device": bridge.subentry.title}
    assert not bridge.actions.asking
    assert hass.states.get(entity_id).state == "idle"
    assert realtime_server.responses_done == 1  # the second question was never spoken
    async with asyncio.timeout(5):
        await device.wait_closed()
    assert device.state.value == "idle"
    await wait_until(lambda: bridge_of(hass, state) is None and bridge.connection.closed, state)
    assert bridge.connection.close_reason == "no speech"
    assert not bridge.tasks
    await device.close()


async def test_ask_question_on_the_pipeline_path_takes_the_pipeline_transcript(
    hass: HomeAssistant,
    tts_client: TestClient,
    realtime_server: RealtimeServer,
    providers: Providers,
) -> None:
    """Pipeline path: Home Assistant's own flow; the pipeline's TTS asks, its STT hears the answer.

    The run ends after STT (Home Assistant stops a question's run there): nothing is answered.
    """
    device = await bridged(hass, tts_client)
    state = device_state(hass, device)
    entity_id = satellite_id(hass, device.mac)
    await refuse_realtime(hass, realtime_server, state)
    providers.stt.text = "no thanks"

    async def reply() -> None:
        await answer_by_voice(device, "no thanks")
        await device.stop_listening()  # the turn ends at the device, as in push-to-talk

    replying = hass.async_create_task(reply())
    response = await ask_question(hass, entity_id, question=QUESTION, answers=ANSWERS)
    await replying
    assert response == {"id": "no", "sentence": "no thanks", "slots": {}}
    assert providers.tts.messages == [QUESTION]
    assert tts_states(device) == ["start", f"sentence_start:{QUESTION}", "stop"]
    assert len(providers.stt.requests) == 1
    await disconnect(hass, device, state)


async def test_ask_question_while_the_device_waits_for_another_answer(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """`openai_realtime_voice.ask` waits for an answer: HA's question is refused, not queued."""
    entry = hass.config_entries.async_entries(DOMAIN)[0]
    hass.config_entries.async_update_entry(
        entry, options={**entry.options, CONF_LISTENING_TIMEOUT: 60}
    )
    device = await bridged(hass, client)
    state = device_state(hass, device)
    bridge = bridge_of(hass, state)
    entity_id = satellite_id(hass, device.mac)
    realtime_server.script(ScriptedResponse(text="Are you there?", audio=tone(120)))
    asking = hass.async_create_task(
        hass.services.async_call(
            DOMAIN,
            "ask",
            {"entity_id": entity_id, "question": "Are you there?", "timeout": 3},
            blocking=True,
            return_response=True,
        )
    )
    await wait_until(lambda: bridge.actions.asking, realtime_server)
    with pytest.raises(SatelliteBusyError) as err:
        await ask_question(hass, entity_id, question=QUESTION)
    assert err.value.translation_key == "device_busy"
    assert hass.states.get(entity_id).state == "idle"
    assert await asking == {"answered": False}
    assert realtime_server.responses_done == 1  # HA's question was never spoken
    await disconnect(hass, device, state)


async def test_ask_question_refused_by_the_session(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """The session refuses to stop answering by itself: a translated error, nothing asked."""
    device = await bridged(hass, client)
    state = device_state(hass, device)
    entity_id = satellite_id(hass, device.mac)

    async def refuse(event: dict[str, Any]) -> bool:
        await realtime_server.session.error("invalid_value", "refused", event["event_id"])
        return True

    realtime_server.hooks["session.update"] = refuse
    creates = len(realtime_server.of_type("response.create"))
    with pytest.raises(HomeAssistantError) as err:
        await ask_question(hass, entity_id, question=QUESTION)
    assert err.value.translation_key == "realtime_unavailable"
    assert hass.states.get(entity_id).state == "idle"
    assert len(realtime_server.of_type("response.create")) == creates
    assert not bridge_of(hass, state).actions.asking
    del realtime_server.hooks["session.update"]
    await disconnect(hass, device, state)


async def test_ask_question_from_media_on_the_realtime_path_is_refused(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """The Realtime session speaks questions from their text; a media question is refused."""
    device = await bridged(hass, client)
    state = device_state(hass, device)
    entity_id = satellite_id(hass, device.mac)
    creates = len(realtime_server.of_type("response.create"))
    with pytest.raises(HomeAssistantError) as err:
        await ask_question(hass, entity_id, question_media_id="media-source://x/question.mp3")
    assert err.value.translation_key == "question_media_unsupported"
    assert len(realtime_server.of_type("response.create")) == creates
    assert tts_states(device) == []
    await disconnect(hass, device, state)


async def test_wake_words_are_not_configurable(
    hass: HomeAssistant, websocket_api: None, client: TestClient, hass_ws_client: Any
) -> None:
    """The configuration offers no wake words; activating one is refused, none is accepted."""
    device = await bridged(hass, client)
    state = device_state(hass, device)
    entity_id = satellite_id(hass, device.mac)
    ws = await hass_ws_client(hass)
    await ws.send_json_auto_id(
        {"type": "assist_satellite/get_configuration", "entity_id": entity_id}
    )
    msg = await ws.receive_json()
    assert msg["success"], msg
    assert msg["result"]["available_wake_words"] == []
    assert msg["result"]["active_wake_words"] == []
    assert msg["result"]["max_active_wake_words"] == 0
    await ws.send_json_auto_id(
        {
            "type": "assist_satellite/set_wake_words",
            "entity_id": entity_id,
            "wake_word_ids": ["hey"],
        }
    )
    msg = await ws.receive_json()
    assert not msg["success"]
    assert msg["error"]["code"] == "not_supported"
    await ws.send_json_auto_id(
        {"type": "assist_satellite/set_wake_words", "entity_id": entity_id, "wake_word_ids": []}
    )
    msg = await ws.receive_json()
    assert msg["success"], msg
    await disconnect(hass, device, state)
