"""A Wyoming satellite's spoken turn: end of speech -> first answer audio at the satellite.

    python -m benchmarks.bench_satellite [--rounds 8]

One process: Home Assistant (set up as the tests do) with its own `wyoming` integration, a
Wyoming satellite in the process (`tests/wyoming_satellite.py`) and the local Realtime server.
The satellite speaks (0.6 s of 16 kHz audio, then AudioStop: its own VAD ended the speech, so
Home Assistant's VAD window is not in the figures) and plays what it is sent back.

Two pipelines answer in turns, interleaved round by round:

- shared: this integration's speech-to-text, agent and text-to-speech of one entry, which
  share one Realtime turn (the answer starts at the commit, its audio is the speech);
- cascaded: speech-to-text and text-to-speech of a second entry (same options and voice) on
  their own around the first entry's agent in text: Realtime transcription, a text answer, and
  the model reading the answer aloud.

The server's time is fixed: the input transcript arrives 0.4 s after the commit (issue 28
measured the service there) and every response takes 0.3 s to its first output. Server time
of a turn: shared 0.4 s (the answer runs while the transcript comes); cascaded 1.0 s
(transcript, text answer, reading). Goals: shared <= 0.6x cascaded (p50), and the shared
turn's own share (measured minus server time) <= 150 ms p95. Local sessions connect in
about a millisecond; against the real service each connection the cascade opens after the
speech ends (reading aloud) costs a TLS and session set-up on top.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
from typing import Any

import numpy as np

from benchmarks import table, verdict

GOAL_RATIO = 0.6
GOAL_OWN_P95_MS = 150.0
MODEL_TIME = 0.3
"""Seconds the server's model takes to its first output, per response."""
TRANSCRIPT_DELAY = 0.4
"""Seconds from the commit to the input transcript."""
SERVER_TIME = {
    "shared": max(TRANSCRIPT_DELAY, MODEL_TIME),
    "cascaded": TRANSCRIPT_DELAY + 2 * MODEL_TIME,
}
API_KEY = "sk-bench-" + "0" * 20


def _speech(ms: int) -> bytes:
    t = np.arange(16 * ms) / 16000
    return (np.sin(2 * np.pi * 300 * t) * 8000).astype("<i2").tobytes()


def _answer(ms: int) -> bytes:
    t = np.arange(24 * ms) / 24000
    return (np.sin(2 * np.pi * 700 * t) * 8000).astype("<i2").tobytes()


async def _pipeline(hass: Any, name: str, stt: str, agent: str, tts: str) -> str:
    from homeassistant.components.assist_pipeline.pipeline import KEY_ASSIST_PIPELINE

    store = hass.data[KEY_ASSIST_PIPELINE].pipeline_store
    pipeline = await store.async_create_item(
        {
            "conversation_engine": agent,
            "conversation_language": "en",
            "language": "en",
            "name": name,
            "stt_engine": stt,
            "stt_language": "en",
            "tts_engine": tts,
            "tts_language": "en",
            "tts_voice": None,
            "wake_word_entity": None,
            "wake_word_id": None,
            "prefer_local_intents": False,
        }
    )
    return str(pipeline.id)


