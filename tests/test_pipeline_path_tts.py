"""The Assist pipeline path's TTS answer through Home Assistant's TTS, as WAV, converted in-process.

The satellite asks HA's TTS for WAV (`preferred_format`), so a WAV engine's answer reaches the
bridge untouched and is resampled in-process: these answers play with the ffmpeg binary
pointed at nothing. An MP3 engine's answer is converted to WAV by HA's own ffmpeg; a WAV that
is not PCM16 mono goes through ffmpeg in the bridge. Broken answers end in an alert, `tts
stop` and an idle satellite.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path
import subprocess
from typing import Any

from aiohttp.test_utils import TestClient
from homeassistant.components import tts
from homeassistant.components.ffmpeg import get_ffmpeg_manager
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
import numpy as np
import pytest

from custom_components.openai_realtime_voice.bridge import (
    BridgePhase,
)
from custom_components.openai_realtime_voice.xiaozhi import ListenMode
from realtime_server import RealtimeServer
from simulator.device import DeviceSimulator
from simulator.speech import synthesize
from tests.bridge_helpers import alerts, disconnect, on_pipeline_path, satellite_id, wait_tts
from tests.device_helpers import bridge_at, device_client, wait_until
from tests.pipeline_providers import (
    STT_TEXT,
    TONE_HZ,
    TONE_SECONDS,
    Providers,
    ScriptedSTT,
    ScriptedTTS,
    dominant_hz,
    providers_flow,
    setup_providers,
    tone_wav,
)


class StreamingTTS(ScriptedTTS):
    """The scripted TTS entity, streaming its answer; `broken` makes the engine fail midway."""

    def __init__(self) -> None:
        """Answer as the scripted entity does, whole."""
        super().__init__()
        self.broken: bytes | None = None
        self.fail = asyncio.Event()

    async def async_stream_tts_audio(self, request: tts.TTSAudioRequest) -> tts.TTSAudioResponse:
        """The answer; with `broken`, those bytes, then an engine error once `fail` is set.

        (HA's result stream hands a reader that arrives after the error only the error.)
        """
        if self.broken is None:
            return await super().async_stream_tts_audio(request)
        self.messages.append("".join([chunk async for chunk in request.message_gen]))
        data, fail = self.broken, self.fail

        async def chunks() -> AsyncGenerator[bytes]:
            for start in range(0, len(data), 4096):
                yield data[start : start + 4096]
            await fail.wait()
            raise HomeAssistantError("voice server went away")

        return tts.TTSAudioResponse("wav", chunks())


pytestmark = pytest.mark.usefixtures("fast_retries")


@pytest.fixture
async def providers(
    hass: HomeAssistant, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Providers]:
    """A scriptable STT entity and the streaming TTS entity in the preferred pipeline."""
    with providers_flow():
        yield await setup_providers(
            hass, tmp_path, monkeypatch, Providers(ScriptedSTT(), StreamingTTS())
        )


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


def engine(providers: Providers) -> StreamingTTS:
    """The streaming TTS entity."""
    assert isinstance(providers.tts, StreamingTTS)
    return providers.tts


def without_ffmpeg(hass: HomeAssistant, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Point HA's ffmpeg binary (what `ffmpeg_bin` configures) at a path with no binary."""
    manager = get_ffmpeg_manager(hass)
    monkeypatch.setattr(manager, "binary", str(tmp_path / "no-ffmpeg"))  # a cached_property
    assert manager.binary == str(tmp_path / "no-ffmpeg")


def mp3(pcm: bytes, rate: int) -> bytes:
    """PCM16 mono as MP3, encoded by the real ffmpeg (as cloud engines answer)."""
    command = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "s16le", "-ar", str(rate)]
    command += ["-ac", "1", "-i", "pipe:0", "-f", "mp3", "pipe:1"]
    return subprocess.run(command, input=pcm, capture_output=True, check=True).stdout


