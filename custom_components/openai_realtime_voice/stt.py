"""Speech to text through the Realtime service, sharing the turn with the agent when it can."""

from __future__ import annotations

from collections.abc import AsyncIterable
from typing import override

from homeassistant.components import stt
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .agents import agent_settings, first_agent
from .const import CONF_TRANSCRIPTION_MODEL, LOGGER, RECOMMENDED_TRANSCRIPTION_MODEL
from .models import OpenAIRealtimeConfigEntry
from .realtime import RealtimeError
from .shared_turn import async_hear, current_conversation_id
from .speech import LANGUAGES, async_transcribe
from .speech_entity import (
    RealtimeSpeechSubentryEntity,
    async_add_speech_entities,
    shared_turn_agent,
)
from .speech_flow import SUBENTRY_STT
from .usage import pricing_for
from .vision import agent_image_side

PARALLEL_UPDATES = 0


async def async_setup_entry(
    hass: HomeAssistant,
    entry: OpenAIRealtimeConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the speech-to-text of each `stt` subentry."""
    async_add_speech_entities(
        hass, entry, async_add_entities, SUBENTRY_STT, RealtimeSpeechToTextEntity
    )


class RealtimeSpeechToTextEntity(RealtimeSpeechSubentryEntity, stt.SpeechToTextEntity):
    """Realtime transcription of an Assist pipeline's speech.

    In a pipeline with this entry's agent and text-to-speech, the speech goes into the
    conversation's Realtime session and the model starts its spoken answer at once.
    """

    @property
    @override
    def supported_languages(self) -> list[str]:
        """The languages the transcription models hear."""
        return LANGUAGES

    @property
    @override
    def supported_formats(self) -> list[stt.AudioFormats]:
        """Raw PCM in a WAV stream, as Assist pipelines send it."""
        return [stt.AudioFormats.WAV]

    @property
    @override
    def supported_codecs(self) -> list[stt.AudioCodecs]:
        """PCM."""
        return [stt.AudioCodecs.PCM]

    @property
    @override
    def supported_bit_rates(self) -> list[stt.AudioBitRates]:
        """16-bit samples."""
        return [stt.AudioBitRates.BITRATE_16]

    @property
    @override
    def supported_sample_rates(self) -> list[stt.AudioSampleRates]:
        """16 kHz (resampled to the service's 24 kHz here)."""
        return [stt.AudioSampleRates.SAMPLERATE_16000]

    @property
    @override
    def supported_channels(self) -> list[stt.AudioChannels]:
        """Mono."""
        return [stt.AudioChannels.CHANNEL_MONO]

    @override
    async def async_process_audio_stream(
        self, metadata: stt.SpeechMetadata, stream: AsyncIterable[bytes]
    ) -> stt.SpeechResult:
        """Transcribe the speech; in a shared turn, start the answer as well.

        This subentry's model transcribes, in a shared turn too; the answer is the pipeline's
        agent's (its model, voice and prices). Alone, the transcription session uses the
        entry's connection (the first agent's model).
        """
        data = self.data
        entry = self.entry
        conversation_id = current_conversation_id()
        model = self.subentry_data.get(CONF_TRANSCRIPTION_MODEL) or RECOMMENDED_TRANSCRIPTION_MODEL
        try:
            data.budget.check()
            agent = (
                shared_turn_agent(self.hass, entry, conversation_id, self.entity_id)
                if conversation_id is not None
                else None
            )
            sessions = data.agent_sessions.get(agent.subentry_id) if agent is not None else None
            if agent is not None and sessions is not None and conversation_id is not None:
                settings = {**agent_settings(entry, agent), CONF_TRANSCRIPTION_MODEL: model}
                text = await async_hear(
                    self.hass,
                    sessions,
                    data.shared_turns,
                    settings,
                    agent_id=agent.subentry_id,
                    image_side=agent_image_side(entry, settings),
                    conversation_id=conversation_id,
                    language=metadata.language,
                    stream=stream,
                )
            else:
                settings = {
                    **agent_settings(entry, first_agent(entry)),
                    CONF_TRANSCRIPTION_MODEL: model,
                }
                text = await async_transcribe(
                    data.budget.endpoint(),
                    settings,
                    metadata.language,
                    stream,
                    data.usage,
                    pricing=pricing_for(settings),
                )
        except (RealtimeError, TimeoutError) as err:
            LOGGER.warning("Speech to text failed: %s", err or "no transcript in time")
            return stt.SpeechResult(None, stt.SpeechResultState.ERROR)
        return stt.SpeechResult(text, stt.SpeechResultState.SUCCESS)
