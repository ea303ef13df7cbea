"""The Assist pipeline path's unhappy and less common paths, with real STT/TTS entities in HA.

Push-to-talk turns, a second `listen start`, audio arriving with no pipeline run, pipeline
errors and failures, answers that cannot be played, and a device without a satellite entity.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
import logging
from typing import Any

from aiohttp.test_utils import TestClient
from homeassistant.components import tts
from homeassistant.components.assist_pipeline import PipelineEvent, PipelineEventType
from homeassistant.components.assist_pipeline.error import PipelineNotFound
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
import numpy as np
import pytest

from custom_components.openai_realtime_voice.bridge import BridgePhase
from custom_components.openai_realtime_voice.xiaozhi import ListenMode
from realtime_server import RealtimeServer
from simulator.speech import synthesize
from tests.bridge_helpers import (
    alerts,
    bridge_of,
    bridged,
    correlation,
    device_state,
    disconnect,
    on_pipeline_path,
    refuse_realtime,
    satellite_id,
    satellite_of,
    wait_tts,
)
from tests.device_helpers import device_client, live, wait_until
from tests.pipeline_providers import (
    STT_TEXT,
    TONE_HZ,
    Providers,
    ScriptedSTT,
    ScriptedTTS,
    dominant_hz,
    providers_flow,
    scripted_providers,
)

pytestmark = pytest.mark.usefixtures("fast_retries")


@pytest.fixture
async def providers(
    hass: HomeAssistant, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Providers]:
    """Scriptable STT and TTS entities in the preferred pipeline."""
    with providers_flow():
        yield await scripted_providers(hass, tmp_path, monkeypatch)


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


def stt_of(providers: Providers) -> ScriptedSTT:
    """The scriptable STT entity."""
    assert isinstance(providers.stt, ScriptedSTT)
    return providers.stt


def tts_of(providers: Providers) -> ScriptedTTS:
    """The scriptable TTS entity."""
    assert isinstance(providers.tts, ScriptedTTS)
    return providers.tts


async def test_push_to_talk_release_ends_the_turn(
    hass: HomeAssistant,
    client: TestClient,
    realtime_server: RealtimeServer,
    providers: Providers,
) -> None:
    """Manual mode: `listen stop` ends the audio, STT gets all of it, the answer plays."""
    device, state = await on_pipeline_path(hass, client, realtime_server)
    speech = await synthesize(STT_TEXT, 16000)
    start = len(device.messages)
    await device.start_listening(ListenMode.MANUAL)
    await device.send_audio(speech)
    await device.stop_listening()
    await wait_tts(device, "stop", start)
    await wait_until(lambda: hass.states.get(satellite_id(hass, device.mac)).state == "idle", hass)
    [(_, audio)] = stt_of(providers).requests
    # Every packet sent before the release reached STT (the last batch was flushed).
    assert len(speech) <= len(audio) <= len(speech) + 60 * 32
    spoken = np.frombuffer(speech, dtype="<i2").astype(np.float64)
    heard = np.frombuffer(audio, dtype="<i2").astype(np.float64)
    assert correlation(spoken[:-1600], heard) > 0.8  # Opus delays the audio a little
    assert hass.states.get("light.kitchen_lights").state == "on"
    assert abs(dominant_hz(bytes(device.playback.played_pcm), 24000) - TONE_HZ) < 5
    # Push-to-talk: the device idles after the answer instead of listening again.
    assert device.state.value == "idle"
    assert bridge_of(hass, state).pipeline is not None
    # The turn the board was listening in at the switch, then the push-to-talk turn.
    assert bridge_of(hass, state).pipeline.turns == 2
    await disconnect(hass, device, state)


async def test_listen_start_again_replaces_the_turn(
    hass: HomeAssistant,
    client: TestClient,
    realtime_server: RealtimeServer,
    providers: Providers,
) -> None:
    """A second `listen start` ends the first run's audio; the new turn gets the new audio."""
    device, state = await on_pipeline_path(hass, client, realtime_server)
    pipeline = bridge_of(hass, state).pipeline
    assert pipeline is not None
    turns = pipeline.turns  # the board listened at the switch: its turn runs already
    await device.start_listening(ListenMode.MANUAL)
    await wait_until(lambda: pipeline.turns == turns + 1, live(hass, device.mac))
    speech = await synthesize(STT_TEXT, 16000)
    start = len(device.messages)
    await device.start_listening(ListenMode.MANUAL)
    await device.send_audio(speech)
    await device.stop_listening()
    await wait_tts(device, "stop", start)
    assert pipeline.turns == turns + 2
    assert len(stt_of(providers).requests) == 1  # the runs that heard nothing never ran STT
    # The last run heard exactly the second turn's speech.
    _, audio = stt_of(providers).requests[-1]
    assert len(speech) <= len(audio) <= len(speech) + 60 * 32
    assert hass.states.get("light.kitchen_lights").state == "on"
    await disconnect(hass, device, state)


