"""Speech-to-text and text-to-speech subentries, and the speech-to-speech Assist pipeline.

Each kind is a subentry of the service entry (as in Home Assistant's own OpenAI integration);
the speech-to-text subentry holds its transcription model. Once an entry has both, the flow
offers to create an Assist pipeline with them and the entry's first agent; in a pipeline with
any agent of the entry, that agent's turns are then shared (`shared_turn`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Final

from homeassistant.components import conversation
from homeassistant.components.assist_pipeline import async_get_pipelines
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

from .agents import agent_subentries, first_agent
from .const import (
    CONF_TRANSCRIPTION_MODEL,
    DOMAIN,
    RECOMMENDED_TRANSCRIPTION_MODEL,
    TRANSCRIPTION_MODELS,
    TRANSCRIPTION_OFF,
)
from .flow_schemas import select
from .pipeline_shim import create_pipeline

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


def agent_entity_id(hass: HomeAssistant, agent_id: str) -> str | None:
    """The conversation entity of an agent subentry."""
    return er.async_get(hass).async_get_entity_id(conversation.DOMAIN, DOMAIN, agent_id)


def speech_pipeline(hass: HomeAssistant, entry: ConfigEntry) -> str | None:
    """The id of a pipeline with the entry's speech-to-text, one of its agents and its
    text-to-speech."""
    stt = speech_entity_id(hass, entry, SUBENTRY_STT)
    tts = speech_entity_id(hass, entry, SUBENTRY_TTS)
    agents = {agent_entity_id(hass, agent.subentry_id) for agent in agent_subentries(entry)}
    return next(
        (
            pipeline.id
            for pipeline in async_get_pipelines(hass)
            if (pipeline.stt_engine, pipeline.tts_engine) == (stt, tts)
            and pipeline.conversation_engine in agents - {None}
        ),
        None,
    )


async def async_create_speech_pipeline(hass: HomeAssistant, entry: ConfigEntry) -> str:
    """Create the speech-to-speech Assist pipeline of an entry, with its first agent; its id."""
    language = hass.config.language
    agent = first_agent(entry)
    return await create_pipeline(
        hass,
        {
            "conversation_engine": agent_entity_id(hass, agent.subentry_id) if agent else None,
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
        },
    )


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
        first_agent(entry),
    ):
        return
    for subentry in asked:
        data = {k: v for k, v in subentry.data.items() if k != CONF_CREATE_PIPELINE}
        hass.config_entries.async_update_subentry(entry, subentry, data=data)
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
            data = {
                k: v for k, v in user_input.items() if k not in (CONF_NAME, CONF_CREATE_PIPELINE)
            }
            if user_input.get(CONF_CREATE_PIPELINE):
                data[CONF_CREATE_PIPELINE] = True
            return self.async_create_entry(title=user_input[CONF_NAME], data=data)
        schema: dict[Any, Any] = {
            vol.Required(CONF_NAME, default=DEFAULT_NAMES[self.kind]): str,
            **self.settings_schema({}),
        }
        if offer:
            schema[vol.Required(CONF_CREATE_PIPELINE, default=True)] = bool
        return self.async_show_form(step_id="user", data_schema=vol.Schema(schema))

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Rename it (and change its settings)."""
        subentry = self._get_reconfigure_subentry()
        if user_input is not None:
            data = {k: v for k, v in user_input.items() if k != CONF_NAME}
            return self.async_update_and_abort(
                self._get_entry(), subentry, title=user_input[CONF_NAME], data=data
            )
        schema = vol.Schema(
            {
                vol.Required(CONF_NAME, default=subentry.title): str,
                **self.settings_schema(subentry.data),
            }
        )
        return self.async_show_form(step_id="reconfigure", data_schema=schema)

    def settings_schema(self, data: Mapping[str, Any]) -> dict[Any, Any]:
        """The fields of the kind's own settings (none: its name only)."""
        return {}


class SpeechToTextSubentryFlow(_SpeechSubentryFlow):
    """The entry's Realtime speech-to-text, with its transcription model (as Home Assistant's
    OpenAI speech-to-text has its model)."""

    kind = SUBENTRY_STT
    other = SUBENTRY_TTS

    def settings_schema(self, data: Mapping[str, Any]) -> dict[Any, Any]:
        """The transcription model (it transcribes in a shared turn too)."""
        model = data.get(CONF_TRANSCRIPTION_MODEL, RECOMMENDED_TRANSCRIPTION_MODEL)
        models = tuple(m for m in TRANSCRIPTION_MODELS if m != TRANSCRIPTION_OFF)
        return {
            vol.Required(CONF_TRANSCRIPTION_MODEL, default=model): select(
                models, CONF_TRANSCRIPTION_MODEL, custom=True
            )
        }


class TextToSpeechSubentryFlow(_SpeechSubentryFlow):
    """The entry's Realtime text-to-speech."""

    kind = SUBENTRY_TTS
    other = SUBENTRY_STT
