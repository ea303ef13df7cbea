"""The offline server's scenario mode on the wire: what it hears and what it speaks.

A client talks to `python -m realtime_server --scenario config/scenario.yaml` as the
integration does: spoken turns arrive as audio that went through Opus and Home Assistant's
resampler, announcements as `response.create` with the integration's own instructions.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncGenerator
import json
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from custom_components.openai_realtime_voice.audio.opus import OpusDecoder, OpusEncoder
from custom_components.openai_realtime_voice.audio.resampler import Resampler
from realtime_server import RealtimeServer, Scenario
from realtime_server.speech_match import best_match, features
from simulator.speech import synthesize

SCENARIO = Path(__file__).parents[2] / "config" / "scenario.yaml"
FRAME_BYTES = 16000 * 60 // 1000 * 2


async def device_speech(text: str) -> bytes:
    """`text` as the server receives it from a device: espeak-ng at 16 kHz (what the simulator's
    --say sends), Opus frames of 60 ms and back, resampled to 24 kHz as Home Assistant does."""
    pcm = await synthesize(text, 16000)
    pcm += bytes(-len(pcm) % FRAME_BYTES)
    encoder, decoder = OpusEncoder(16000, 60), OpusDecoder(16000, 60)
    decoded = b"".join(
        decoder.decode(encoder.encode(pcm[i : i + FRAME_BYTES]))
        for i in range(0, len(pcm), FRAME_BYTES)
    )
    resampler = Resampler(16000, 24000)
    return resampler.process(decoded) + resampler.flush()


@pytest.fixture
async def scenario() -> Scenario:
    """The repository's scenario, with its speech."""
    return await Scenario.load(SCENARIO)


@pytest.fixture
async def client(socket_enabled: None, scenario: Scenario) -> AsyncGenerator[ClientConnection]:
    """A client of a scenario server, with server VAD and transcription on."""
    server = RealtimeServer(scenario=scenario)
    await server.start()
    url = server.url.replace("http", "ws") + "/realtime?model=gpt-realtime"
    try:
        async with connect(
            url, additional_headers={"Authorization": f"Bearer {server.api_key}"}
        ) as ws:
            assert json.loads(await ws.recv())["type"] == "session.created"
            await ws.send(
                json.dumps(
                    {
                        "type": "session.update",
                        "session": {
                            "type": "realtime",
                            "audio": {
                                "input": {
                                    "transcription": {"model": "gpt-4o-mini-transcribe"},
                                    "turn_detection": {
                                        "type": "server_vad",
                                        "silence_duration_ms": 500,
                                    },
                                }
                            },
                        },
                    }
                )
            )
            await _until(ws, "session.updated")
            yield ws
    finally:
        await server.stop()


async def _until(ws: ClientConnection, kind: str) -> list[dict[str, Any]]:
    events = []
    while True:
        event = json.loads(await ws.recv())
        events.append(event)
        if event["type"] == kind:
            return events


async def _say(ws: ClientConnection, text: str) -> list[dict[str, Any]]:
    """Speak `text`, then silence; the events up to the response's end."""
    audio = await device_speech(text) + bytes(48 * 1000)
    for i in range(0, len(audio), 48 * 100):
        chunk = base64.b64encode(audio[i : i + 48 * 100]).decode()
        await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": chunk}))
    return await _until(ws, "response.done")


def _calls(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    done = next(e for e in events if e["type"] == "response.done")
    return [
        (item["name"], item["arguments"])
        for item in done["response"]["output"]
        if item["type"] == "function_call"
    ]


def _transcripts(events: list[dict[str, Any]]) -> list[str]:
    return [
        e["transcript"]
        for e in events
        if e["type"] == "conversation.item.input_audio_transcription.completed"
    ]


@pytest.mark.parametrize(
    ("said", "tool", "transcript"),
    [
        ("Turn off the kitchen light", "intent__HassTurnOff", "turn off the kitchen light"),
        ("Turn on the kitchen light", "intent__HassTurnOn", "turn on the kitchen light"),
    ],
)
async def test_a_spoken_turn_plays_the_rule_of_what_was_said(
    client: ClientConnection, said: str, tool: str, transcript: str
) -> None:
    """The first turn of a connection is matched on what it says, not on the rule order."""
    events = await _say(client, said)
    assert _calls(events) == [(tool, json.dumps({"name": "Kitchen light"}))]
    assert _transcripts(events) == [transcript]


async def test_speech_that_matches_no_rule_gets_the_fallback(
    client: ClientConnection, scenario: Scenario
) -> None:
    """Words no rule knows: the fallback sentence, no tool call, no made-up transcript."""
    events = await _say(client, "What is the weather like tomorrow")
    assert _calls(events) == []
    said = [e["transcript"] for e in events if e["type"] == "response.output_audio_transcript.done"]
    assert said == [scenario.fallback.say]
    assert _transcripts(events) == []


async def test_the_matcher_tells_one_word_apart() -> None:
    """ "on" and "off" differ in one short word, yet the right phrase is the closest."""
    phrases = ["turn on the kitchen light", "turn off the kitchen light", "hello"]
    known = [features(await synthesize(p, 24000)) for p in phrases]
    for index, phrase in enumerate(phrases):
        assert best_match(await device_speech(phrase), known)[0] == index


@pytest.mark.parametrize(
    "instructions",
    [
        # bridge/actions.py (speak, announce) and bridge/realtime_engine.py (greeting)
        "Say exactly this to the user, and nothing else: The washing machine is done.",
        (
            "Say exactly this to the user, and nothing else: The washing machine is done."
            "\n\nCalm, one short sentence."
        ),
        "Greet the user by saying exactly: The washing machine is done.",
    ],
)
async def test_a_message_is_spoken_as_given(
    client: ClientConnection, scenario: Scenario, instructions: str
) -> None:
    """speak/announce: the server says the message the instructions give, with its audio."""
    await client.send(
        json.dumps(
            {
                "type": "response.create",
                "response": {"conversation": "none", "instructions": instructions},
            }
        )
    )
    events = await _until(client, "response.done")
    said = [e["transcript"] for e in events if e["type"] == "response.output_audio_transcript.done"]
    assert said == ["The washing machine is done."]
    audio = b"".join(
        base64.b64decode(e["delta"]) for e in events if e["type"] == "response.output_audio.delta"
    )
    expected = await synthesize("The washing machine is done.", 24000)
    assert len(audio) == len(expected)
    assert audio != scenario.greeting.audio
