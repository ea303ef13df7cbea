"""Speech to speech on an ESPHome voice satellite (the Voice PE), driven as its firmware does.

Home Assistant's own `esphome` integration connects to a device in the test process over the
native API (`tests/esphome_satellite.py`); the pipeline it runs uses this integration's
speech-to-text, agent and text-to-speech, so the device's media player plays the Realtime
model's own audio, fetched from the URL Home Assistant gives it (issue 32).

The device leaves the end of the speech to Home Assistant's voice detection (it asks for a run
with `USE_VAD`), which hears a voice, not a tone: the user's speech is synthesised.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient
from homeassistant.components import tts
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from realtime_server import RealtimeServer, ScriptedCall, ScriptedResponse
from simulator.speech import synthesize
from tests.agent_helpers import TURN_ON
from tests.esphome_satellite import MAC, NAME, EsphomeSatellite
from tests.pipeline_providers import dominant_hz
from tests.speech_helpers import (
    create_pipeline,
    entry,  # noqa: F401 - the entry with speech subentries
    sine_24k,
)

SATELLITE = "assist_satellite.home_assistant_voice_0a1b2c_assist_satellite"


@pytest.fixture(autouse=True)
def _own_speech_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Home Assistant's speech cache folder in this test's own directory: an announcement read
    aloud by an earlier run must not be served from the test configuration's shared folder."""
    monkeypatch.setattr(tts, "DEFAULT_CACHE_DIR", str(tmp_path / "tts"))


@pytest.fixture
async def satellite(
    hass: HomeAssistant,
    entry: MockConfigEntry,  # noqa: F811 - the fixture of speech_helpers
    hass_ws_client: Any,
    hass_client: Any,
    unused_tcp_port: int,
) -> AsyncIterator[EsphomeSatellite]:
    """A Voice PE added to Home Assistant as the ESPHome config flow adds it, on the
    speech-to-speech pipeline; Home Assistant's URLs point at its HTTP server."""
    # Its HTTP views are registered before the test clients start Home Assistant's server.
    for domain in ("esphome", "media_player"):
        assert await async_setup_component(hass, domain, {})
    ws = await hass_ws_client(hass)
    pipeline_id = await create_pipeline(ws)
    await ws.send_json_auto_id(
        {"type": "assist_pipeline/pipeline/set_preferred", "pipeline_id": pipeline_id}
    )
    assert (await ws.receive_json())["success"]
    device = EsphomeSatellite(unused_tcp_port)
    await device.start()
    esphome = MockConfigEntry(
        domain="esphome",
        unique_id=MAC.lower(),
        data={
            "host": "127.0.0.1",
            "port": unused_tcp_port,
            "password": "",
            "noise_psk": None,
            "device_name": NAME,
        },
        options={"allow_service_calls": False},
    )
    esphome.add_to_hass(hass)
    assert await hass.config_entries.async_setup(esphome.entry_id)
    await device.subscribed.wait()
    await hass.async_block_till_done()
    assert hass.states.get(SATELLITE) is not None, hass.states.async_entity_ids("assist_satellite")
    # Home Assistant's HTTP server (started last: its routes are then fixed), at the URL the
    # device is given for what it plays.
    client: TestClient = await hass_client()
    hass.config.internal_url = str(client.make_url("")).rstrip("/")
    yield device
    assert await hass.config_entries.async_unload(esphome.entry_id)
    await device.stop()


async def test_voice_pe_plays_the_models_own_audio(
    hass: HomeAssistant, satellite: EsphomeSatellite, realtime_server: RealtimeServer
) -> None:
    """The device hears its transcript, then fetches and plays the model's own answer: one
    Realtime response for the turn, and no second user message."""
    realtime_server.user_transcript = "What time is it?"
    realtime_server.script(ScriptedResponse(text="It is noon.", audio=sine_24k(500)))
    satellite.next_speech.append(await synthesize("What time is it?", 16000))

    satellite.wake()
    run = await satellite.runs.get()

    assert run.of("stt-end")["text"] == "What time is it?"
    assert run.of("tts-start")["text"] == "It is noon."
    [reply] = run.played
    assert abs(dominant_hz(reply.pcm, 24000) - 700) < 20
    assert len(reply.pcm) >= 0.45 * 24000 * 2
    assert len(realtime_server.of_type("input_audio_buffer.commit")) == 1
    assert len(realtime_server.of_type("response.create")) == 1
    assert not realtime_server.of_type("conversation.item.create")
    # The latency sensor counts the turn as a device's: from the end of the speech (Home
    # Assistant's VAD window of silence counted in) to the first answer audio.
    latency = float(hass.states.get("sensor.openai_realtime_assist_response_latency").state)
    assert 700 <= latency < 3000


