"""STT and TTS entities of a test integration for the Assist pipeline path tests.

As in Home Assistant's own pipeline tests: the STT entity keeps the 16 kHz PCM it was given
and returns a fixed text, the TTS entity answers with a WAV of a 440 Hz tone.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable
from contextlib import AbstractContextManager
import io
from typing import Any
import wave

from homeassistant.components import stt, tts
from homeassistant.components.assist_pipeline.pipeline import (
    KEY_ASSIST_PIPELINE,
    async_create_default_pipeline,
)
from homeassistant.config_entries import ConfigEntry, ConfigFlow
from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.setup import async_setup_component
import numpy as np
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    MockModule,
    MockPlatform,
    mock_config_flow,
    mock_integration,
    mock_platform,
)

from simulator.changes import Recorded

TEST_DOMAIN = "pipeline_providers"


STT_TEXT = "turn on the kitchen lights"


TONE_HZ = 440


TONE_SECONDS = 1.0


def tone_wav(rate: int = 16000) -> bytes:
    """A WAV file of a 440 Hz sine, `TONE_SECONDS` long."""
    t = np.arange(int(rate * TONE_SECONDS)) / rate
    pcm = (np.sin(2 * np.pi * TONE_HZ * t) * 12000).astype("<i2").tobytes()
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm)
    return buffer.getvalue()


class RecordingSTT(stt.SpeechToTextEntity):
    """Keeps the audio of every request and hears `STT_TEXT`."""

    _attr_name = "Recording STT"
    _attr_unique_id = "recording_stt"

    def __init__(self) -> None:
        """Start with no requests."""
        self.requests: Recorded[tuple[stt.SpeechMetadata, bytes]] = Recorded()

    @property
    def supported_languages(self) -> list[str]:
        """English only."""
        return ["en-US"]

    @property
    def supported_formats(self) -> list[stt.AudioFormats]:
        """WAV (raw PCM in practice)."""
        return [stt.AudioFormats.WAV]

    @property
    def supported_codecs(self) -> list[stt.AudioCodecs]:
        """PCM."""
        return [stt.AudioCodecs.PCM]

    @property
    def supported_bit_rates(self) -> list[stt.AudioBitRates]:
        """16 bit."""
        return [stt.AudioBitRates.BITRATE_16]

    @property
    def supported_sample_rates(self) -> list[stt.AudioSampleRates]:
        """16 kHz."""
        return [stt.AudioSampleRates.SAMPLERATE_16000]

    @property
    def supported_channels(self) -> list[stt.AudioChannels]:
        """Mono."""
        return [stt.AudioChannels.CHANNEL_MONO]

    async def async_process_audio_stream(
        self, metadata: stt.SpeechMetadata, stream: AsyncIterable[bytes]
    ) -> stt.SpeechResult:
        """Read the whole stream, then return the fixed text."""
        audio = b"".join([chunk async for chunk in stream])
        self.requests.append((metadata, audio))
        return stt.SpeechResult(STT_TEXT, stt.SpeechResultState.SUCCESS)


class ToneTTS(tts.TextToSpeechEntity):
    """Answers every message with the same tone as a WAV file."""

    _attr_name = "Tone TTS"
    _attr_unique_id = "tone_tts"
    _attr_default_language = "en-US"
    _attr_supported_languages = ["en-US"]

    def __init__(self) -> None:
        """Start with no messages."""
        self.messages: list[str] = []

    async def async_get_tts_audio(
        self, message: str, language: str, options: dict[str, Any]
    ) -> tts.TtsAudioType:
        """The tone, whatever the message."""
        self.messages.append(message)
        return "wav", tone_wav()


class ProvidersFlow(ConfigFlow):
    """The test providers' (unused) config flow."""


def providers_flow() -> AbstractContextManager[None]:
    """Register the test providers' config flow (around the providers' whole life)."""
    return mock_config_flow(TEST_DOMAIN, ProvidersFlow)