def tone_pcm(rate: int) -> bytes:
    """The tone's PCM (the WAV's audio)."""
    return tone_wav(rate)[44:]


async def one_turn(device: DeviceSimulator) -> int:
    """A push-to-talk turn asking for the kitchen lights; return where its messages start."""
    start = len(device.messages)
    await device.start_listening(ListenMode.MANUAL)
    await device.send_audio(await synthesize(STT_TEXT, 16000))
    await device.stop_listening()
    return start


def assert_tone_played(device: DeviceSimulator, seconds: float = TONE_SECONDS) -> None:
    """The device played the tone at 24 kHz, `seconds` long within a frame, in tune."""
    assert device.server_hello is not None
    rate = device.server_hello.sample_rate
    frame = rate * 2 * device.server_hello.frame_duration // 1000
    played = bytes(device.playback.played_pcm)
    assert abs(len(played) - rate * 2 * seconds) <= frame
    assert abs(dominant_hz(played, rate) - TONE_HZ) < 5


@pytest.mark.parametrize("rate", [16000, 22050])
async def test_wav_answer_plays_without_ffmpeg(
    hass: HomeAssistant,
    client: TestClient,
    realtime_server: RealtimeServer,
    *,
    providers: Providers,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    rate: int,
) -> None:
    """A WAV engine (Piper speaks at 16 or 22.05 kHz) is asked for WAV and played as sent:
    no ffmpeg in HA's TTS nor in the bridge."""
    device, state = await on_pipeline_path(hass, client, realtime_server)
    without_ffmpeg(hass, monkeypatch, tmp_path)
    engine(providers).answer = ("wav", tone_wav(rate))
    start = await one_turn(device)
    await wait_tts(device, "stop", start)
    await wait_until(lambda: hass.states.get(satellite_id(hass, device.mac)).state == "idle", hass)
    assert hass.states.get("light.kitchen_lights").state == "on"
    assert alerts(device) == []
    assert set(device.downlink_outcomes()) == {"played"}
    assert_tone_played(device)
    await disconnect(hass, device, state)


