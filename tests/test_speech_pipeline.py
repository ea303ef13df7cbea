"""Speech to speech through Home Assistant's real Assist pipeline, as the browser runs it.

With this integration's speech-to-text, agent and text-to-speech in one pipeline, the three
share one Realtime turn: the speech goes into the conversation's session, the answer starts
when the speech ends, and the speech of the answer is the model's own audio (issue 32).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from aiohttp.test_utils import TestClient
from homeassistant.components import assist_pipeline, stt, tts
from homeassistant.core import Context, HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.util.ulid import ulid_now
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.openai_realtime_voice import shared_turn
from realtime_server import RealtimeServer, ScriptedCall, ScriptedResponse, default_usage
from realtime_server.discipline import TOKEN_USAGE
from tests.agent_helpers import TURN_ON, agent_of
from tests.pipeline_providers import dominant_hz
from tests.speech_helpers import (
    TTS,
    create_pipeline,
    entry,  # noqa: F401 - the entry with speech subentries
    fetch_speech,
    run_speech,
    sine_24k,
    speech_16k,
)

LATENCY = "sensor.openai_realtime_assist_response_latency"
AUDIO_OUTPUT_TOKENS = "sensor.openai_realtime_audio_output_tokens"
TRANSCRIPTION_TOKENS = "sensor.openai_realtime_transcription_tokens"


async def test_shared_turn_answers_with_the_models_own_audio(
    hass: HomeAssistant,
    entry: MockConfigEntry,  # noqa: F811 - the fixture of speech_helpers
    realtime_server: RealtimeServer,
    hass_ws_client: Any,
    hass_client: Any,
) -> None:
    """One response answers the spoken turn; the text-to-speech is its audio, not a reading."""
    ws = await hass_ws_client(hass)
    pipeline_id = await create_pipeline(ws)
    answer_audio = sine_24k(400)
    realtime_server.user_transcript = "What time is it?"
    realtime_server.script(ScriptedResponse(text="It is noon.", audio=answer_audio))

    run = await run_speech(ws, pipeline_id, speech_16k(600))

    assert run.types == [
        "run-start",
        "stt-start",
        "stt-end",
        "intent-start",
        "intent-progress",
        "intent-progress",
        "intent-progress",
        "intent-end",
        "tts-start",
        "tts-end",
        "run-end",
    ], run.types
    assert run.of("stt-end")["stt_output"]["text"] == "What time is it?"
    intent = run.of("intent-end")["intent_output"]
    assert intent["response"]["speech"]["plain"]["speech"] == "It is noon."
    client: TestClient = await hass_client()
    pcm = await fetch_speech(client, run.tts_url)
    assert abs(dominant_hz(pcm, 24000) - 700) < 20
    assert len(pcm) >= len(answer_audio)
    # Pipeline debug (Settings -> Voice assistants -> Debug) shows the run's stages.
    [run_id] = await _run_ids(ws, pipeline_id)
    await ws.send_json_auto_id(
        {
            "type": "assist_pipeline/pipeline_debug/get",
            "pipeline_id": pipeline_id,
            "pipeline_run_id": run_id,
        }
    )
    debug = (await ws.receive_json())["result"]
    recorded = [event["type"] for event in debug["events"]]
    assert recorded == run.types
    # One session, one committed turn, one response: the agent sent no second user message.
    assert len(realtime_server.of_type("input_audio_buffer.commit")) == 1
    assert len(realtime_server.of_type("response.create")) == 1
    assert not realtime_server.of_type("conversation.item.create")


async def _run_ids(ws: Any, pipeline_id: str) -> list[str]:
    await ws.send_json_auto_id(
        {"type": "assist_pipeline/pipeline_debug/list", "pipeline_id": pipeline_id}
    )
    return [run["pipeline_run_id"] for run in (await ws.receive_json())["result"]["pipeline_runs"]]


async def test_shared_turn_runs_tools_and_keeps_the_conversation(
    hass: HomeAssistant,
    entry: MockConfigEntry,  # noqa: F811 - the fixture of speech_helpers
    realtime_server: RealtimeServer,
    hass_ws_client: Any,
    hass_client: Any,
) -> None:
    """A tool call turns the light on, its follow-up speaks in the same stream; the next turn
    of the conversation continues the same session, and a question keeps the mic open."""
    ws = await hass_ws_client(hass)
    pipeline_id = await create_pipeline(ws)
    client: TestClient = await hass_client()
    realtime_server.user_transcript = "Turn on the kitchen lights"
    realtime_server.script(
        ScriptedResponse(calls=[ScriptedCall(TURN_ON, '{"name": "Kitchen Lights"}')]),
        ScriptedResponse(text="Done. Anything else?", audio=sine_24k(300, 600)),
    )

    first = await run_speech(ws, pipeline_id, speech_16k(600))

    assert hass.states.get("light.kitchen_lights").state == "on"
    intent = first.of("intent-end")["intent_output"]
    assert intent["response"]["speech"]["plain"]["speech"] == "Done. Anything else?"
    assert intent["continue_conversation"] is True
    pcm = await fetch_speech(client, first.tts_url)
    assert abs(dominant_hz(pcm, 24000) - 600) < 20
    outputs = realtime_server.of_type("conversation.item.create")
    assert [event["item"]["type"] for event in outputs] == ["function_call_output"]

    realtime_server.user_transcript = "No, thanks"
    realtime_server.script(ScriptedResponse(text="Bye.", audio=sine_24k(200, 800)))
    second = await run_speech(ws, pipeline_id, speech_16k(400), first.conversation_id)

    assert second.conversation_id == first.conversation_id
    assert second.of("intent-end")["intent_output"]["continue_conversation"] is False
    pcm = await fetch_speech(client, second.tts_url)
    assert abs(dominant_hz(pcm, 24000) - 800) < 20
    # The same session all along: nothing replayed, one commit per turn.
    assert len(realtime_server.of_type("session.update")) == 1
    assert len(realtime_server.of_type("input_audio_buffer.commit")) == 2
    assert len(realtime_server.of_type("conversation.item.create")) == 1


async def test_an_answer_home_assistant_gave_itself_is_withdrawn_and_read_aloud(
    hass: HomeAssistant,
    entry: MockConfigEntry,  # noqa: F811 - the fixture of speech_helpers
    realtime_server: RealtimeServer,
    hass_ws_client: Any,
    hass_client: Any,
) -> None:
    """A local intent answers: the model's answer is cancelled and taken out of the
    conversation, and text-to-speech reads Home Assistant's own answer in the same voice."""
    ws = await hass_ws_client(hass)
    pipeline_id = await create_pipeline(ws, prefer_local_intents=True)
    hold = asyncio.Event()
    realtime_server.user_transcript = "Turn on the kitchen lights"
    realtime_server.script(
        ScriptedResponse(text="Sure, turning it on.", audio=sine_24k(300, 600), hold=hold),
        ScriptedResponse(text="Turned on the light", audio=sine_24k(300, 900)),
    )

    run = await run_speech(ws, pipeline_id, speech_16k(600))

    assert run.of("intent-end")["processed_locally"] is True
    assert hass.states.get("light.kitchen_lights").state == "on"
    client: TestClient = await hass_client()
    pcm = await fetch_speech(client, run.tts_url)
    assert abs(dominant_hz(pcm, 24000) - 900) < 20
    cancel = await realtime_server.wait_for("response.cancel")
    assert cancel["response_id"]
    deleted = await realtime_server.wait_for("conversation.item.delete", 2)
    assert deleted["item_id"]
    reading = [
        event["item"]
        for event in realtime_server.of_type("conversation.item.create")
        if event["item"].get("role") == "user"
    ]
    assert [item["content"][0]["text"] for item in reading] == [
        run.of("intent-end")["intent_output"]["response"]["speech"]["plain"]["speech"]
    ]
    assert not realtime_server.violations


