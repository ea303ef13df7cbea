"""The Assist fallback with real STT and TTS providers in Home Assistant, and switching back.

The providers are entities of a test integration (as in Home Assistant's own pipeline tests):
the STT entity keeps the 16 kHz PCM it was given and returns a fixed text, the TTS entity
answers with a WAV of a 440 Hz tone. The default conversation agent runs the intent.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Iterator
import io
from typing import Any
import wave

from aiohttp.test_utils import TestClient
from homeassistant.components import stt, tts
from homeassistant.components.assist_pipeline.pipeline import (
    KEY_ASSIST_PIPELINE,
    async_create_default_pipeline,
)
from homeassistant.config_entries import ConfigEntry, ConfigFlow
from homeassistant.const import EVENT_STATE_CHANGED, Platform
from homeassistant.core import Event, EventStateChangedData, HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
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

from custom_components.openai_realtime.bridge import BridgePath, BridgePhase, SpeechBridge
from custom_components.openai_realtime.const import CONF_DEVICE_USER, DOMAIN
from custom_components.openai_realtime.xiaozhi import ListenMode
from simulator.speech import synthesize
from tests.device_helpers import device_client, until
from tests.realtime_server import RealtimeServer, ScriptedResponse, tone
from tests.test_assist_satellite import satellite_id
from tests.test_bridge import bridge_of, bridged, correlation, device_state, disconnect, wait_tts

TEST_DOMAIN = "fallback_providers"
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
        self.requests: list[tuple[stt.SpeechMetadata, bytes]] = []

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


class Providers:
    """The test STT and TTS entities, set up and in the preferred pipeline."""

    def __init__(self, stt_entity: RecordingSTT, tts_entity: ToneTTS) -> None:
        """Hold the two entities."""
        self.stt = stt_entity
        self.tts = tts_entity


async def setup_providers(
    hass: HomeAssistant, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> Providers:
    """Add the STT and TTS entities via a config entry; their pipeline becomes the preferred one."""
    monkeypatch.setattr(tts, "DEFAULT_CACHE_DIR", str(tmp_path / "tts"))
    providers = Providers(RecordingSTT(), ToneTTS())

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


class _ProvidersFlow(ConfigFlow):
    """The test integration's (unused) config flow."""


@pytest.fixture
def providers_flow() -> Iterator[None]:
    """Register the test integration's config flow."""
    with mock_config_flow(TEST_DOMAIN, _ProvidersFlow):
        yield


@pytest.fixture
async def providers(
    hass: HomeAssistant, tmp_path: Any, monkeypatch: pytest.MonkeyPatch, providers_flow: None
) -> Providers:
    """STT and TTS entities in the preferred pipeline."""
    return await setup_providers(hass, tmp_path, monkeypatch)


