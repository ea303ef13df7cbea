"""Speech to speech on a Wyoming satellite, driven as the device drives Home Assistant.

Home Assistant's own `wyoming` integration connects to a satellite in the test process; the
pipeline it runs uses this integration's speech-to-text, agent and text-to-speech, so the
satellite plays the Realtime model's own audio (issue 32).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from wyoming.asr import Transcript
from wyoming.tts import Synthesize

from realtime_server import RealtimeServer, ScriptedResponse
from tests.pipeline_providers import dominant_hz
from tests.speech_helpers import (
    create_pipeline,
    entry,  # noqa: F401 - the entry with speech subentries
    sine_24k,
    speech_16k,
)
from tests.wyoming_satellite import WyomingSatellite


@pytest.fixture
async def satellite(
    hass: HomeAssistant,
    entry: MockConfigEntry,  # noqa: F811 - the fixture of speech_helpers
    hass_ws_client: Any,
    unused_tcp_port: int,
) -> AsyncIterator[WyomingSatellite]:
    """A Wyoming satellite added to Home Assistant, on the speech-to-speech pipeline."""
    ws = await hass_ws_client(hass)
    pipeline_id = await create_pipeline(ws)
    await ws.send_json_auto_id(
        {"type": "assist_pipeline/pipeline/set_preferred", "pipeline_id": pipeline_id}
    )
    assert (await ws.receive_json())["success"]
    device = WyomingSatellite(unused_tcp_port)
    await device.start()
    wyoming = MockConfigEntry(domain="wyoming", data={"host": "127.0.0.1", "port": unused_tcp_port})
    wyoming.add_to_hass(hass)
    assert await hass.config_entries.async_setup(wyoming.entry_id)
    await device.running.wait()
    yield device
    assert await hass.config_entries.async_unload(wyoming.entry_id)
    await device.stop()


async def test_wyoming_satellite_plays_the_models_own_audio(
    hass: HomeAssistant, satellite: WyomingSatellite, realtime_server: RealtimeServer
) -> None:
    """The satellite hears the transcript, then the model's answer at the rate it asked for."""
    realtime_server.user_transcript = "What time is it?"
    realtime_server.script(ScriptedResponse(text="It is noon.", audio=sine_24k(500)))

    await satellite.speak(speech_16k(600))

    transcript = Transcript.from_event(await satellite.next_of("transcript"))
    assert transcript.text == "What time is it?"
    synthesize = Synthesize.from_event(await satellite.next_of("synthesize"))
    assert synthesize.text == "It is noon."
    reply = await satellite.reply()
    assert reply.rate == 22050  # what Home Assistant's wyoming satellite asks for
    assert abs(dominant_hz(reply.pcm, reply.rate) - 700) < 20
    assert len(reply.pcm) >= 0.45 * reply.rate * 2
    assert len(realtime_server.of_type("response.create")) == 1


async def test_latency_counts_from_the_end_of_the_users_speech(
    hass: HomeAssistant, satellite: WyomingSatellite, realtime_server: RealtimeServer
) -> None:
    """As a xiaozhi device's response latency, a shared turn's runs from the end of the user's
    speech, the silence the voice detection waited for before ending the stream counted in, to
    the first answer audio."""
    realtime_server.user_transcript = "What time is it?"
    realtime_server.script(ScriptedResponse(text="It is noon.", audio=sine_24k(300)))
    window = bytes(2 * 16 * 700)  # the silence of Home Assistant's default VAD window (0.7 s)

    await satellite.speak(speech_16k(600) + window, realtime=True)
    await satellite.reply()
    await hass.async_block_till_done()

    latency = float(hass.states.get("sensor.openai_realtime_assist_response_latency").state)
    assert 700 <= latency < 3000
