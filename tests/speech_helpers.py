"""Assist pipelines with this integration's speech-to-text, agent and text-to-speech, run as the
browser runs them: `assist_pipeline/run` over the WebSocket API with binary audio frames."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from aiohttp.test_utils import TestClient
from homeassistant.config_entries import ConfigSubentryData
from homeassistant.const import CONF_API_KEY
from homeassistant.core import HomeAssistant
import numpy as np
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.openai_realtime_voice.const import CONF_BASE_URL, CONF_DIALECT
from custom_components.openai_realtime_voice.speech_flow import (
    DEFAULT_NAMES,
    SUBENTRY_STT,
    SUBENTRY_TTS,
)
from realtime_server import RealtimeServer
from tests.agent_helpers import AGENT, service_entry

STT = "stt.realtime_speech_to_text"
TTS = "tts.realtime_text_to_speech"
CHUNK_BYTES = 2048  # the frontend's chunks: 1024 samples of 16 kHz PCM16 (ha-voice-command)


@pytest.fixture
async def entry(
    hass: HomeAssistant,
    realtime_server: RealtimeServer,
    lights: None,
) -> MockConfigEntry:
    """A loaded entry with its first agent, speech-to-text and text-to-speech subentries."""
    entry = service_entry(
        {
            CONF_API_KEY: realtime_server.api_key,
            CONF_BASE_URL: realtime_server.url,
            CONF_DIALECT: "ga",
        },
        devices=[
            ConfigSubentryData(
                data={}, subentry_type=kind, title=DEFAULT_NAMES[kind], unique_id=None
            )
            for kind in (SUBENTRY_STT, SUBENTRY_TTS)
        ],
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    realtime_server.received.clear()
    return entry


def speech_16k(ms: int) -> bytes:
    """`ms` of a loud 16 kHz 440 Hz tone: the user's speech."""
    t = np.arange(16 * ms) / 16000
    return (np.sin(2 * np.pi * 440 * t) * 8000).astype("<i2").tobytes()


async def create_pipeline(
    ws: Any,
    *,
    stt: str | None = STT,
    agent: str = AGENT,
    tts: str | None = TTS,
    prefer_local_intents: bool = False,
) -> str:
    """Create an Assist pipeline over the WebSocket API; its id."""
    await ws.send_json_auto_id(
        {
            "type": "assist_pipeline/pipeline/create",
            "conversation_engine": agent,
            "conversation_language": "en",
            "language": "en",
            "name": "OpenAI Realtime (speech to speech)",
            "stt_engine": stt,
            "stt_language": "en",
            "tts_engine": tts,
            "tts_language": "en",
            "tts_voice": None,
            "wake_word_entity": None,
            "wake_word_id": None,
            "prefer_local_intents": prefer_local_intents,
        }
    )
    msg = await ws.receive_json()
    assert msg["success"], msg
    pipeline_id: str = msg["result"]["id"]
    return pipeline_id


@dataclass
class Run:
    """What one pipeline run reported."""

    events: list[dict[str, Any]] = field(default_factory=list)

    def of(self, kind: str) -> dict[str, Any]:
        """The data of the one event of a type."""
        found = [event["data"] for event in self.events if event["type"] == kind]
        assert len(found) == 1, (kind, [event["type"] for event in self.events])
        return found[0]

    @property
    def types(self) -> list[str]:
        """The event types in order."""
        return [event["type"] for event in self.events]

    @property
    def conversation_id(self) -> str:
        """The run's conversation."""
        return str(self.of("run-start")["conversation_id"])

    @property
    def tts_url(self) -> str:
        """Where the answer's speech streams from."""
        return str(self.of("tts-end")["tts_output"]["url"])


async def run_speech(
    ws: Any,
    pipeline_id: str,
    speech: bytes,
    conversation_id: str | None = None,
    *,
    end_stage: str = "tts",
) -> Run:
    """Speak `speech` (16 kHz PCM16) into a pipeline as the browser does; every event to run-end.

    The frontend sends the audio in binary frames prefixed with the run's handler id and an
    empty frame when the user stops (ha-voice-command-dialog / assist pipeline run helper).
    """
    message: dict[str, Any] = {
        "type": "assist_pipeline/run",
        "start_stage": "stt",
        "end_stage": end_stage,
        "input": {"sample_rate": 16000},
        "pipeline": pipeline_id,
    }
    if conversation_id is not None:
        message["conversation_id"] = conversation_id
    await ws.send_json_auto_id(message)
    msg = await ws.receive_json()
    assert msg["success"], msg
    run = Run()
    while True:
        msg = await ws.receive_json()
        event = msg["event"]
        run.events.append(event)
        if event["type"] == "run-start":
            handler = bytes([event["data"]["runner_data"]["stt_binary_handler_id"]])
            for start in range(0, len(speech), CHUNK_BYTES):
                await ws.send_bytes(handler + speech[start : start + CHUNK_BYTES])
            await ws.send_bytes(handler)  # the user stopped
        if event["type"] in ("run-end", "error"):
            return run


def sine_24k(ms: int, hz: int = 700) -> bytes:
    """`ms` of a 24 kHz sine: the model's spoken answer, recognisable by its pitch."""
    t = np.arange(24 * ms) / 24000
    return (np.sin(2 * np.pi * hz * t) * 8000).astype("<i2").tobytes()


async def fetch_speech(client: TestClient, url: str) -> bytes:
    """The answer's speech as the browser's audio element fetches it, decoded to 24 kHz PCM16.

    The browser asks for no format: Home Assistant serves MP3 (converted with ffmpeg).
    """
    response = await client.get(url)
    assert response.status == 200, await response.text()
    body = await response.read()
    ffmpeg = await asyncio.create_subprocess_exec(
        "ffmpeg",
        *("-hide_banner", "-loglevel", "error", "-i", "pipe:"),
        *("-f", "s16le", "-ac", "1", "-ar", "24000", "pipe:"),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    pcm, _ = await ffmpeg.communicate(body)
    assert ffmpeg.returncode == 0
    return pcm