async def bench(rounds: int, port: int) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Both pipelines, interleaved; the milliseconds of each round per pipeline."""
    from homeassistant import loader
    from homeassistant.components.assist_pipeline.pipeline import KEY_ASSIST_PIPELINE
    from homeassistant.config_entries import ConfigSubentryData
    from homeassistant.const import CONF_API_KEY
    from homeassistant.setup import async_setup_component
    from pytest_homeassistant_custom_component.common import (
        MockConfigEntry,
        async_test_home_assistant,
    )

    from custom_components.openai_realtime_voice.const import CONF_BASE_URL, CONF_DIALECT
    from realtime_server import RealtimeServer, ScriptedResponse
    from tests.agent_helpers import service_entry
    from tests.wyoming_satellite import WyomingSatellite

    server = RealtimeServer(api_key=API_KEY)
    server.response_delay = MODEL_TIME
    server.commit_transcript_delay = TRANSCRIPT_DELAY
    server.user_transcript = "What time is it?"
    await server.start()
    satellite = WyomingSatellite(port)
    await satellite.start()
    samples: dict[str, list[float]] = {"shared": [], "cascaded": []}
    conversions: dict[str, list[float]] = {"shared": [], "cascaded": []}
    engine_first: list[float] = []
    _time_engine(engine_first)
    with tempfile.TemporaryDirectory() as config_dir:
        async with async_test_home_assistant(config_dir=config_dir) as hass:
            hass.data.pop(loader.DATA_CUSTOM_COMPONENTS, None)
            for domain, config in (
                ("homeassistant", {}),
                ("http", {"http": {"server_host": "127.0.0.1"}}),
                ("intent", {}),
                ("conversation", {}),
                ("assist_pipeline", {}),
            ):
                assert await async_setup_component(hass, domain, config)
            data = {CONF_API_KEY: API_KEY, CONF_BASE_URL: server.url, CONF_DIALECT: "ga"}
            entries = []
            for title in ("Shared", "Cascaded"):
                entry = service_entry(  # its first agent is named after it
                    data,
                    title=title,
                    devices=[
                        ConfigSubentryData(
                            data={}, subentry_type=kind, title=f"{title} {name}", unique_id=None
                        )
                        for kind, name in (("stt", "speech to text"), ("tts", "text to speech"))
                    ],
                )
                entry.add_to_hass(hass)
                assert await hass.config_entries.async_setup(entry.entry_id)
                entries.append(entry)
            await hass.async_block_till_done()
            pipelines = {
                "shared": await _pipeline(
                    hass,
                    "shared",
                    "stt.shared_speech_to_text",
                    "conversation.shared",
                    "tts.shared_text_to_speech",
                ),
                "cascaded": await _pipeline(
                    hass,
                    "cascaded",
                    "stt.cascaded_speech_to_text",
                    "conversation.shared",
                    "tts.cascaded_text_to_speech",
                ),
            }
            store = hass.data[KEY_ASSIST_PIPELINE].pipeline_store
            wyoming = MockConfigEntry(domain="wyoming", data={"host": "127.0.0.1", "port": port})
            wyoming.add_to_hass(hass)
            assert await hass.config_entries.async_setup(wyoming.entry_id)
            await satellite.running.wait()
            try:
                for index in range(rounds + 1):  # the first round warms up (not counted)
                    for name, pipeline_id in pipelines.items():
                        store.async_set_preferred_item(pipeline_id)
                        # A new text each round: Home Assistant's speech cache must not answer.
                        text = f"It is noon, round {index} of the {name} pipeline."
                        server.script(
                            ScriptedResponse(text=text, audio=_answer(600)),
                            ScriptedResponse(text=text, audio=_answer(600)),
                        )
                        engine_first.clear()
                        ended = await satellite.speak(_speech(600), realtime=True)
                        reply = await satellite.reply()
                        samples[name].append((reply.first_audio - ended) * 1000)
                        conversions[name].append((reply.first_audio - engine_first[0]) * 1000)
                        server.responses.clear()
                        await hass.async_block_till_done()
            finally:
                await hass.config_entries.async_unload(wyoming.entry_id)
                for entry in entries:
                    await hass.config_entries.async_unload(entry.entry_id)
    await satellite.stop()
    await server.stop()
    return {name: values[1:] for name, values in samples.items()}, {
        name: values[1:] for name, values in conversions.items()
    }


def _time_engine(first: list[float]) -> None:
    """Note when text-to-speech hands Home Assistant its first audio (before ffmpeg)."""
    from custom_components.openai_realtime_voice import tts

    entity = tts.RealtimeTextToSpeechEntity
    for name in ("_turn_audio", "_read_aloud"):
        original = getattr(entity, name)

        def timed(self: Any, *args: Any, _original: Any = original) -> Any:
            async def stream() -> Any:
                async for chunk in _original(self, *args):
                    if len(chunk) > 44 and not first:
                        first.append(asyncio.get_running_loop().time())
                    yield chunk

            return stream()

        setattr(entity, name, timed)


def _p95(values: list[float]) -> float:
    return float(np.percentile(values, 95))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--port", type=int, default=10733)
    args = parser.parse_args(argv)
    samples, conversions = asyncio.run(bench(args.rounds, args.port))
    shared, cascaded = samples["shared"], samples["cascaded"]
    ratio = statistics.median(shared) / statistics.median(cascaded)
    rows = []
    for name, label in (
        ("cascaded", "cascaded (STT, agent in text, reading)"),
        ("shared", "shared turn"),
    ):
        values = samples[name]
        own = [value - SERVER_TIME[name] * 1000 for value in values]
        ffmpeg = conversions[name]
        rows.append(
            [
                label,
                f"p50 {statistics.median(values):.0f}, p95 {_p95(values):.0f}",
                f"{SERVER_TIME[name] * 1000:.0f}",
                f"p50 {statistics.median(own):.0f}, p95 {_p95(own):.0f}",
                f"p50 {statistics.median(ffmpeg):.0f}, p95 {_p95(ffmpeg):.0f}",
                "1.00x" if name == "cascaded" else f"{ratio:.2f}x",
                "-"
                if name == "cascaded"
                else verdict(ratio <= GOAL_RATIO and _p95(own) <= GOAL_OWN_P95_MS),
            ]
        )
    print(
        table(
            f"Wyoming satellite, end of speech -> first answer audio, ms ({args.rounds} rounds "
            f"each; goals: shared <= {GOAL_RATIO:g}x cascaded, own share p95 <= "
            f"{GOAL_OWN_P95_MS:g} ms)",
            [
                "Pipeline",
                "Measured",
                "Server",
                "Own share (measured - server)",
                "of it: TTS first audio -> satellite",
                "Ratio",
                "Verdict",
            ],
            rows,
        )
    )
    return 0 if rows[1][6] != "MISS" else 1


if __name__ == "__main__":
    sys.exit(main())
