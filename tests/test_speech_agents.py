"""Speech to text and text to speech with agents as subentries: a shared turn is the turn of the
agent its pipeline names (its model, voice and prices); speech to text transcribes with its own
subentry's model; text to speech alone reads in the voice the pipeline chose (issue 32)."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

from aiohttp.test_utils import TestClient
from homeassistant.components import tts
from homeassistant.config_entries import SOURCE_RECONFIGURE, ConfigSubentry
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.openai_realtime_voice.const import SUBENTRY_CONVERSATION
from custom_components.openai_realtime_voice.realtime.usage import TRANSCRIPTION_PRICES, Usage
from custom_components.openai_realtime_voice.services_api.camera import LOOK_AT_CAMERA_TOOL
from custom_components.openai_realtime_voice.settings import recommended_agent
from custom_components.openai_realtime_voice.usage import effective_prices
from realtime_server import RealtimeServer, ScriptedResponse, default_usage
from realtime_server.discipline import TOKEN_USAGE
from tests.speech_helpers import (
    TTS,
    create_pipeline,
    entry,  # noqa: F401 - the entry with speech subentries
    fetch_speech,
    run_speech,
    sine_24k,
    speech_16k,
)

KIDS = "conversation.kids_room"
KIDS_MODEL = "gpt-realtime-2.1-mini"


async def _add_kids_agent(hass: HomeAssistant, config_entry: MockConfigEntry) -> None:
    """A second agent with its own model, voice and prices, added while the entry is loaded."""
    hass.config_entries.async_add_subentry(
        config_entry,
        ConfigSubentry(
            data=MappingProxyType(
                {
                    **recommended_agent(),
                    "model": KIDS_MODEL,
                    "voice": "cedar",
                    "prices": "text_in=1000",
                }
            ),
            subentry_type=SUBENTRY_CONVERSATION,
            title="Kids' room",
            unique_id=None,
        ),
    )
    await hass.async_block_till_done()
    assert hass.states.get(KIDS) is not None


def _stt_subentry(config_entry: MockConfigEntry) -> ConfigSubentry:
    return next(sub for sub in config_entry.subentries.values() if sub.subentry_type == "stt")


async def test_shared_turn_is_the_turn_of_the_pipelines_agent(
    hass: HomeAssistant,
    entry: MockConfigEntry,  # noqa: F811 - the fixture of speech_helpers
    realtime_server: RealtimeServer,
    hass_ws_client: Any,
    hass_client: Any,
) -> None:
    """A pipeline with the second agent shares that agent's turn: its model and voice answer,
    the agent takes the answer (no second user message), and the response is priced at its
    model and overrides."""
    await _add_kids_agent(hass, entry)
    ws = await hass_ws_client(hass)
    pipeline_id = await create_pipeline(ws, agent=KIDS)
    realtime_server.user_transcript = "What time is it?"
    realtime_server.script(ScriptedResponse(text="It is noon.", audio=sine_24k(300)))
    usage = entry.runtime_data.usage
    before = usage.cost_usd

    run = await run_speech(ws, pipeline_id, speech_16k(600))
    client: TestClient = await hass_client()
    await fetch_speech(client, run.tts_url)
    await hass.async_block_till_done()

    assert run.of("intent-end")["intent_output"]["response"]["speech"]["plain"]["speech"] == (
        "It is noon."
    )
    assert realtime_server.models[-1] == KIDS_MODEL
    update = realtime_server.of_type("session.update")[0]["session"]
    assert update["audio"]["output"]["voice"] == "cedar"
    assert len(realtime_server.of_type("response.create")) == 1
    assert not realtime_server.of_type("conversation.item.create")
    one = Usage()
    one.add(default_usage())
    kids = effective_prices(KIDS_MODEL, {"text_in": 1000.0})
    assert kids is not None
    transcription = Usage()
    transcription.add_transcription(realtime_server.discipline.transcription_usage)
    expected = one.cost(kids) + transcription.cost(kids)
    expected += transcription.transcription_cost(TRANSCRIPTION_PRICES["gpt-4o-mini-transcribe"])
    assert usage.cost_usd - before == pytest.approx(expected)


async def test_speech_to_text_transcribes_with_its_own_model(
    hass: HomeAssistant,
    entry: MockConfigEntry,  # noqa: F811 - the fixture of speech_helpers
    realtime_server: RealtimeServer,
    hass_ws_client: Any,
) -> None:
    """The speech-to-text subentry's transcription model (changed in its form) transcribes and
    prices the speech, whatever the agents' transcription settings."""
    stt = _stt_subentry(entry)
    form = await hass.config_entries.subentries.async_init(
        (entry.entry_id, "stt"),
        context={"source": SOURCE_RECONFIGURE, "subentry_id": stt.subentry_id},
    )
    assert form["type"] is FlowResultType.FORM
    done = await hass.config_entries.subentries.async_configure(
        form["flow_id"], {"name": stt.title, "transcription_model": "gpt-4o-transcribe"}
    )
    assert done["reason"] == "reconfigure_successful"
    assert entry.subentries[stt.subentry_id].data == {"transcription_model": "gpt-4o-transcribe"}
    ws = await hass_ws_client(hass)
    pipeline_id = await create_pipeline(ws, agent="conversation.home_assistant", tts=None)
    realtime_server.user_transcript = "Turn on the kitchen lights"
    realtime_server.discipline.transcription_usage = dict(TOKEN_USAGE)
    usage = entry.runtime_data.usage
    before = usage.cost_usd

    run = await run_speech(ws, pipeline_id, speech_16k(600), end_stage="intent")

    assert run.of("stt-end")["stt_output"]["text"] == "Turn on the kitchen lights"
    update = realtime_server.of_type("session.update")[0]["session"]
    assert update["audio"]["input"]["transcription"]["model"] == "gpt-4o-transcribe"
    one = Usage()
    one.add_transcription(TOKEN_USAGE)
    first = effective_prices(str(recommended_agent()["model"]), {})
    assert first is not None
    expected = one.cost(first) + one.transcription_cost(TRANSCRIPTION_PRICES["gpt-4o-transcribe"])
    assert usage.cost_usd - before == pytest.approx(expected)
    assert expected != pytest.approx(
        one.cost(first) + one.transcription_cost(TRANSCRIPTION_PRICES["gpt-4o-mini-transcribe"])
    )