async def test_text_to_speech_alone_reads_the_text_in_the_agents_voice(
    hass: HomeAssistant,
    entry: MockConfigEntry,  # noqa: F811 - the fixture of speech_helpers
    realtime_server: RealtimeServer,
) -> None:
    """`tts.speak` and announcements: no turn, the model reads the text aloud (WAV 24 kHz)."""
    realtime_server.script(ScriptedResponse(text="Dinner is ready.", audio=sine_24k(200)))
    media_id = tts.generate_media_source_id(hass, "Dinner is ready.", engine=TTS, cache=False)

    extension, data = await tts.async_get_media_source_audio(hass, media_id)

    assert extension == "mp3"  # what Home Assistant makes of it when nothing else is asked
    update = realtime_server.of_type("session.update")[0]["session"]
    assert update["audio"]["output"]["voice"] == agent_of(entry).data["voice"]
    assert update["audio"]["input"]["turn_detection"] is None
    items = realtime_server.of_type("conversation.item.create")
    assert [item["item"]["content"][0]["text"] for item in items] == ["Dinner is ready."]
    assert len(realtime_server.of_type("response.create")) == 1
    assert data


async def test_speech_to_text_alone_transcribes(
    hass: HomeAssistant,
    entry: MockConfigEntry,  # noqa: F811 - the fixture of speech_helpers
    realtime_server: RealtimeServer,
    hass_ws_client: Any,
) -> None:
    """With another agent, speech-to-text only transcribes: no answer is started."""
    ws = await hass_ws_client(hass)
    pipeline_id = await create_pipeline(ws, agent="conversation.home_assistant", tts=None)
    realtime_server.user_transcript = "Turn on the kitchen lights"

    run = await run_speech(ws, pipeline_id, speech_16k(600), end_stage="intent")

    assert run.of("stt-end")["stt_output"]["text"] == "Turn on the kitchen lights"
    assert hass.states.get("light.kitchen_lights").state == "on"
    assert not realtime_server.of_type("response.create")
    update = realtime_server.of_type("session.update")[0]["session"]
    assert update["audio"]["input"]["transcription"]["language"] == "en"


