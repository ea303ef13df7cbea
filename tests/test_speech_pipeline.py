"""Speech to speech through Home Assistant's real Assist pipeline, as the browser runs it.

With this integration's speech-to-text, agent and text-to-speech in one pipeline, the three
share one Realtime turn: the speech goes into the conversation's session, the answer starts
when the speech ends, and the speech of the answer is the model's own audio (issue 32).
"""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient
from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry

from tests.pipeline_providers import dominant_hz
from tests.realtime_server import RealtimeServer, ScriptedResponse
from tests.speech_helpers import create_pipeline, fetch_speech, run_speech, sine_24k, speech_16k


async def test_shared_turn_answers_with_the_models_own_audio(
    hass: HomeAssistant,
    entry: MockConfigEntry,
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
    # One session, one committed turn, one response: the agent sent no second user message.
    assert len(realtime_server.of_type("input_audio_buffer.commit")) == 1
    assert len(realtime_server.of_type("response.create")) == 1
    assert not realtime_server.of_type("conversation.item.create")