async def test_text_to_speech_alone_reads_in_the_chosen_voice(
    hass: HomeAssistant,
    entry: MockConfigEntry,  # noqa: F811 - the fixture of speech_helpers
    realtime_server: RealtimeServer,
    hass_ws_client: Any,
) -> None:
    """Without a shared turn the first agent's model reads the text, in the voice a pipeline
    or `tts.speak` chose; the voices are offered to Home Assistant's voice picker."""
    ws = await hass_ws_client(hass)
    await ws.send_json_auto_id({"type": "tts/engine/voices", "engine_id": TTS, "language": "en"})
    voices = (await ws.receive_json())["result"]["voices"]
    assert "cedar" in [voice["voice_id"] for voice in voices]
    realtime_server.script(ScriptedResponse(text="Dinner is ready.", audio=sine_24k(200)))
    media_id = tts.generate_media_source_id(
        hass, "Dinner is ready.", engine=TTS, cache=False, options={tts.ATTR_VOICE: "cedar"}
    )

    await tts.async_get_media_source_audio(hass, media_id)

    update = realtime_server.of_type("session.update")[0]["session"]
    assert update["audio"]["output"]["voice"] == "cedar"
    assert realtime_server.models[-1] == recommended_agent()["model"]


@pytest.mark.usefixtures("cameras")
async def test_shared_turn_offers_the_agents_tools(
    hass: HomeAssistant,
    entry: MockConfigEntry,  # noqa: F811 - the fixture of speech_helpers
    realtime_server: RealtimeServer,
    hass_ws_client: Any,
    hass_client: Any,
) -> None:
    """The answer started during speech to text offers what the agent offers in its own turns
    (its services allowlist and image input): here the camera tool of an agent with image
    input on."""
    ws = await hass_ws_client(hass)
    pipeline_id = await create_pipeline(ws)
    realtime_server.user_transcript = "What do you see?"
    realtime_server.script(ScriptedResponse(text="Nothing.", audio=sine_24k(200)))

    run = await run_speech(ws, pipeline_id, speech_16k(600))
    await fetch_speech(await hass_client(), run.tts_url)

    tools = realtime_server.of_type("session.update")[0]["session"]["tools"]
    assert [tool["name"] for tool in tools if tool["name"].endswith(LOOK_AT_CAMERA_TOOL)]