async def test_turn_begun_on_realtime_goes_on_in_the_pipeline(
    hass: HomeAssistant,
    client: TestClient,
    realtime_server: RealtimeServer,
    providers: Providers,
) -> None:
    """Realtime drops while the board listens: the rest of the turn is heard by the pipeline
    (the board sends no new `listen start` in auto mode)."""
    device = await bridged(hass, client)
    state = device_state(hass, device)
    await wait_until(lambda: bridge_of(hass, state).phase is BridgePhase.LISTENING, state)
    await refuse_realtime(hass, realtime_server, state)
    pipeline = bridge_of(hass, state).pipeline
    assert pipeline is not None
    assert pipeline.turns == 1
    speech = await synthesize(STT_TEXT, 16000)
    start = len(device.messages)
    await device.send_audio(speech + bytes(32000 * 2))  # 2 s of silence end the turn (VAD)
    await wait_tts(device, "stop", start)
    [(_, audio)] = stt_of(providers).requests
    assert len(speech) <= len(audio)
    assert pipeline.turns == 1
    await disconnect(hass, device, state)


async def test_pipeline_error_event_frees_the_device(
    hass: HomeAssistant,
    client: TestClient,
    realtime_server: RealtimeServer,
    providers: Providers,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """STT hears nothing: the pipeline's error is counted and logged, nothing is played."""
    device, state = await on_pipeline_path(hass, client, realtime_server)
    entity_id = satellite_id(hass, device.mac)
    stt_of(providers).text = ""
    await device.start_listening(ListenMode.MANUAL)
    await device.send_audio(await synthesize("mumble", 16000))
    await device.stop_listening()
    await wait_until(lambda: state.errors["pipeline"] == 1, state)
    assert "Assist pipeline error: No text recognized" in caplog.text
    await wait_until(lambda: bridge_of(hass, state).phase is BridgePhase.IDLE, state)
    await wait_until(lambda: hass.states.get(entity_id).state == "idle", hass)
    assert tts_of(providers).messages == []
    assert "start" not in [m.get("state") for m in device.messages if m["type"] == "tts"]
    assert [m["text"] for m in device.messages if m["type"] == "stt"] == []
    await disconnect(hass, device, state)


async def test_pipeline_that_cannot_run_alerts_the_device(
    hass: HomeAssistant,
    client: TestClient,
    realtime_server: RealtimeServer,
    *,
    providers: Providers,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A run that raises is logged and shown on the device as an alert; the device is freed.

    The satellite's pipeline start is patched to raise `PipelineNotFound` (what HA raises for a
    vanished pipeline): the preferred pipeline cannot be made to vanish for real.
    """
    device, state = await on_pipeline_path(hass, client, realtime_server)
    satellite = satellite_of(hass, state)

    async def vanished(*args: Any, **kwargs: Any) -> None:
        raise PipelineNotFound("pipeline_not_found", "Pipeline gone not found")

    monkeypatch.setattr(satellite, "async_accept_pipeline_from_satellite", vanished)
    with caplog.at_level(logging.WARNING):
        await device.start_listening(ListenMode.MANUAL)
        await wait_until(lambda: bool(alerts(device)), device)
    message = (
        "Assist pipeline failed: Pipeline error code=pipeline_not_found, "
        "message=Pipeline gone not found"
    )
    assert alerts(device) == [message]
    assert state.errors["pipeline"] == 1
    assert message in caplog.text
    await wait_until(lambda: bridge_of(hass, state).phase is BridgePhase.IDLE, state)
    assert stt_of(providers).requests == []
    await disconnect(hass, device, state)


async def test_undecodable_answer_alerts_and_the_satellite_idles(
    hass: HomeAssistant,
    client: TestClient,
    realtime_server: RealtimeServer,
    providers: Providers,
) -> None:
    """A TTS answer ffmpeg cannot decode: an alert, `tts stop`, the satellite back to idle."""
    device, state = await on_pipeline_path(hass, client, realtime_server)
    entity_id = satellite_id(hass, device.mac)
    tts_of(providers).answer = ("wav", b"this is not audio")
    start = len(device.messages)
    await device.start_listening(ListenMode.MANUAL)
    await device.send_audio(await synthesize(STT_TEXT, 16000))
    await device.stop_listening()
    await wait_until(lambda: bool(alerts(device)), device)
    [alert] = alerts(device)
    assert alert.startswith("Cannot play the answer: ")
    await wait_tts(device, "stop", start)
    await wait_until(lambda: hass.states.get(entity_id).state == "idle", hass)
    assert state.errors["pipeline"] == 1
    assert not device.downlink_outcomes().get("played")
    assert bridge_of(hass, state).phase is BridgePhase.IDLE
    await disconnect(hass, device, state)


async def test_answer_gone_before_it_is_played(
    hass: HomeAssistant,
    client: TestClient,
    realtime_server: RealtimeServer,
    providers: Providers,
) -> None:
    """The TTS result expired before the bridge fetched it: an alert, the satellite idles.

    The satellite's pipeline events are wrapped to delete the result (HA's own
    `async_delete_result_stream`, as its expiry does) just before `tts-end` is handled:
    expiry itself takes minutes of real time.
    """
    device, state = await on_pipeline_path(hass, client, realtime_server)
    entity_id = satellite_id(hass, device.mac)
    satellite = satellite_of(hass, state)
    handle = satellite.on_pipeline_event
    manager = hass.data[tts.DATA_TTS_MANAGER]
    expired: list[tts.ResultStream] = []

    def expire_then_handle(event: PipelineEvent) -> None:
        if event.type is PipelineEventType.TTS_END and event.data:
            token = event.data["tts_output"]["token"]
            expired.append(manager.async_get_result_stream(token))
            manager.async_delete_result_stream(token)
        handle(event)

    satellite.on_pipeline_event = expire_then_handle
    await device.start_listening(ListenMode.MANUAL)
    await device.send_audio(await synthesize(STT_TEXT, 16000))
    await device.stop_listening()
    await wait_until(lambda: bool(alerts(device)), device)
    assert alerts(device) == ["Cannot play the answer: the TTS result is gone"]
    await wait_until(lambda: hass.states.get(entity_id).state == "idle", hass)
    # The answer itself was fine (reading it also lets HA finish caching it).
    [stream] = expired
    assert b"".join([chunk async for chunk in stream.async_stream_result()])
    assert hass.states.get("light.kitchen_lights").state == "on"
    assert not device.downlink_outcomes().get("played")
    await disconnect(hass, device, state)


async def test_turn_without_a_satellite_entity(
    hass: HomeAssistant,
    client: TestClient,
    realtime_server: RealtimeServer,
    providers: Providers,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With the satellite entity disabled no pipeline can run: logged, counted, alerted."""
    device, state = await on_pipeline_path(hass, client, realtime_server)
    entity_id = satellite_id(hass, device.mac)
    er.async_get(hass).async_update_entity(entity_id, disabled_by=er.RegistryEntryDisabler.USER)
    await wait_until(lambda: satellite_of(hass, state) is None, hass)
    pipeline = bridge_of(hass, state).pipeline
    assert pipeline is not None
    turns = pipeline.turns
    await device.start_listening(ListenMode.MANUAL)
    await wait_until(lambda: state.errors["pipeline"] == 1, state)
    assert "No assist satellite entity to run the pipeline" in caplog.text
    await wait_until(lambda: bool(alerts(device)), device)
    assert alerts(device) == ["No assist satellite entity to run the pipeline"]
    assert pipeline.turns == turns
    await device.send_audio(await synthesize(STT_TEXT, 16000))
    await device.stop_listening()
    assert stt_of(providers).requests == []
    await disconnect(hass, device, state)


