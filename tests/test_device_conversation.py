"""A conversation with a firmware-faithful device: timing, listening modes, the face and screen.

The simulator behaves as xiaozhi-esp32 v2.x does (it connects when a conversation starts and
streams the microphone right after the server hello); the Realtime server takes as long to
accept a session as the real service when `accept_delay` is set.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
import logging
from typing import Any

from aiohttp.test_utils import TestClient
from homeassistant.core import HomeAssistant
import numpy as np
import pytest

from custom_components.openai_realtime_voice.bridge import BridgePhase, wake as bridge_wake
from custom_components.openai_realtime_voice.xiaozhi import ListenMode
from realtime_server import RealtimeServer, ScriptedResponse, tone
from simulator.device import DeviceSimulator
from tests.agent_helpers import set_settings
from tests.bridge_helpers import (
    appended_audio,
    bridge_of,
    bridged,
    correlation,
    device_state,
    disconnect,
    say,
    send_typed_detect,
    wait_tts,
)
from tests.device_helpers import pair, release_devices, simulator, wait_until

WAKE_WORD = "你好小智"
VOICED_RMS = 2000.0


@pytest.fixture(autouse=True)
async def _release(hass: HomeAssistant, client: TestClient) -> AsyncGenerator[None]:
    """Close every simulated device, also when a test fails half-way."""
    yield
    await release_devices(hass, client)


def chirp(ms: int, rate: int = 16000, low: float = 300.0, high: float = 2400.0) -> bytes:
    """A rising sweep as PCM16: any lost, repeated or reordered piece changes its shape."""
    t = np.arange(rate * ms // 1000) / rate
    duration = ms / 1000
    phase = 2 * np.pi * (low * t + (high - low) * t * t / (2 * duration))
    return (np.sin(phase) * 8000).astype("<i2").tobytes()


def voiced_ms(pcm24k: bytes) -> int:
    """Milliseconds of 24 kHz PCM16 whose 10 ms windows are loud (not silence)."""
    samples = np.frombuffer(pcm24k, dtype="<i2").astype(np.float64)
    windows = samples[: len(samples) // 240 * 240].reshape(-1, 240)
    rms = np.sqrt((windows**2).mean(axis=1))
    return int((rms >= VOICED_RMS).sum()) * 10


def set_options(hass: HomeAssistant, **options: Any) -> None:
    """Change the service entry's settings in place (read by each new bridge session)."""
    entry = hass.config_entries.async_entries("openai_realtime_voice")[0]
    set_settings(hass, entry, **options)


def user_texts(server: RealtimeServer) -> list[str]:
    """The user text messages the model received."""
    return [
        part["text"]
        for event in server.of_type("conversation.item.create")
        if event["item"].get("role") == "user"
        for part in event["item"]["content"]
    ]


async def woken(client: TestClient, hass: HomeAssistant, **kwargs: Any) -> DeviceSimulator:
    """A paired device that has not connected yet (it connects when woken, as the firmware)."""
    device = simulator(client, **kwargs)
    await pair(hass, device)
    return device


# --- 1. Nothing of the first words is lost while the session opens -------------------------