async def test_ask_question_on_the_voice_pe_matches_the_spoken_answer(
    hass: HomeAssistant, satellite: EsphomeSatellite, realtime_server: RealtimeServer
) -> None:
    """`ask_question`: the device plays the question in the model's voice, listens, and Home
    Assistant matches what it hears to an answer; no spoken answer is started for it."""
    realtime_server.script(ScriptedResponse(text="Pizza or pasta?", audio=sine_24k(300, 500)))
    realtime_server.user_transcript = "Pasta please"
    satellite.next_speech.append(await synthesize("Pasta please", 16000))

    answer = await hass.services.async_call(
        "assist_satellite",
        "ask_question",
        {
            "entity_id": SATELLITE,
            "question": "Pizza or pasta?",
            "answers": [
                {"id": "pizza", "sentences": ["pizza [please]"]},
                {"id": "pasta", "sentences": ["pasta [please]"]},
            ],
        },
        blocking=True,
        return_response=True,
    )

    assert answer == {"id": "pasta", "sentence": "Pasta please", "slots": {}}
    announcement = await satellite.announcements.get()
    assert announcement.text == "Pizza or pasta?"
    assert announcement.start_conversation
    chime, question = announcement.played  # the pre-announcement, through ESPHome's proxy
    assert "/api/esphome/ffmpeg_proxy/" in chime.url
    assert chime.pcm
    assert abs(dominant_hz(question.pcm, 24000) - 500) < 20
    run = await satellite.runs.get()
    assert run.types[-2:] == ["stt-end", "run-end"]
    assert not run.played
    # One response: the reading of the question. The answer was only transcribed.
    assert len(realtime_server.of_type("response.create")) == 1


async def test_start_conversation_on_the_voice_pe_answers_with_the_extra_prompt(
    hass: HomeAssistant, satellite: EsphomeSatellite, realtime_server: RealtimeServer
) -> None:
    """`start_conversation`: the device plays the start message, listens, and the reply is
    answered by the agent knowing why it asked (the extra prompt) and what it said, in the
    model's voice.

    Speech to text started the answer without the extra prompt (Home Assistant gives it to the
    agent only): that answer is withdrawn, the agent answers anew and its text is read aloud.
    """
    realtime_server.script(
        ScriptedResponse(text="Shall I light the kitchen?", audio=sine_24k(300, 500)),
        ScriptedResponse(text="Which room?", audio=sine_24k(300, 600), hold=asyncio.Event()),
        ScriptedResponse(text="The kitchen lights are on."),
        ScriptedResponse(text="The kitchen lights are on.", audio=sine_24k(400, 900)),
    )
    realtime_server.user_transcript = "Yes please"
    satellite.next_speech.append(await synthesize("Yes please", 16000))

    await hass.services.async_call(
        "assist_satellite",
        "start_conversation",
        {
            "entity_id": SATELLITE,
            "start_message": "Shall I light the kitchen?",
            "extra_system_prompt": "You offered to light the kitchen.",
            "preannounce": False,
        },
        blocking=True,
    )
    announcement = await satellite.announcements.get()
    run = await satellite.runs.get()

    assert announcement.text == "Shall I light the kitchen?"
    assert abs(dominant_hz(announcement.played[0].pcm, 24000) - 500) < 20
    assert run.of("stt-end")["text"] == "Yes please"
    assert run.of("tts-start")["text"] == "The kitchen lights are on."
    [reply] = run.played
    assert abs(dominant_hz(reply.pcm, 24000) - 900) < 20
    assert realtime_server.of_type("response.cancel")
    instructions = [
        event["session"].get("instructions") or ""
        for event in realtime_server.of_type("session.update")
    ]
    assert any("offered to light the kitchen" in text for text in instructions)
    said = [
        part.get("text") or part.get("transcript")
        for event in realtime_server.of_type("conversation.item.create")
        for part in event["item"].get("content", [])
    ]
    assert "Shall I light the kitchen?" in said  # the start message is in the history