class Providers:
    """The test STT and TTS entities, set up and in the preferred pipeline."""

    def __init__(self, stt_entity: RecordingSTT, tts_entity: ToneTTS) -> None:
        """Hold the two entities."""
        self.stt = stt_entity
        self.tts = tts_entity


async def setup_providers(
    hass: HomeAssistant,
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
    entities: Providers | None = None,
) -> Providers:
    """Add the STT and TTS entities via a config entry; their pipeline becomes the preferred one.

    `entities` defaults to a `RecordingSTT` and a `ToneTTS`.
    """
    monkeypatch.setattr(tts, "DEFAULT_CACHE_DIR", str(tmp_path / "tts"))
    providers = entities or Providers(RecordingSTT(), ToneTTS())

    async def setup_entry(hass: HomeAssistant, entry: ConfigEntry) -> bool:
        await hass.config_entries.async_forward_entry_setups(entry, [Platform.STT, Platform.TTS])
        return True

    async def setup_stt(
        hass: HomeAssistant, entry: ConfigEntry, add: AddConfigEntryEntitiesCallback
    ) -> None:
        add([providers.stt])

    async def setup_tts(
        hass: HomeAssistant, entry: ConfigEntry, add: AddConfigEntryEntitiesCallback
    ) -> None:
        add([providers.tts])

    mock_integration(hass, MockModule(TEST_DOMAIN, async_setup_entry=setup_entry))
    mock_platform(hass, f"{TEST_DOMAIN}.stt", MockPlatform(async_setup_entry=setup_stt))
    mock_platform(hass, f"{TEST_DOMAIN}.tts", MockPlatform(async_setup_entry=setup_tts))
    mock_platform(hass, f"{TEST_DOMAIN}.config_flow")
    for domain in ("stt", "tts", "assist_pipeline"):
        assert await async_setup_component(hass, domain, {})
    entry = MockConfigEntry(domain=TEST_DOMAIN)
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert providers.stt.entity_id is not None
    assert providers.tts.entity_id is not None
    pipeline = await async_create_default_pipeline(
        hass, providers.stt.entity_id, providers.tts.entity_id, "Test providers"
    )
    assert pipeline is not None
    hass.data[KEY_ASSIST_PIPELINE].pipeline_store.async_set_preferred_item(pipeline.id)
    return providers


def dominant_hz(pcm: bytes, rate: int) -> float:
    """The strongest frequency of PCM16 audio."""
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    spectrum = np.abs(np.fft.rfft(samples))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[int(np.argmax(spectrum))])


class ScriptedSTT(RecordingSTT):
    """The recording STT entity, with a settable result and an optional hold."""

    def __init__(self) -> None:
        """Hear `STT_TEXT` at once unless told otherwise."""
        super().__init__()
        self.text = STT_TEXT
        self.hold: asyncio.Event | None = None

    async def async_process_audio_stream(
        self, metadata: stt.SpeechMetadata, stream: AsyncIterable[bytes]
    ) -> stt.SpeechResult:
        """Read the whole stream, wait for `hold` if set, then return `text`."""
        audio = b"".join([chunk async for chunk in stream])
        self.requests.append((metadata, audio))
        if self.hold is not None:
            await self.hold.wait()
        return stt.SpeechResult(self.text, stt.SpeechResultState.SUCCESS)


class ScriptedTTS(ToneTTS):
    """The tone TTS entity, or any other answer it is given."""

    def __init__(self) -> None:
        """Answer with the tone unless told otherwise."""
        super().__init__()
        self.answer: tts.TtsAudioType | None = None

    async def async_get_tts_audio(
        self, message: str, language: str, options: dict[str, Any]
    ) -> tts.TtsAudioType:
        """`answer` if set, else the tone."""
        tone = await super().async_get_tts_audio(message, language, options)
        return self.answer or tone


async def scripted_providers(
    hass: HomeAssistant, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> Providers:
    """The providers of `setup_providers`, built from the scriptable entities above."""
    return await setup_providers(
        hass, tmp_path, monkeypatch, Providers(ScriptedSTT(), ScriptedTTS())
    )