async def test_satellite_disabled_while_a_turn_runs(
    hass: HomeAssistant,
    client: TestClient,
    realtime_server: RealtimeServer,
    providers: Providers,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The satellite entity is disabled mid-run: the run ends with it, no intent, no answer."""
    device, state = await on_pipeline_path(hass, client, realtime_server)
    entity_id = satellite_id(hass, device.mac)
    stt = stt_of(providers)
    stt.hold = asyncio.Event()
    await device.start_listening(ListenMode.MANUAL)
    await device.send_audio(await synthesize(STT_TEXT, 16000))
    await device.stop_listening()
    await wait_until(lambda: bool(stt.requests), stt.requests)
    er.async_get(hass).async_update_entity(entity_id, disabled_by=er.RegistryEntryDisabler.USER)
    await wait_until(lambda: hass.states.get(entity_id) is None, hass)  # removal (and its run) done
    assert satellite_of(hass, state) is None
    stt.hold.set()
    await hass.async_block_till_done()
    assert hass.states.get("light.kitchen_lights").state == "off"
    assert tts_of(providers).messages == []
    assert not [m for m in device.messages if m["type"] == "tts"]
    assert "incorrectly being triggered" not in caplog.text
    await disconnect(hass, device, state)


async def test_satellite_disabled_while_the_answer_plays(
    hass: HomeAssistant,
    client: TestClient,
    realtime_server: RealtimeServer,
    providers: Providers,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The satellite entity is disabled mid-answer: the answer plays out, the entity is left be."""
    device, state = await on_pipeline_path(hass, client, realtime_server)
    entity_id = satellite_id(hass, device.mac)
    start = len(device.messages)
    await device.start_listening(ListenMode.MANUAL)
    await device.send_audio(await synthesize(STT_TEXT, 16000))
    await device.stop_listening()
    await wait_tts(device, "start", start)
    er.async_get(hass).async_update_entity(entity_id, disabled_by=er.RegistryEntryDisabler.USER)
    await wait_until(lambda: satellite_of(hass, state) is None, hass)
    await wait_tts(device, "stop", start)
    played = bytes(device.playback.played_pcm)
    assert abs(dominant_hz(played, 24000) - TONE_HZ) < 5
    assert len(played) >= 24000 * 2 * 0.95
    assert "incorrectly being triggered" not in caplog.text
    await disconnect(hass, device, state)