@pytest.mark.parametrize("accept_delay", [0.8, 1.5])
async def test_first_utterance_reaches_a_slow_service(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer, accept_delay: float
) -> None:
    """The user speaks right after the wake word; the service needs `accept_delay` to accept.

    At least 95 % of the utterance (by duration) reaches the service, in order, and the wake
    word itself is not a user message.
    """
    realtime_server.accept_delay = accept_delay
    realtime_server.script(ScriptedResponse(text="Sure.", audio=tone(120)))
    device = await woken(client, hass)
    utterance = chirp(1500)
    await device.detect_wake_word(WAKE_WORD, speech=utterance + bytes(32000))
    await wait_until(lambda: realtime_server.responses_done >= 1, realtime_server, timeout=10)
    await wait_tts(device, "stop")

    received = appended_audio(realtime_server)
    share = voiced_ms(received) / 1500
    logging.getLogger(__name__).info(
        "first utterance at %.1f s: %.1f %%", accept_delay, share * 100
    )
    assert share >= 0.95
    spoken = np.frombuffer(utterance, dtype="<i2").astype(np.float64)
    expected = np.interp(np.arange(len(spoken) * 3 // 2) * 2 / 3, np.arange(len(spoken)), spoken)
    heard = np.frombuffer(received, dtype="<i2").astype(np.float64)
    assert correlation(expected, heard) > 0.8  # whole and in order
    assert user_texts(realtime_server) == []
    state = device_state(hass, device)
    assert bridge_of(hass, state).dropped_batches == 0
    await disconnect(hass, device, state)


async def test_typed_detect_while_the_session_opens_is_answered(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """A `listen detect` with typed text sent before the session is ready is not lost."""
    realtime_server.accept_delay = 0.8
    realtime_server.script(ScriptedResponse(text="It is noon.", audio=tone(120)))
    device = await woken(client, hass)
    await device.open_audio_channel()  # a client that types: no stock board
    await send_typed_detect(device, "what time is it")
    await wait_tts(device, "stop")
    assert user_texts(realtime_server) == ["what time is it"]
    await disconnect(hass, device, device_state(hass, device))


@pytest.mark.parametrize("text", ["你好小智", "Hey Jarvis", "hey, jarvis!", "Hey Nova"])
async def test_wake_word_alone_starts_listening(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer, text: str
) -> None:
    """A `detect` that carries only a wake word (stock or configured) is no user message."""
    set_options(hass, wake_words="Hey Nova")
    device = await woken(client, hass, wake_word=text)
    assert await device.detect_wake_word()
    state = device_state(hass, device)
    await wait_until(lambda: bridge_of(hass, state).phase is BridgePhase.LISTENING, state)
    await asyncio.sleep(0.2)
    assert user_texts(realtime_server) == []
    assert not realtime_server.of_type("response.create")
    await disconnect(hass, device, state)


async def test_wake_word_before_a_typed_request_is_dropped(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """A wake word, a fullwidth comma and a request: only the request is sent."""
    realtime_server.script(ScriptedResponse(text="Done.", audio=tone(120)))
    device = await bridged(hass, client)
    await send_typed_detect(device, "你好小智\uff0cwhat time is it")
    await wait_tts(device, "stop")
    assert user_texts(realtime_server) == ["what time is it"]
    await disconnect(hass, device, device_state(hass, device))


async def test_greeting_does_not_cut_off_a_user_who_speaks_at_once(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """An auto-mode device stops its microphone at `tts start`: no greeting over the user."""
    set_options(hass, greeting="Hello, how can I help?")
    realtime_server.accept_delay = 0.3
    realtime_server.script(ScriptedResponse(text="Sure.", audio=tone(120)))
    device = await woken(client, hass)
    await device.detect_wake_word(WAKE_WORD, speech=chirp(1500) + bytes(32000))
    await wait_tts(device, "stop")
    greetings = [
        params
        for params in realtime_server.response_params
        if "Hello, how can I help?" in str(params.get("instructions"))
    ]
    assert greetings == []
    assert voiced_ms(appended_audio(realtime_server)) >= 1500 * 0.95
    await disconnect(hass, device, device_state(hass, device))


# --- 2. The microphone closes after a while without speech ----------------------------------


async def test_silent_listening_device_is_closed(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """No speech for `listening_timeout` s: the channel closes, the device idles, the
    Realtime session ends."""
    set_options(hass, listening_timeout=0.5)
    loop = asyncio.get_running_loop()
    began = loop.time()  # the board listens from its hello on
    device = await bridged(hass, client)
    state = device_state(hass, device)
    bridge = bridge_of(hass, state)
    session = realtime_server.session
    streaming = asyncio.create_task(device.send_audio(bytes(32000 * 3), realtime=True))
    async with asyncio.timeout(3):
        await device.wait_closed()
    streaming.cancel()
    await asyncio.gather(streaming, return_exceptions=True)
    assert loop.time() - began >= 0.5
    assert device.state.value == "idle"
    await wait_until(lambda: bridge_of(hass, state) is None and bridge.connection.closed, state)
    assert bridge.connection.close_reason == "no speech"
    async with asyncio.timeout(3):
        await session.ws.wait_closed()
    assert not bridge.tasks
    await device.close()


async def test_speech_keeps_the_channel_open(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """Each turn restarts the listening timeout; only silence after the last reply closes."""
    set_options(hass, listening_timeout=0.8)
    realtime_server.script(*(ScriptedResponse(text="Yes.", audio=tone(120)) for _ in range(2)))
    device = await bridged(hass, client)
    connection = bridge_of(hass, device_state(hass, device)).connection
    for turn in range(2):
        # listen start once the reply played out
        await wait_until(lambda: device.mic_active, device)
        start = len(device.messages)
        await device.send_audio(chirp(400) + bytes(32000), realtime=True)
        await wait_tts(device, "stop", start)
        assert realtime_server.responses_done == turn + 1
    assert device.channel_open
    async with asyncio.timeout(3):
        await device.wait_closed()
    await wait_until(lambda: connection.closed, connection.state)
    assert connection.close_reason == "no speech"
    await device.close()


async def test_a_long_reply_is_not_cut_by_the_listening_timeout(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """A reply longer than `listening_timeout` plays to the end; the timeout counts after it."""
    set_options(hass, listening_timeout=0.3)
    realtime_server.script(ScriptedResponse(text="A long story.", audio=tone(1200)))
    device = await bridged(hass, client)
    connection = bridge_of(hass, device_state(hass, device)).connection
    await say(device)
    await wait_tts(device, "stop")
    assert device.downlink_outcomes() == {"played": 20}
    async with asyncio.timeout(3):
        await device.wait_closed()
    await wait_until(lambda: connection.closed, connection.state)
    assert connection.close_reason == "no speech"
    await device.close()


# --- 6. Server-side AEC builds ---------------------------------------------------------------


async def test_aec_device_echo_does_not_barge_in(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """`features.aec: true`: the microphone stays on while speaking; its echo is not forwarded."""
    realtime_server.script(ScriptedResponse(text="A long answer.", audio=tone(1500), chunks=5))
    device = await bridged(hass, client, server_aec=True, default_mode=ListenMode.REALTIME)
    state = device_state(hass, device)
    await say(device)
    await wait_until(lambda: device.downlink_outcomes().get("played", 0) >= 3, device)
    before = len(realtime_server.of_type("input_audio_buffer.append"))
    assert device.mic_active
    await device.send_audio(chirp(600), realtime=True)  # the device hears its own speaker
    await wait_tts(device, "stop")
    assert not realtime_server.of_type("conversation.item.truncate")
    assert len(realtime_server.of_type("input_audio_buffer.append")) == before
    assert device.downlink_outcomes() == {"played": 25}
    await disconnect(hass, device, state)


# --- 7. The face and the screen ------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "emotion"),
    [
        ("Sorry, I can't do that.", "sad"),
        ("Great! The lights are on.", "happy"),
        ("Haha, that is a good one.", "laughing"),
        ("The kitchen light is on.", "neutral"),
    ],
)
async def test_reply_sets_the_face(
    hass: HomeAssistant,
    client: TestClient,
    realtime_server: RealtimeServer,
    reply: str,
    emotion: str,
) -> None:
    """An `llm` emotion from the firmware's set precedes the reply's first sentence."""
    realtime_server.script(ScriptedResponse(text=reply, audio=tone(300)))
    device = await bridged(hass, client)
    await say(device)
    await wait_tts(device, "stop")
    assert device.emotions == [emotion]
    kinds = [
        m["type"] if m["type"] != "tts" else m["state"]
        for m in device.messages
        if m["type"] in ("llm", "tts")
    ]
    assert kinds[:3] == ["start", "llm", "sentence_start"]
    await disconnect(hass, device, device_state(hass, device))


async def test_sentences_follow_the_paced_audio(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """The second sentence shows when its audio plays, not when the reply's audio arrived."""
    realtime_server.script(
        ScriptedResponse(
            text="The first half is here. The second half follows now.",
            audio=tone(2400),
            chunks=8,
        )
    )
    device = await bridged(hass, client)
    await say(device)
    await wait_tts(device, "stop")
    index = next(
        i
        for i, m in enumerate(device.messages)
        if m.get("state") == "sentence_start" and m["text"].startswith("The second")
    )
    frames_before = device.channel.message_downlink[index]
    assert 12 <= frames_before <= 28  # of 40 frames: about halfway through the audio
    await disconnect(hass, device, device_state(hass, device))


async def test_user_line_before_the_reply_and_never_over_it(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """`stt` precedes the first sentence when transcribed in time; a transcript that comes
    after the reply started is not sent: the default display has one chat line, and the
    user's words would replace the answer there."""
    realtime_server.user_transcript = "what is the weather"
    realtime_server.script(
        ScriptedResponse(text="Sunny.", audio=tone(300)),
        ScriptedResponse(text="Rainy.", audio=tone(900)),
    )
    device = await bridged(hass, client)
    await device.send_audio(chirp(400) + bytes(32000))
    await wait_tts(device, "stop")
    first_stt = next(i for i, m in enumerate(device.messages) if m["type"] == "stt")
    first_sentence = next(
        i for i, m in enumerate(device.messages) if m.get("state") == "sentence_start"
    )
    assert first_stt < first_sentence
    assert device.chat_message == ("assistant", "Sunny.")
    # The next transcript comes late: after the reply (transcription runs on its own).
    realtime_server.user_transcript = "and tomorrow"
    realtime_server.transcript_after_response = True
    start = len(device.messages)
    # listen start after the play-out
    await wait_until(lambda: device.mic_active, device, timeout=10)
    await device.send_audio(chirp(400) + bytes(32000))
    # The transcript follows `response.done` at once, while the reply still plays out.
    await wait_tts(device, "stop", start)
    assert device.user_lines == ["what is the weather"]
    assert device.chat_message == ("assistant", "Rainy.")
    await disconnect(hass, device, device_state(hass, device))


async def test_last_sentence_shows_when_its_audio_plays(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """The reply's last sentence has nothing after its full stop until the reply ends; it
    is shown when its audio plays, not when the service finally ends the response."""
    hold = asyncio.Event()
    realtime_server.script(
        ScriptedResponse(
            text="The first half is here. The second half follows now.",
            audio=tone(1200),
            chunks=4,
            hold=hold,
        )
    )
    device = await bridged(hass, client)
    await device.send_audio(chirp(400) + bytes(32000))
    async with asyncio.timeout(10):
        await device.wait_for_message(
            lambda m: m.get("state") == "sentence_start" and m["text"].startswith("The second")
        )
    assert not hold.is_set()
    assert device.assistant_lines == ["The first half is here.", "The second half follows now."]
    hold.set()
    await wait_tts(device, "stop")
    assert device.assistant_lines == ["The first half is here.", "The second half follows now."]
    await disconnect(hass, device, device_state(hass, device))


@pytest.mark.parametrize("firmware", ["2.1.0", "2.0.5-custom", "2.2.2", "unknown"])
async def test_old_firmware_hears_the_whole_reply(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer, firmware: str
) -> None:
    """Before v2.2.2 `tts stop` clears the device's queue: it comes only after the play-out."""
    realtime_server.script(ScriptedResponse(text="Every word counts.", audio=tone(1200)))
    device = await bridged(hass, client, firmware_version=firmware)
    await say(device)
    await wait_tts(device, "stop")
    assert device.downlink_outcomes() == {"played": 20}
    assert device.playback.cut_at_stop == 0
    await disconnect(hass, device, device_state(hass, device))


async def test_glyph_push_is_declined(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """No font bundle to take glyphs from: no `glyph_push` payload (docs/glyph-push.md §5),
    the text still goes to the device for its installed font."""
    realtime_server.script(ScriptedResponse(text="𠮷野家 is open.", audio=tone(300)))
    device = await bridged(hass, client, glyph_push=True)
    await say(device)
    await wait_tts(device, "stop")
    texts = [m for m in device.messages if m["type"] in ("tts", "stt") and "text" in m]
    assert texts
    assert all("glyph_push" not in m for m in texts)
    assert device.assistant_lines == ["𠮷野家 is open."]
    await disconnect(hass, device, device_state(hass, device))


# --- issue 18, item 9: `listen detect` is bounded -------------------------------------------


async def test_detect_text_is_capped_and_rate_limited(
    hass: HomeAssistant,
    client: TestClient,
    realtime_server: RealtimeServer,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each `detect` is a billed response: its text is capped and its rate per device bounded."""
    realtime_server.script(*(ScriptedResponse(text="Ok.", audio=tone(60)) for _ in range(20)))
    device = await bridged(hass, client)
    state = device_state(hass, device)
    await send_typed_detect(device, "x" * 5000)
    await wait_until(lambda: len(user_texts(realtime_server)) == 1, realtime_server)
    assert 0 < len(user_texts(realtime_server)[0]) <= 300
    for index in range(15):
        await device.send_raw_text(
            f'{{"session_id":"{device.session_id}","type":"listen","state":"detect",'
            f'"text":"question {index}"}}'
        )
    await asyncio.sleep(0.5)
    sent = user_texts(realtime_server)
    assert 2 <= len(sent) <= 6
    assert state.errors["detect_rate"] >= 1
    assert sum("too many listen detect" in r.getMessage() for r in caplog.records) == 1
    # Once the window has passed, a request is answered again.
    monkeypatch.setattr(bridge_wake, "DETECT_WINDOW", 0.2)
    await asyncio.sleep(0.3)
    await send_typed_detect(device, "one more")
    await wait_until(lambda: user_texts(realtime_server)[-1:] == ["one more"], realtime_server)
    await disconnect(hass, device, state)