async def test_a_question_back_keeps_the_voice_pe_listening_in_the_same_turns(
    hass: HomeAssistant, satellite: EsphomeSatellite, realtime_server: RealtimeServer
) -> None:
    """An answer that asks back continues the conversation: the device listens again by itself
    and the follow-up is a shared turn of the same conversation and session (no replay, no
    second user message)."""
    realtime_server.user_transcript = "Turn on the lights"
    realtime_server.script(
        ScriptedResponse(text="Which room?", audio=sine_24k(800, 600)),
        ScriptedResponse(text="The kitchen lights are on.", audio=sine_24k(300, 900)),
    )
    satellite.next_speech += [
        await synthesize("Turn on the lights", 16000),
        await synthesize("The kitchen", 16000),
    ]

    satellite.wake()
    first = await satellite.runs.get()
    # The device opened its microphone again at once; the follow-up ends after HA's VAD
    # window of real-time silence, long after this.
    realtime_server.user_transcript = "The kitchen"
    second = await satellite.runs.get()

    assert first.of("intent-end")["continue_conversation"] == "1"
    assert second.of("stt-end")["text"] == "The kitchen"
    assert second.of("run-start") is not None
    assert first.of("intent-end")["conversation_id"] == second.of("intent-end")["conversation_id"]
    assert abs(dominant_hz(first.played[0].pcm, 24000) - 600) < 20
    assert abs(dominant_hz(second.played[0].pcm, 24000) - 900) < 20
    assert second.of("intent-end")["continue_conversation"] == "0"
    assert len(realtime_server.of_type("session.update")) == 1  # one session for both turns
    assert len(realtime_server.of_type("input_audio_buffer.commit")) == 2
    assert len(realtime_server.of_type("response.create")) == 2
    assert not realtime_server.of_type("conversation.item.create")


async def test_a_long_answer_plays_on_the_voice_pe_while_the_agent_writes(
    hass: HomeAssistant, satellite: EsphomeSatellite, realtime_server: RealtimeServer
) -> None:
    """Past 60 characters the device's media player starts the run's streaming URL at the
    intent's progress, before the agent is done: that stream is the shared turn's audio."""
    realtime_server.user_transcript = "Tell me about the weather"
    long_answer = "It will be sunny all day, with a light breeze and a high of twenty-four degrees."
    realtime_server.script(ScriptedResponse(text=long_answer, audio=sine_24k(600), chunks=4))
    satellite.next_speech.append(await synthesize("Tell me about the weather", 16000))

    satellite.wake()
    run = await satellite.runs.get()

    assert {"tts_start_streaming": "1"} in [data for _, data in run.events]
    [reply] = run.played
    assert reply.url == run.of("run-start")["url"]  # not the TTS_END one: it was playing
    assert abs(dominant_hz(reply.pcm, 24000) - 700) < 20
    assert len(reply.pcm) >= 0.55 * 24000 * 2
    assert len(realtime_server.of_type("response.create")) == 1


async def test_a_tool_call_on_the_voice_pe_turns_the_light_on_within_the_turn(
    hass: HomeAssistant, satellite: EsphomeSatellite, realtime_server: RealtimeServer
) -> None:
    """The model's tool call turns the kitchen light on; the follow-up's audio is what the
    device plays, from the same stream."""
    realtime_server.user_transcript = "Turn on the kitchen lights"
    realtime_server.script(
        ScriptedResponse(calls=[ScriptedCall(TURN_ON, '{"name": "Kitchen Lights"}')]),
        ScriptedResponse(text="The kitchen lights are on.", audio=sine_24k(400, 900)),
    )
    satellite.next_speech.append(await synthesize("Turn on the kitchen lights", 16000))

    satellite.wake()
    run = await satellite.runs.get()

    assert hass.states.get("light.kitchen_lights").state == "on"
    assert run.of("intent-end")["speech"] == "The kitchen lights are on."
    [reply] = run.played
    assert abs(dominant_hz(reply.pcm, 24000) - 900) < 20
    outputs = realtime_server.of_type("conversation.item.create")
    assert [event["item"]["type"] for event in outputs] == ["function_call_output"]
    assert len(realtime_server.of_type("input_audio_buffer.commit")) == 1