async def test_mp3_answer_is_converted_by_home_assistants_ffmpeg(
    hass: HomeAssistant,
    client: TestClient,
    realtime_server: RealtimeServer,
    *,
    providers: Providers,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """An MP3 engine's answer still goes through ffmpeg (HA's, to WAV) and plays in tune;
    with no ffmpeg binary the turn ends in an alert and the satellite idles."""
    device, state = await on_pipeline_path(hass, client, realtime_server)
    entity_id = satellite_id(hass, device.mac)
    engine(providers).answer = ("mp3", mp3(tone_pcm(22050), 22050))
    start = await one_turn(device)
    await wait_tts(device, "stop", start)
    assert alerts(device) == []
    played = bytes(device.playback.played_pcm)
    # MP3 adds the encoder's delay and pads its last frame (about 70 ms).
    assert 48000 <= len(played) <= 48000 + 48 * 150
    assert abs(dominant_hz(played, 24000) - TONE_HZ) < 5
    await wait_until(lambda: hass.states.get(entity_id).state == "idle", hass)

    without_ffmpeg(hass, monkeypatch, tmp_path)
    # Another intent, so another answer text: HA's TTS cache cannot answer it.
    assert isinstance(providers.stt, ScriptedSTT)
    providers.stt.text = "turn off the kitchen lights"
    start = await one_turn(device)
    await wait_until(lambda: bool(alerts(device)), device)
    [alert] = alerts(device)
    assert alert.startswith("Cannot play the answer: the TTS answer failed: ")
    await wait_tts(device, "stop", start)
    await wait_until(lambda: hass.states.get(entity_id).state == "idle", hass)
    assert state.errors["pipeline"] == 1
    await disconnect(hass, device, state)


async def test_non_pcm_wav_answer_goes_through_ffmpeg(
    hass: HomeAssistant,
    client: TestClient,
    realtime_server: RealtimeServer,
    providers: Providers,
) -> None:
    """A float WAV (HA passes WAV through as WAV) is decoded by ffmpeg in the bridge."""
    device, state = await on_pipeline_path(hass, client, realtime_server)
    samples = np.frombuffer(tone_pcm(22050), "<i2").astype("<f4") / 32768
    fmt = (3).to_bytes(2, "little") + (1).to_bytes(2, "little") + (22050).to_bytes(4, "little")
    fmt += (
        (22050 * 4).to_bytes(4, "little") + (4).to_bytes(2, "little") + (32).to_bytes(2, "little")
    )
    data = samples.tobytes()
    body = b"WAVEfmt " + len(fmt).to_bytes(4, "little") + fmt
    body += b"data" + len(data).to_bytes(4, "little") + data
    engine(providers).answer = ("wav", b"RIFF" + len(body).to_bytes(4, "little") + body)
    start = await one_turn(device)
    await wait_tts(device, "stop", start)
    assert alerts(device) == []
    assert_tone_played(device)
    await disconnect(hass, device, state)


@pytest.mark.parametrize(
    ("answer", "alert"),
    [
        (tone_wav(22050)[:30], "Cannot play the answer: the TTS answer ends inside its WAV header"),
        (b"", "Cannot play the answer: the TTS answer is empty"),
    ],
    ids=["truncated header", "empty"],
)
async def test_broken_wav_answer_alerts_and_the_satellite_idles(
    hass: HomeAssistant,
    client: TestClient,
    realtime_server: RealtimeServer,
    *,
    providers: Providers,
    answer: bytes,
    alert: str,
) -> None:
    """A truncated WAV header or an empty answer: an alert, `tts stop`, nothing played."""
    device, state = await on_pipeline_path(hass, client, realtime_server)
    entity_id = satellite_id(hass, device.mac)
    engine(providers).answer = ("wav", answer)
    start = await one_turn(device)
    await wait_until(lambda: bool(alerts(device)), device)
    assert alerts(device) == [alert]
    await wait_tts(device, "stop", start)
    await wait_until(lambda: hass.states.get(entity_id).state == "idle", hass)
    assert state.errors["pipeline"] == 1
    assert not device.playback.played_pcm
    assert bridge_at(hass, state.mac) is not None
    assert bridge_at(hass, state.mac).phase is BridgePhase.IDLE
    await disconnect(hass, device, state)


async def test_answer_breaking_off_midway_stops_with_an_alert(
    hass: HomeAssistant,
    client: TestClient,
    realtime_server: RealtimeServer,
    *,
    providers: Providers,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """The voice server drops midway through a streamed WAV, while the device plays the part
    that came: the answer stops there (the bridge ends speech on a failed source) with an
    alert, and the satellite idles."""
    device, state = await on_pipeline_path(hass, client, realtime_server)
    entity_id = satellite_id(hass, device.mac)
    without_ffmpeg(hass, monkeypatch, tmp_path)
    whole = tone_wav(22050)
    engine(providers).broken = whole[: 44 + (len(whole) - 44) // 2]
    start = await one_turn(device)
    await wait_until(lambda: bool(device.playback.played_pcm), device)
    engine(providers).fail.set()
    await wait_until(lambda: bool(alerts(device)), device)
    assert alerts(device) == [
        "Cannot play the answer: the TTS answer broke off: voice server went away"
    ]
    await wait_tts(device, "stop", start)
    await wait_until(lambda: hass.states.get(entity_id).state == "idle", hass)
    assert state.errors["pipeline"] == 1
    played = bytes(device.playback.played_pcm)
    assert 0 < len(played) <= 24000 * TONE_SECONDS  # at most the half second that came
    assert abs(dominant_hz(played, 24000) - TONE_HZ) < 5 + 24000 / (len(played) / 2)
    await disconnect(hass, device, state)