async def test_speech_to_text_reports_a_failed_transcription(
    hass: HomeAssistant,
    entry: MockConfigEntry,  # noqa: F811 - the fixture of speech_helpers
    realtime_server: RealtimeServer,
    hass_ws_client: Any,
) -> None:
    """A transcription the service failed ends the run with Home Assistant's STT error."""
    ws = await hass_ws_client(hass)
    pipeline_id = await create_pipeline(ws)
    realtime_server.user_transcript = "Hello"
    realtime_server.transcription_fails = True
    realtime_server.script(ScriptedResponse(text="Hi.", audio=sine_24k(200)))

    run = await run_speech(ws, pipeline_id, speech_16k(600))

    assert run.types[-2:] == ["error", "run-end"] or run.types[-1] == "error"
    assert run.of("error")["code"] in ("stt-no-text-recognized", "stt-stream-failed")
    # The answer that started is taken back: the conversation has no wordless turn.
    await realtime_server.wait_for("conversation.item.delete")


async def test_shared_turns_are_counted_and_timed(
    hass: HomeAssistant,
    entry: MockConfigEntry,  # noqa: F811 - the fixture of speech_helpers
    realtime_server: RealtimeServer,
    hass_ws_client: Any,
    hass_client: Any,
) -> None:
    """The usage sensors count a shared turn's response and transcription once; the speech
    latency sensor shows the turn's latency."""
    ws = await hass_ws_client(hass)
    pipeline_id = await create_pipeline(ws)
    realtime_server.user_transcript = "What time is it?"
    realtime_server.discipline.transcription_usage = dict(TOKEN_USAGE)
    realtime_server.script(ScriptedResponse(text="It is noon.", audio=sine_24k(300)))
    assert hass.states.get(LATENCY).state == "unknown"

    run = await run_speech(ws, pipeline_id, speech_16k(600))
    client: TestClient = await hass_client()
    await fetch_speech(client, run.tts_url)
    await hass.async_block_till_done()

    usage = default_usage()
    audio_out = usage["output_token_details"]["audio_tokens"]
    assert int(hass.states.get(AUDIO_OUTPUT_TOKENS).state) == audio_out
    assert int(hass.states.get(TRANSCRIPTION_TOKENS).state) == TOKEN_USAGE["total_tokens"]
    latency = float(hass.states.get(LATENCY).state)
    assert 0 < latency < 5000


async def test_a_run_that_ends_at_speech_to_text_starts_no_answer(
    hass: HomeAssistant,
    entry: MockConfigEntry,  # noqa: F811 - the fixture of speech_helpers
    realtime_server: RealtimeServer,
    hass_ws_client: Any,
) -> None:
    """`assist_satellite.ask_question` runs the pipeline to speech to text only: the speech is
    transcribed and no answer is started (nobody would take it)."""
    ws = await hass_ws_client(hass)
    pipeline_id = await create_pipeline(ws)
    realtime_server.user_transcript = "The kitchen"

    run = await run_speech(ws, pipeline_id, speech_16k(600), end_stage="stt")

    assert run.of("stt-end")["stt_output"]["text"] == "The kitchen"
    assert not realtime_server.of_type("response.create")


