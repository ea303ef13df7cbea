"""The Assist pipeline path with real STT and TTS providers in Home Assistant, and switching back.

The providers are entities of a test integration (as in Home Assistant's own pipeline tests):
the STT entity keeps the 16 kHz PCM it was given and returns a fixed text, the TTS entity
answers with a WAV of a 440 Hz tone. The default conversation agent runs the intent.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp.test_utils import TestClient
from homeassistant.components import stt
from homeassistant.const import EVENT_STATE_CHANGED
from homeassistant.core import Event, EventStateChangedData, HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
import numpy as np
import pytest

from custom_components.openai_realtime_voice.bridge import BridgePath, BridgePhase
from custom_components.openai_realtime_voice.const import CONF_DEVICE_USER, DOMAIN
from custom_components.openai_realtime_voice.xiaozhi import ListenMode
from realtime_server import RealtimeServer, ScriptedResponse, tone
from simulator.changes import Recorded
from simulator.device import DeviceSimulator
from simulator.speech import synthesize
from tests.bridge_helpers import (
    bridge_of,
    bridged,
    correlation,
    device_state,
    disconnect,
    satellite_id,
    satellite_of,
    say,
    wait_tts,
)
from tests.device_helpers import device_client, pair, simulator, wait_until
from tests.pipeline_providers import (
    STT_TEXT,
    TONE_HZ,
    TONE_SECONDS,
    Providers,
    dominant_hz,
)

pytestmark = pytest.mark.usefixtures("fast_retries")


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


async def test_pipeline_path_turn_through_stt_agent_tts_and_back_to_realtime(
    hass: HomeAssistant,
    client: TestClient,
    realtime_server: RealtimeServer,
    providers: Providers,
) -> None:
    """Quota refused: speech -> STT (16 kHz) -> agent -> TTS -> Opus; then Realtime again."""
    device = await bridged(hass, client)
    state = device_state(hass, device)
    entity_id = satellite_id(hass, device.mac)
    satellite = satellite_of(hass, state)
    finished: Recorded[bool] = Recorded()
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
    await wait_until(lambda: bridge_of(hass, state).path is BridgePath.ASSIST_PIPELINE, state)
    await wait_until(
        lambda: hass.states.get(entity_id).attributes["path"] == "assist_pipeline", hass
    )
    assert hass.states.get("light.kitchen_lights").state == "off"

    speech = await synthesize(STT_TEXT, 16000)
    start = len(device.messages)
    # The board listens since its hello: the pipeline's turn began at the switch.
    await device.send_audio(speech + bytes(32000 * 2))  # then 2 s of silence end the turn (VAD)
    await wait_tts(device, "stop", start)
    await wait_until(lambda: bool(finished), finished)
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
    played = bytes(device.playback.played_pcm)
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
    await wait_until(lambda: hass.states.get(entity_id).state == "idle", hass)
    assert {"listening", "processing", "responding"} <= set(states)

    # Realtime recovers: the next turn goes to it, and the path attribute follows.
    realtime_server.on_connect_error = None
    await wait_until(lambda: bridge_of(hass, state).path is BridgePath.REALTIME, state)
    await wait_until(
        lambda: (
            bridge_of(hass, state).client is not None and bridge_of(hass, state).client.connected
        ),
        state,
    )
    await wait_until(lambda: hass.states.get(entity_id).attributes["path"] == "realtime", hass)
    assert bridge_of(hass, state).pipeline is None
    realtime_server.script(ScriptedResponse(text="Realtime again.", audio=tone(120)))
    start = len(device.messages)
    await say(device)
    await wait_tts(device, "stop", start)
    assert device.assistant_lines[-1] == "Realtime again."
    assert len(providers.stt.requests) == 1
    await disconnect(hass, device, state)


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
    played = bytes(device.playback.played_pcm)
    assert abs(dominant_hz(played, 24000) - TONE_HZ) < 5
    assert len(played) >= 24000 * 2 * TONE_SECONDS * 0.95
    sentences = [m["text"] for m in device.messages if m.get("state") == "sentence_start"]
    assert sentences == ["Dinner is ready"]
    await disconnect(hass, device, state)


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
    await wait_until(lambda: hass.states.get(entity_id).state == "idle", hass)
    assert bridge_of(hass, state).phase is BridgePhase.IDLE
    assert not device.downlink_outcomes().get("played")
    await disconnect(hass, device, state)


async def test_two_pipeline_turns_on_a_realtime_mode_board(
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
    await wait_until(lambda: bridge_of(hass, state).path is BridgePath.ASSIST_PIPELINE, state)
    speech = await synthesize(STT_TEXT, 16000)
    for answers in (1, 2):
        start = len(device.messages)
        await device.send_audio(speech + bytes(32000 * 2))
        await wait_tts(device, "stop", start)
        await wait_until(lambda n=answers: len(providers.stt.requests) == n, providers.stt.requests)
        assert device.state.value == "listening"
    assert len(providers.stt.requests) == 2
    sent = [f for f in device.channel.sent_frames if isinstance(f, str) and '"listen"' in f]
    assert sum('"start"' in f for f in sent) == 1  # the board never repeated `listen start`
    await wait_until(lambda: hass.states.get(entity_id).state == "listening", hass)
    await disconnect(hass, device, state)


async def test_pipeline_path_runs_as_the_device_user(
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
    await wait_until(lambda: bridge_of(hass, state).path is BridgePath.ASSIST_PIPELINE, state)

    start = len(device.messages)
    await device.start_listening()
    await device.send_audio(await synthesize(STT_TEXT, 16000) + bytes(32000 * 2))
    await wait_tts(device, "stop", start)
    await hass.async_block_till_done()
    light = hass.states.get("light.kitchen_lights")
    assert light.state == "on"
    assert light.context.user_id == user.id
    await disconnect(hass, device, state)


QUOTA = {
    "type": "insufficient_quota",
    "code": "insufficient_quota",
    "message": "You exceeded your current quota.",
}


def listen_starts(device: DeviceSimulator) -> int:
    """How many `listen start` messages the board sent."""
    sent = [f for f in device.channel.sent_frames if isinstance(f, str) and '"listen"' in f]
    return sum('"start"' in f for f in sent)


async def test_pipeline_path_hears_a_board_woken_while_realtime_refuses(
    hass: HomeAssistant,
    client: TestClient,
    realtime_server: RealtimeServer,
    providers: Providers,
) -> None:
    """Firmware order at wake: hello, `listen start` at once, then the user speaks. Realtime
    refuses the session meanwhile: the pipeline takes the board over mid-utterance with the
    speech that waited for Realtime, and answers without a new `listen start`."""
    device = simulator(client)
    await pair(hass, device)
    realtime_server.on_connect_error = QUOTA
    speech = await synthesize(STT_TEXT, 16000)
    async with asyncio.timeout(30):
        await device.detect_wake_word(speech=speech + bytes(32000 * 2))
        await wait_tts(device, "start")
        # Answered without a new `listen start` (the next one follows the reply's playback).
        assert listen_starts(device) == 1
        await wait_tts(device, "stop")
    state = device_state(hass, device)
    assert bridge_of(hass, state).path is BridgePath.ASSIST_PIPELINE
    assert len(providers.stt.requests) == 1
    _, audio = providers.stt.requests[0]
    # The whole utterance from its first word, in order (the wait for Realtime handed over).
    spoken = np.frombuffer(speech, dtype="<i2").astype(np.float64)
    heard = np.frombuffer(audio, dtype="<i2").astype(np.float64)
    assert len(heard) >= len(spoken)
    assert correlation(spoken, heard[: len(spoken) + 16000]) > 0.8
    await hass.async_block_till_done()
    assert hass.states.get("light.kitchen_lights").state == "on"
    await disconnect(hass, device, state)


async def test_pipeline_path_hears_a_listening_board_after_realtime_drops(
    hass: HomeAssistant,
    client: TestClient,
    realtime_server: RealtimeServer,
    providers: Providers,
) -> None:
    """The session drops while the board listens (auto mode: no new `listen start` comes
    until a reply played): the pipeline's turn starts at the switch and hears the user."""
    device = await bridged(hass, client)
    state = device_state(hass, device)
    realtime_server.on_connect_error = QUOTA
    await realtime_server.close_connection(1008, "insufficient_quota")
    await wait_until(lambda: bridge_of(hass, state).path is BridgePath.ASSIST_PIPELINE, state)
    speech = await synthesize(STT_TEXT, 16000)
    start = len(device.messages)
    async with asyncio.timeout(30):
        await device.send_audio(speech + bytes(32000 * 2), realtime=True)
        await wait_tts(device, "start", start)
        # Answered without a new `listen start` (the next one follows the reply's playback).
        assert listen_starts(device) == 1
        await wait_tts(device, "stop", start)
    assert len(providers.stt.requests) == 1
    await hass.async_block_till_done()
    assert hass.states.get("light.kitchen_lights").state == "on"
    await disconnect(hass, device, state)