@pytest.fixture(autouse=True)
def _fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bridges retry Realtime every 50 ms."""
    monkeypatch.setattr(SpeechBridge, "retry_delays", (0.05,))


@pytest.fixture
async def client(
    hass: HomeAssistant,
    hass_client_no_auth: Any,
    realtime_server: RealtimeServer,
    lights: None,
    providers: Providers,
) -> TestClient:
    """A loaded entry with lights and providers, and an HTTP client for devices."""
    return await device_client(hass, hass_client_no_auth, realtime_server)


def dominant_hz(pcm: bytes, rate: int) -> float:
    """The strongest frequency of PCM16 audio."""
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    spectrum = np.abs(np.fft.rfft(samples))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[int(np.argmax(spectrum))])


async def test_fallback_turn_through_stt_agent_tts_and_back_to_realtime(
    hass: HomeAssistant,
    client: TestClient,
    realtime_server: RealtimeServer,
    providers: Providers,
) -> None:
    """Quota refused: speech -> STT (16 kHz) -> agent -> TTS -> Opus; then Realtime again."""
    device = await bridged(hass, client)
    state = device_state(hass, device)
    entity_id = satellite_id(hass, device.mac)
    satellite = state.satellite
    finished: list[bool] = []
    original_finished = satellite.tts_response_finished

    def tts_response_finished() -> None:
        finished.append(True)
        original_finished()

    satellite.tts_response_finished = tts_response_finished
    states: list[str] = []

    @callback
    def changed(event: Event[EventStateChangedData]) -> None:
        if event.data["entity_id"] == entity_id and (new := event.data["new_state"]):
            states.append(new.state)

    hass.bus.async_listen(EVENT_STATE_CHANGED, changed)

    realtime_server.on_connect_error = {
        "type": "insufficient_quota",
        "code": "insufficient_quota",
        "message": "You exceeded your current quota.",
    }
    await realtime_server.close_connection(1008, "insufficient_quota")
    await until(lambda: bridge_of(state).path is BridgePath.ASSIST_PIPELINE)
    await until(lambda: hass.states.get(entity_id).attributes["path"] == "assist_pipeline")
    assert hass.states.get("light.kitchen_lights").state == "off"

    speech = await synthesize(STT_TEXT, 16000)
    start = len(device.messages)
    await device.start_listening()
    await device.send_audio(speech + bytes(32000 * 2))  # then 2 s of silence end the turn (VAD)
    await wait_tts(device, "stop", start)
    await until(lambda: bool(finished))
    await hass.async_block_till_done()

    # The STT provider got the device's speech as 16 kHz mono PCM16.
    assert len(providers.stt.requests) == 1
    metadata, audio = providers.stt.requests[0]
    assert metadata.sample_rate is stt.AudioSampleRates.SAMPLERATE_16000
    assert metadata.channel is stt.AudioChannels.CHANNEL_MONO
    assert len(speech) * 0.9 <= len(audio) <= len(speech) + 2 * 32000
    spoken = np.frombuffer(speech, dtype="<i2").astype(np.float64)
    heard = np.frombuffer(audio, dtype="<i2").astype(np.float64)
    assert correlation(spoken[: len(heard)], heard) > 0.8
    # The default agent ran the intent.
    assert hass.states.get("light.kitchen_lights").state == "on"
    assert len(providers.tts.messages) == 1
    # The TTS answer reached the device as Opus at the announced rate, whole and in tune.
    assert device.server_hello is not None
    rate = device.server_hello.sample_rate
    assert rate == 24000
    outcomes = device.downlink_outcomes()
    assert set(outcomes) == {"played"}
    played = bytes(device.played_pcm)
    # The WAV answer is resampled as it came (no MP3 round trip adding padding); only the last
    # frame is zero-padded.
    frame = rate * 2 * device.server_hello.frame_duration // 1000
    expected = rate * 2 * TONE_SECONDS
    assert expected <= len(played) <= expected + frame
    assert abs(dominant_hz(played, rate) - TONE_HZ) < 5
    user_lines = [m["text"] for m in device.messages[start:] if m["type"] == "stt"]
    assert user_lines == [STT_TEXT]
    # The satellite ran the pipeline's states and is idle again once the answer was heard.
    assert finished == [True]
    await until(lambda: hass.states.get(entity_id).state == "idle")
    assert {"listening", "processing", "responding"} <= set(states)

    # Realtime recovers: the next turn goes to it, and the path attribute follows.
    realtime_server.on_connect_error = None
    await until(lambda: bridge_of(state).path is BridgePath.REALTIME)
    await until(lambda: bridge_of(state).client is not None and bridge_of(state).client.connected)
    await until(lambda: hass.states.get(entity_id).attributes["path"] == "realtime")
    assert bridge_of(state).fallback is None
    realtime_server.script(ScriptedResponse(text="Realtime again.", audio=tone(120)))
    start = len(device.messages)
    await device.detect_wake_word("are you there")
    await wait_tts(device, "stop", start)
    assert realtime_server.of_type("conversation.item.create")
    assert len(providers.stt.requests) == 1
    await disconnect(device, state)


async def test_announce_with_the_pipeline_tts(
    hass: HomeAssistant,
    client: TestClient,
    realtime_server: RealtimeServer,
    providers: Providers,
) -> None:
    """With a TTS engine, the announcement is synthesised by it as WAV and resampled."""
    device = await bridged(hass, client)
    state = device_state(hass, device)
    entity_id = satellite_id(hass, device.mac)
    await hass.services.async_call(
        "assist_satellite",
        "announce",
        {"message": "Dinner is ready", "preannounce": False},
        target={"entity_id": entity_id},
        blocking=True,
    )
    assert providers.tts.messages == ["Dinner is ready"]
    assert not realtime_server.of_type("response.create")
    await wait_tts(device, "stop")
    played = bytes(device.played_pcm)
    assert abs(dominant_hz(played, 24000) - TONE_HZ) < 5
    assert len(played) >= 24000 * 2 * TONE_SECONDS * 0.95
    sentences = [m["text"] for m in device.messages if m.get("state") == "sentence_start"]
    assert sentences == ["Dinner is ready"]
    await disconnect(device, state)


async def test_announce_media_that_cannot_be_decoded(
    hass: HomeAssistant,
    client: TestClient,
    realtime_server: RealtimeServer,
    providers: Providers,
    tmp_path: Any,
) -> None:
    """Media ffmpeg cannot read fails the action; the device is left listening, not stuck."""
    device = await bridged(hass, client)
    state = device_state(hass, device)
    entity_id = satellite_id(hass, device.mac)
    bad = tmp_path / "bad.mp3"
    bad.write_bytes(b"this is not audio")
    with pytest.raises(HomeAssistantError):
        await hass.services.async_call(
            "assist_satellite",
            "announce",
            {"media_id": str(bad), "preannounce": False},
            target={"entity_id": entity_id},
            blocking=True,
        )
    await until(lambda: hass.states.get(entity_id).state == "idle")
    assert bridge_of(state).phase is BridgePhase.IDLE
    assert not device.downlink_outcomes().get("played")
    await disconnect(device, state)


async def test_two_fallback_turns_on_a_realtime_mode_board(
    hass: HomeAssistant,
    client: TestClient,
    realtime_server: RealtimeServer,
    providers: Providers,
) -> None:
    """A realtime-mode board (device AEC) listens again after `tts stop` without sending
    `listen start` (firmware `HandleStateChangedEvent`): the next pipeline turn starts from
    the device's state, so every utterance is answered and the satellite shows listening."""
    device = await bridged(hass, client, default_mode=ListenMode.REALTIME)
    state = device_state(hass, device)
    entity_id = satellite_id(hass, device.mac)
    realtime_server.on_connect_error = {
        "type": "insufficient_quota",
        "code": "insufficient_quota",
        "message": "You exceeded your current quota.",
    }
    await realtime_server.close_connection(1008, "insufficient_quota")
    await until(lambda: bridge_of(state).path is BridgePath.ASSIST_PIPELINE)
    speech = await synthesize(STT_TEXT, 16000)
    await device.start_listening(ListenMode.REALTIME)
    for answers in (1, 2):
        start = len(device.messages)
        await device.send_audio(speech + bytes(32000 * 2))
        await wait_tts(device, "stop", start)
        await until(lambda n=answers: len(providers.stt.requests) == n)
        assert device.state.value == "listening"
    assert len(providers.stt.requests) == 2
    sent = [f for f in device.sent_frames if isinstance(f, str) and '"listen"' in f]
    assert sum('"start"' in f for f in sent) == 1  # the board never repeated `listen start`
    await until(lambda: hass.states.get(entity_id).state == "listening")
    await disconnect(device, state)


