"""Text to speech in the Realtime model's voice: the audio of a shared turn, or text read aloud."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from typing import Any, override

from homeassistant.components import tts
from homeassistant.components.tts.entity import TTSAudioRequest, TTSAudioResponse
from homeassistant.core import HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .agents import agent_settings, first_agent
from .const import CONF_MODEL, CONF_VOICE, DOMAIN, LOGGER, RECOMMENDED_VOICE, VOICES
from .models import OpenAIRealtimeConfigEntry
from .realtime import RealtimeError
from .shared_turn import SharedTurn, current_conversation_id
from .speech import LANGUAGES, async_read_aloud, wav_header
from .speech_entity import RealtimeSpeechSubentryEntity, async_add_speech_entities
from .speech_flow import SUBENTRY_TTS
from .usage import pricing_for

PARALLEL_UPDATES = 0


async def async_setup_entry(
    hass: HomeAssistant,
    entry: OpenAIRealtimeConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the text-to-speech of each `tts` subentry."""
    async_add_speech_entities(
        hass, entry, async_add_entities, SUBENTRY_TTS, RealtimeTextToSpeechEntity
    )


class RealtimeTextToSpeechEntity(RealtimeSpeechSubentryEntity, tts.TextToSpeechEntity):
    """The Realtime model's voice (WAV, 24 kHz; Home Assistant converts what a satellite asks).

    In a shared turn it is the answering agent's voice. Otherwise the first agent's model reads
    the text aloud, in the voice the pipeline (or `tts.speak`) chose, else that agent's voice.
    """

    _attr_supported_languages = LANGUAGES
    _attr_default_language = "en"
    _attr_supported_options = [tts.ATTR_VOICE]

    @property
    @override
    def default_options(self) -> Mapping[str, Any]:
        """The first agent's voice."""
        voice = agent_settings(self.entry, first_agent(self.entry)).get(CONF_VOICE)
        return {tts.ATTR_VOICE: voice or RECOMMENDED_VOICE}

    @override
    @callback
    def async_get_supported_voices(self, language: str) -> list[tts.Voice]:
        """The Realtime models' built-in voices (they speak every language)."""
        return [tts.Voice(voice, voice.capitalize()) for voice in VOICES]

    @override
    def async_supports_streaming_input(self) -> bool:
        """Speech starts while the agent still writes (the shared turn's audio flows anyway)."""
        return True

    @override
    async def async_stream_tts_audio(self, request: TTSAudioRequest) -> TTSAudioResponse:
        """Stream the shared turn's audio; without one, read the text aloud."""
        turns = self.data.shared_turns
        if (turn := turns.async_take_speech(current_conversation_id())) is not None:
            return TTSAudioResponse("wav", self._turn_audio(turn))
        text = "".join([chunk async for chunk in request.message_gen])
        return TTSAudioResponse("wav", self._read_aloud(text, request.options.get(tts.ATTR_VOICE)))

    async def _turn_audio(self, turn: SharedTurn) -> AsyncGenerator[bytes]:
        try:
            yield wav_header()
            async for pcm in turn.audio():
                yield pcm
        finally:
            self.data.shared_turns.async_done(turn)

    async def _read_aloud(self, text: str, voice: str | None) -> AsyncGenerator[bytes]:
        data = self.data
        settings = agent_settings(self.entry, first_agent(self.entry))
        if voice:
            settings[CONF_VOICE] = voice
        yield wav_header()
        try:
            data.budget.check()  # a budget that pauses Realtime pauses the reading too
            async for pcm in async_read_aloud(
                data.budget.endpoint(settings.get(CONF_MODEL)),
                settings,
                text,
                data.usage,
                pricing=pricing_for(settings),
            ):
                yield pcm
        except RealtimeError as err:
            LOGGER.warning("Text to speech failed: %s", err)
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="read_aloud_failed",
                translation_placeholders={"error": str(err)},
            ) from err