async def test_a_turn_started_with_an_extra_prompt_is_answered_anew(
    hass: HomeAssistant,
    entry: MockConfigEntry,  # noqa: F811 - the fixture of speech_helpers
    realtime_server: RealtimeServer,
    hass_ws_client: Any,
) -> None:
    """`start_conversation` gives the run an extra prompt speech to text never saw: the answer
    started without it is withdrawn before the agent answers with it (and it is read aloud)."""
    ws = await hass_ws_client(hass)
    pipeline_id = await create_pipeline(ws)
    realtime_server.user_transcript = "The kitchen"
    hold = asyncio.Event()
    realtime_server.script(
        ScriptedResponse(text="Which room?", audio=sine_24k(300, 600), hold=hold),
        ScriptedResponse(text="The kitchen lights are on."),
        ScriptedResponse(text="The kitchen lights are on.", audio=sine_24k(300, 900)),
    )
    events: list[assist_pipeline.PipelineEvent] = []

    async def speech() -> AsyncIterator[bytes]:
        yield speech_16k(600)

    await assist_pipeline.async_pipeline_from_audio_stream(
        hass,
        context=Context(),
        event_callback=events.append,
        stt_metadata=stt.SpeechMetadata(
            language="en",
            format=stt.AudioFormats.WAV,
            codec=stt.AudioCodecs.PCM,
            bit_rate=stt.AudioBitRates.BITRATE_16,
            sample_rate=stt.AudioSampleRates.SAMPLERATE_16000,
            channel=stt.AudioChannels.CHANNEL_MONO,
        ),
        stt_stream=speech(),
        pipeline_id=pipeline_id,
        conversation_extra_system_prompt="You asked the user which room to light.",
    )

    [intent_end] = [e for e in events if e.type is assist_pipeline.PipelineEventType.INTENT_END]
    speech_text = intent_end.data["intent_output"]["response"]["speech"]["plain"]["speech"]
    assert speech_text == "The kitchen lights are on."
    assert realtime_server.of_type("response.cancel")
    assert realtime_server.of_type("conversation.item.delete")
    instructions = realtime_server.of_type("session.update")[-1]["session"].get("instructions")
    assert instructions is None or "which room to light" in instructions