async def test_fallback_runs_as_the_device_user(
    hass: HomeAssistant,
    client: TestClient,
    realtime_server: RealtimeServer,
    providers: Providers,
) -> None:
    """The Assist pipeline acts with the device's configured user, as the Realtime path does."""
    user = await hass.auth.async_create_user("Kitchen speaker", group_ids=["system-users"])
    entry = hass.config_entries.async_entries(DOMAIN)[0]
    hass.config_entries.async_update_entry(
        entry, options={**entry.options, CONF_DEVICE_USER: user.id}
    )
    device = await bridged(hass, client)
    state = device_state(hass, device)
    realtime_server.on_connect_error = {
        "type": "insufficient_quota",
        "code": "insufficient_quota",
        "message": "You exceeded your current quota.",
    }
    await realtime_server.close_connection(1008, "insufficient_quota")
    await until(lambda: bridge_of(state).path is BridgePath.ASSIST_PIPELINE)

    start = len(device.messages)
    await device.start_listening()
    await device.send_audio(await synthesize(STT_TEXT, 16000) + bytes(32000 * 2))
    await wait_tts(device, "stop", start)
    await hass.async_block_till_done()
    light = hass.states.get("light.kitchen_lights")
    assert light.state == "on"
    assert light.context.user_id == user.id
    await disconnect(device, state)
