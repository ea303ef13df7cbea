"""Speech-to-text and text-to-speech as subentries, and the speech-to-speech pipeline offer."""

from __future__ import annotations

from homeassistant.components.assist_pipeline import async_get_pipelines
from homeassistant.config_entries import SOURCE_RECONFIGURE, SOURCE_USER
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.openai_realtime_voice.speech_flow import PIPELINE_NAME
from tests.agent_helpers import AGENT

STT = "stt.realtime_speech_to_text"
TTS = "tts.realtime_text_to_speech"


async def _add(hass: HomeAssistant, entry: MockConfigEntry, kind: str, **answers: object) -> dict:
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, kind), context={"source": SOURCE_USER}
    )
    if result["type"] is not FlowResultType.FORM:
        return dict(result)
    fields = {str(key) for key in result["data_schema"].schema}
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {key: value for key, value in answers.items() if key in fields}
    )
    await hass.async_block_till_done()
    return {**result, "fields": fields}


async def test_adding_both_offers_and_creates_the_pipeline(
    hass: HomeAssistant, entry: MockConfigEntry
) -> None:
    """The first kind is named (speech to text with its transcription model); the second offers
    the pipeline, which uses both and the entry's first agent."""
    first = await _add(hass, entry, "stt", name="Realtime speech to text", create_pipeline=True)
    assert first["type"] is FlowResultType.CREATE_ENTRY
    assert first["fields"] == {"name", "transcription_model"}
    assert hass.states.get(STT) is not None  # added while the entry stays loaded

    second = await _add(hass, entry, "tts", name="Realtime text to speech", create_pipeline=True)
    assert second["type"] is FlowResultType.CREATE_ENTRY
    assert second["fields"] == {"name", "create_pipeline"}
    assert hass.states.get(TTS) is not None
    [pipeline] = [p for p in async_get_pipelines(hass) if p.name == PIPELINE_NAME]
    assert (pipeline.stt_engine, pipeline.conversation_engine, pipeline.tts_engine) == (
        STT,
        AGENT,
        TTS,
    )
    speech = {sub.subentry_type: dict(sub.data) for sub in entry.subentries.values()}
    assert speech["stt"] == {"transcription_model": "gpt-4o-mini-transcribe"}  # the asked-for
    assert speech["tts"] == {}  # pipeline is made: the request is gone, the settings stay

    again = await _add(hass, entry, "stt")
    assert again["type"] is FlowResultType.ABORT
    assert again["reason"] == "already_configured"


async def test_declining_the_pipeline_creates_none(
    hass: HomeAssistant, entry: MockConfigEntry
) -> None:
    """Without the box ticked, the subentries come without a pipeline."""
    await _add(hass, entry, "tts", name="Realtime text to speech")
    await _add(hass, entry, "stt", name="Realtime speech to text", create_pipeline=False)
    assert not [p for p in async_get_pipelines(hass) if p.name == PIPELINE_NAME]


async def test_renaming_a_speech_subentry(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    """Reconfigure renames the subentry."""
    await _add(hass, entry, "stt", name="Realtime speech to text")
    subentry_id = next(
        iter(s for s in entry.subentries if entry.subentries[s].subentry_type == "stt")
    )
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, "stt"),
        context={"source": SOURCE_RECONFIGURE, "subentry_id": subentry_id},
    )
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {"name": "Kitchen ears"}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    assert entry.subentries[subentry_id].title == "Kitchen ears"
