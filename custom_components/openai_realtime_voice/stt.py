"""Speech to text through the Realtime service, sharing the turn with the agent when it can."""

from __future__ import annotations

from collections.abc import AsyncIterable
from typing import TYPE_CHECKING, override

from homeassistant.components import stt
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .const import LOGGER
from .realtime import RealtimeError
from .shared_turn import async_hear, current_conversation_id
from .speech import LANGUAGES, async_transcribe
from .speech_entity import (
    RealtimeSpeechSubentryEntity,
    async_add_speech_entities,
    run_shares_turn,
)
from .speech_flow import SUBENTRY_STT

if TYPE_CHECKING:
    from . import OpenAIRealtimeConfigEntry

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
        """Transcribe the speech; in a shared turn, start the answer as well."""
        data = self.data
        options = self.entry.options
        conversation_id = current_conversation_id()
        try:
            data.budget.check()
            if conversation_id is not None and run_shares_turn(
                self.hass, self.entry, conversation_id, self.entity_id
            ):
                text = await async_hear(
                    self.hass,
                    data.agent_sessions,
                    data.shared_turns,
                    options,
                    conversation_id=conversation_id,
                    language=metadata.language,
                    stream=stream,
                )
            else:
                text = await async_transcribe(
                    data.budget.endpoint(), options, metadata.language, stream, data.usage
                )
        except (RealtimeError, TimeoutError) as err:
            LOGGER.warning("Speech to text failed: %s", err or "no transcript in time")
            return stt.SpeechResult(None, stt.SpeechResultState.ERROR)
        return stt.SpeechResult(text, stt.SpeechResultState.SUCCESS)