async def test_a_service_that_refuses_ends_the_voice_pe_run_with_a_clear_error(
    hass: HomeAssistant,
    satellite: EsphomeSatellite,
    realtime_server: RealtimeServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Out of quota: the device gets Home Assistant's speech-to-text error and the run's end
    (it stops listening and shows the error), plays nothing; one log line says why."""
    realtime_server.on_connect_error = {
        "type": "insufficient_quota",
        "code": "insufficient_quota",
        "message": "You exceeded your current quota.",
    }
    satellite.next_speech.append(await synthesize("What time is it?", 16000))

    satellite.wake()
    run = await satellite.runs.get()

    assert run.of("error")["code"] == "stt-stream-failed"
    assert run.types[-1] == "run-end"
    assert not run.played
    assert "Speech to text failed" in caplog.text
    assert "quota" in caplog.text
    assert "Traceback" not in caplog.text
    assert not realtime_server.of_type("response.create")


async def test_the_follow_up_of_a_started_conversation_is_a_shared_turn(
    hass: HomeAssistant, satellite: EsphomeSatellite, realtime_server: RealtimeServer
) -> None:
    """Only the first reply after `start_conversation` is answered anew: the extra prompt stays
    with the conversation, so the follow-up's answer, started during speech to text with it,
    is the one the agent takes (the model's own audio, nothing withdrawn)."""
    realtime_server.script(
        ScriptedResponse(text="Shall I light a room?", audio=sine_24k(300, 500)),
        ScriptedResponse(text="Withdrawn.", audio=sine_24k(300, 600), hold=asyncio.Event()),
        ScriptedResponse(text="Which room?"),
        ScriptedResponse(text="Which room?", audio=sine_24k(800, 650)),
        ScriptedResponse(text="The kitchen lights are on.", audio=sine_24k(300, 900)),
    )
    realtime_server.user_transcript = "Yes please"
    satellite.next_speech += [
        await synthesize("Yes please", 16000),
        await synthesize("The kitchen", 16000),
    ]

    await hass.services.async_call(
        "assist_satellite",
        "start_conversation",
        {
            "entity_id": SATELLITE,
            "start_message": "Shall I light a room?",
            "extra_system_prompt": "You offered to light a room.",
            "preannounce": False,
        },
        blocking=True,
    )
    first = await satellite.runs.get()
    realtime_server.user_transcript = "The kitchen"  # the follow-up is still being recorded
    second = await satellite.runs.get()

    assert first.of("intent-end")["continue_conversation"] == "1"
    assert abs(dominant_hz(first.played[0].pcm, 24000) - 650) < 20
    assert second.of("stt-end")["text"] == "The kitchen"
    assert abs(dominant_hz(second.played[0].pcm, 24000) - 900) < 20
    assert len(realtime_server.of_type("response.cancel")) == 1  # the first reply's only
    assert len(realtime_server.of_type("response.create")) == 5


async def test_an_announcement_on_the_voice_pe_is_read_in_the_models_voice(
    hass: HomeAssistant, satellite: EsphomeSatellite, realtime_server: RealtimeServer
) -> None:
    """`assist_satellite.announce`: the text is read aloud by the model (no conversation, no
    listening afterwards), and the device plays it."""
    realtime_server.script(ScriptedResponse(text="Dinner is ready.", audio=sine_24k(400, 550)))

    await hass.services.async_call(
        "assist_satellite",
        "announce",
        {"entity_id": SATELLITE, "message": "Dinner is ready.", "preannounce": False},
        blocking=True,
    )
    announcement = await satellite.announcements.get()

    assert announcement.text == "Dinner is ready."
    assert not announcement.start_conversation
    [played] = announcement.played
    assert abs(dominant_hz(played.pcm, 24000) - 550) < 20
    items = realtime_server.of_type("conversation.item.create")
    assert [item["item"]["content"][0]["text"] for item in items] == ["Dinner is ready."]
    assert not realtime_server.of_type("input_audio_buffer.commit")