async def test_a_service_that_refuses_ends_the_run_with_a_clear_error(
    hass: HomeAssistant,
    entry: MockConfigEntry,  # noqa: F811 - the fixture of speech_helpers
    realtime_server: RealtimeServer,
    hass_ws_client: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Out of quota: the run ends with Home Assistant's speech-to-text error, one log line says
    why, and no traceback is logged."""
    ws = await hass_ws_client(hass)
    pipeline_id = await create_pipeline(ws)
    realtime_server.on_connect_error = {
        "type": "insufficient_quota",
        "code": "insufficient_quota",
        "message": "You exceeded your current quota.",
    }

    run = await run_speech(ws, pipeline_id, speech_16k(600))

    assert run.of("error")["code"] == "stt-stream-failed"
    assert "Speech to text failed" in caplog.text
    assert "quota" in caplog.text
    assert "Traceback" not in caplog.text
    assert not realtime_server.of_type("response.create")


async def test_an_answer_without_a_transcript_is_withdrawn_at_once(
    hass: HomeAssistant,
    entry: MockConfigEntry,  # noqa: F811 - the fixture of speech_helpers
    realtime_server: RealtimeServer,
    hass_ws_client: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No transcript in time: the run ends with an error and the started answer is taken back
    then, not when the wait for the agent runs out."""
    monkeypatch.setattr(shared_turn, "TRANSCRIPT_TIMEOUT", 0.3)
    monkeypatch.setattr(shared_turn, "UNCLAIMED_TIMEOUT", 600)
    ws = await hass_ws_client(hass)
    pipeline_id = await create_pipeline(ws)
    realtime_server.user_transcript = None  # the transcript never comes
    realtime_server.script(ScriptedResponse(text="Hi.", audio=sine_24k(200)))

    run = await run_speech(ws, pipeline_id, speech_16k(600))

    assert run.of("error")["code"] == "stt-stream-failed"
    async with asyncio.timeout(5):
        await realtime_server.wait_for("conversation.item.delete", 2)
    # The user's audio goes too, though it was never transcribed: the conversation is empty.
    deleted = {event["item_id"] for event in realtime_server.of_type("conversation.item.delete")}
    assert len(deleted) == 2
    assert not realtime_server.session.items


async def test_a_used_up_budget_pauses_the_reading_too(
    hass: HomeAssistant,
    entry: MockConfigEntry,  # noqa: F811 - the fixture of speech_helpers
    realtime_server: RealtimeServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With the budget used up (action: the Assist pipeline), text to speech opens no session."""
    budget = entry.runtime_data.budget
    budget.limit = 0.001
    entry.runtime_data.usage.record(default_usage())
    assert budget.blocks_realtime
    connections = realtime_server.connections
    media_id = tts.generate_media_source_id(hass, "Hello.", engine=TTS, cache=False)

    with pytest.raises(HomeAssistantError):
        await tts.async_get_media_source_audio(hass, media_id)

    assert realtime_server.connections == connections
    assert "Text to speech failed" in caplog.text
    assert "budget" in caplog.text


async def test_a_long_answer_starts_speaking_while_the_agent_writes(
    hass: HomeAssistant,
    entry: MockConfigEntry,  # noqa: F811 - the fixture of speech_helpers
    realtime_server: RealtimeServer,
    hass_ws_client: Any,
    hass_client: Any,
) -> None:
    """Past 60 characters Home Assistant streams text to speech before the agent is done: the
    stream it opens is the shared turn's audio too."""
    ws = await hass_ws_client(hass)
    pipeline_id = await create_pipeline(ws)
    realtime_server.user_transcript = "Tell me about the weather"
    long_answer = "It will be sunny all day, with a light breeze and a high of twenty-four degrees."
    realtime_server.script(ScriptedResponse(text=long_answer, audio=sine_24k(500), chunks=4))

    run = await run_speech(ws, pipeline_id, speech_16k(600))

    progress = [e["data"] for e in run.events if e["type"] == "intent-progress"]
    assert {"tts_start_streaming": True} in progress
    client: TestClient = await hass_client()
    pcm = await fetch_speech(client, run.tts_url)
    assert abs(dominant_hz(pcm, 24000) - 700) < 20
    assert len(realtime_server.of_type("response.create")) == 1


async def test_a_shared_turns_audio_is_not_kept_on_disk(
    hass: HomeAssistant,
    entry: MockConfigEntry,  # noqa: F811 - the fixture of speech_helpers
    realtime_server: RealtimeServer,
    hass_ws_client: Any,
    hass_client: Any,
) -> None:
    """A short answer is not written to Home Assistant's speech cache folder: it is this
    turn's audio, never to be served again."""
    ws = await hass_ws_client(hass)
    pipeline_id = await create_pipeline(ws)
    realtime_server.user_transcript = "What time is it?"
    realtime_server.script(ScriptedResponse(text="It is noon.", audio=sine_24k(300)))

    run = await run_speech(ws, pipeline_id, speech_16k(600))
    client: TestClient = await hass_client()
    await fetch_speech(client, run.tts_url)
    await hass.async_block_till_done()

    stream = tts.async_get_stream(hass, run.of("run-start")["tts_output"]["token"])
    assert stream is not None
    assert stream.async_get_media_path() is None


async def test_the_same_words_twice_are_fresh_audio_each_time(
    hass: HomeAssistant,
    entry: MockConfigEntry,  # noqa: F811 - the fixture of speech_helpers
    realtime_server: RealtimeServer,
    hass_ws_client: Any,
    hass_client: Any,
) -> None:
    """Home Assistant keeps speech by its words: a second "It is noon." is still the model's
    audio of that turn, not the first turn's from the cache; `tts.speak` is cached as usual."""
    ws = await hass_ws_client(hass)
    pipeline_id = await create_pipeline(ws)
    client: TestClient = await hass_client()
    realtime_server.user_transcript = "What time is it?"
    for hz in (600, 900):
        realtime_server.script(ScriptedResponse(text="It is noon.", audio=sine_24k(300, hz)))
        run = await run_speech(ws, pipeline_id, speech_16k(600))
        pcm = await fetch_speech(client, run.tts_url)
        assert abs(dominant_hz(pcm, 24000) - hz) < 20

    connections = realtime_server.connections
    text = f"Announcement {ulid_now()}."  # not in the cache folder from an earlier test run
    media_id = tts.generate_media_source_id(hass, text, engine=TTS)
    realtime_server.script(ScriptedResponse(text=text, audio=sine_24k(200)))
    await tts.async_get_media_source_audio(hass, media_id)
    await tts.async_get_media_source_audio(hass, media_id)
    assert realtime_server.connections == connections + 1  # the second came from the cache
