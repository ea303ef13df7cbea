"""Speech-to-text and text-to-speech subentries, and the speech-to-speech Assist pipeline.

Each kind is a subentry of the service entry (as in Home Assistant's own OpenAI integration);
once an entry has both, the flow offers to create an Assist pipeline with them and the entry's
agent, whose turns are then shared (`shared_turn`).
"""

from __future__ import annotations

from typing import Any, ClassVar, Final

from homeassistant.components import conversation
from homeassistant.components.assist_pipeline import async_get_pipelines
from homeassistant.components.assist_pipeline.pipeline import KEY_ASSIST_PIPELINE
from homeassistant.config_entries import (
    ConfigEntry,
    ConfigEntryState,
    ConfigSubentryFlow,
    SubentryFlowResult,
)
from homeassistant.const import CONF_NAME
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import entity_registry as er
from homeassistant.util import slugify
import probatio as vol

from .const import DOMAIN

SUBENTRY_STT: Final = "stt"
SUBENTRY_TTS: Final = "tts"
CONF_CREATE_PIPELINE: Final = "create_pipeline"
PIPELINE_NAME: Final = "OpenAI Realtime (speech to speech)"
DEFAULT_NAMES: Final = {
    SUBENTRY_STT: "Realtime speech to text",
    SUBENTRY_TTS: "Realtime text to speech",
}


def speech_subentry(entry: ConfigEntry, kind: str) -> str | None:
    """The id of the entry's subentry of a kind (one of each at most)."""
    return next(
        (sub.subentry_id for sub in entry.subentries.values() if sub.subentry_type == kind),
        None,
    )


def speech_entity_id(hass: HomeAssistant, entry: ConfigEntry, kind: str) -> str | None:
    """The entity id of the entry's speech-to-text or text-to-speech, registered at once.

    The entity of a new subentry is added when the entry next loads; registering it here lets
    a pipeline name it before that.
    """
    if (subentry_id := speech_subentry(entry, kind)) is None:
        return None
    registry = er.async_get(hass)
    if entity_id := registry.async_get_entity_id(kind, DOMAIN, subentry_id):
        return entity_id
    return registry.async_get_or_create(
        kind,
        DOMAIN,
        subentry_id,
        config_entry=entry,
        config_subentry_id=subentry_id,
        suggested_object_id=slugify(entry.subentries[subentry_id].title),
    ).entity_id


def speech_pipeline(hass: HomeAssistant, entry: ConfigEntry) -> str | None:
    """The id of a pipeline with the entry's speech-to-text, agent and text-to-speech."""
    stt = speech_entity_id(hass, entry, SUBENTRY_STT)
    tts = speech_entity_id(hass, entry, SUBENTRY_TTS)
    agent = er.async_get(hass).async_get_entity_id(conversation.DOMAIN, DOMAIN, entry.entry_id)
    return next(
        (
            pipeline.id
            for pipeline in async_get_pipelines(hass)
            if (pipeline.stt_engine, pipeline.conversation_engine, pipeline.tts_engine)
            == (stt, agent, tts)
        ),
        None,
    )


async def async_create_speech_pipeline(hass: HomeAssistant, entry: ConfigEntry) -> str:
    """Create the speech-to-speech Assist pipeline of an entry; its id."""
    language = hass.config.language
    store = hass.data[KEY_ASSIST_PIPELINE].pipeline_store
    pipeline = await store.async_create_item(
        {
            "conversation_engine": er.async_get(hass).async_get_entity_id(
                conversation.DOMAIN, DOMAIN, entry.entry_id
            ),
            "conversation_language": language,
            "language": language,
            "name": PIPELINE_NAME,
            "stt_engine": speech_entity_id(hass, entry, SUBENTRY_STT),
            "stt_language": language,
            "tts_engine": speech_entity_id(hass, entry, SUBENTRY_TTS),
            "tts_language": language,
            "tts_voice": None,
            "wake_word_entity": None,
            "wake_word_id": None,
            "prefer_local_intents": False,
        }
    )
    return str(pipeline.id)


@callback
def async_offer_pipeline(hass: HomeAssistant, entry: ConfigEntry) -> None:
    """Create the speech-to-speech pipeline once a subentry flow asked for it.

    The flow cannot: the subentry it adds exists only once the flow has finished. Its answer
    stays in the subentry's data until the entry has both kinds.
    """
    asked = [
        sub
        for sub in entry.subentries.values()
        if sub.subentry_type in (SUBENTRY_STT, SUBENTRY_TTS) and sub.data.get(CONF_CREATE_PIPELINE)
    ]
    if not asked or None in (
        speech_subentry(entry, SUBENTRY_STT),
        speech_subentry(entry, SUBENTRY_TTS),
    ):
        return
    for subentry in asked:
        hass.config_entries.async_update_subentry(entry, subentry, data={})
    if speech_pipeline(hass, entry) is None:
        entry.async_create_task(
            hass, async_create_speech_pipeline(hass, entry), f"{DOMAIN} speech pipeline"
        )


class _SpeechSubentryFlow(ConfigSubentryFlow):
    """Add the entry's speech-to-text or text-to-speech; rename it."""

    kind: ClassVar[str]
    other: ClassVar[str]

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> SubentryFlowResult:
        """Name it; with both kinds there, offer the speech-to-speech pipeline."""
        entry = self._get_entry()
        if entry.state is not ConfigEntryState.LOADED:
            return self.async_abort(reason="entry_not_loaded")
        if speech_subentry(entry, self.kind) is not None:
            return self.async_abort(reason="already_configured")
        offer = speech_subentry(entry, self.other) is not None
        if user_input is not None:
            data = {CONF_CREATE_PIPELINE: True} if user_input.get(CONF_CREATE_PIPELINE) else {}
            return self.async_create_entry(title=user_input[CONF_NAME], data=data)
        schema: dict[Any, Any] = {vol.Required(CONF_NAME, default=DEFAULT_NAMES[self.kind]): str}
        if offer:
            schema[vol.Required(CONF_CREATE_PIPELINE, default=True)] = bool
        return self.async_show_form(step_id="user", data_schema=vol.Schema(schema))

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Rename it."""
        subentry = self._get_reconfigure_subentry()
        if user_input is not None:
            return self.async_update_and_abort(
                self._get_entry(), subentry, title=user_input[CONF_NAME]
            )
        schema = vol.Schema({vol.Required(CONF_NAME, default=subentry.title): str})
        return self.async_show_form(step_id="reconfigure", data_schema=schema)


class SpeechToTextSubentryFlow(_SpeechSubentryFlow):
    """The entry's Realtime speech-to-text."""

    kind = SUBENTRY_STT
    other = SUBENTRY_TTS


class TextToSpeechSubentryFlow(_SpeechSubentryFlow):
    """The entry's Realtime text-to-speech."""

    kind = SUBENTRY_TTS
    other = SUBENTRY_STT
