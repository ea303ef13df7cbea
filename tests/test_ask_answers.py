"""`ask` on the Realtime path finds the answer by its utterance (issue 28 item 8).

The answer is the transcript of an utterance that began after the question was played, matched
by its input item: a late transcript of an earlier turn is not it (the service transcribes
asynchronously, 0.4-1 s after the commit), a failed transcription is no answer, and without
transcription the question is refused up front instead of timing out.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

from aiohttp.test_utils import TestClient
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
import pytest

from custom_components.openai_realtime_voice.bridge import RealtimeEngine
from custom_components.openai_realtime_voice.const import (
    CONF_TRANSCRIPTION_MODEL,
    DOMAIN,
    TRANSCRIPTION_OFF,
)
from realtime_server import RealtimeServer, ScriptedResponse, tone
from tests.agent_helpers import set_settings
from tests.bridge_helpers import bridge_of, bridged, device_state, disconnect, loud, wait_tts
from tests.device_helpers import device_client, release_devices, wait_until

pytestmark = pytest.mark.usefixtures("lights")


@pytest.fixture
async def client(
    hass: HomeAssistant,
    hass_client_no_auth: Any,
    realtime_server: RealtimeServer,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncGenerator[TestClient]:
    """A loaded entry and a client for devices."""
    monkeypatch.setattr(RealtimeEngine, "retry_delays", (0.05,))
    http = await device_client(hass, hass_client_no_auth, realtime_server)
    yield http
    await release_devices(hass, http)


def _set_options(hass: HomeAssistant, **options: Any) -> None:
    entry = hass.config_entries.async_entries(DOMAIN)[0]
    set_settings(hass, entry, **options)


async def _speak(device: Any) -> None:
    await wait_until(lambda: device.mic_active, device)  # after the play-out
    await device.send_audio(loud(300) + bytes(32000))


async def test_late_transcript_of_an_earlier_turn_is_not_the_answer(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """The transcript of the turn before the question arrives while it waits: not the answer."""
    realtime_server.commit_transcript_delay = 1.5
    realtime_server.user_transcript = "tell me a joke"
    realtime_server.script(ScriptedResponse(text="Later.", audio=tone(120)))
    device = await bridged(hass, client)
    state = device_state(hass, device)
    await device.start_listening()
    await _speak(device)  # the earlier turn; its transcript comes 1.5 s after its commit
    await realtime_server.wait_for("input_audio_buffer.append")
    await wait_until(lambda: realtime_server.responses_done >= 1, realtime_server)
    await wait_tts(device, "stop")
    realtime_server.script(ScriptedResponse(text="Which room?", audio=tone(120)))
    start = len(device.messages)
    asking = hass.async_create_task(
        bridge_of(hass, state).async_ask("Which room?", answer_timeout=20)
    )
    await wait_tts(device, "stop", start)
    realtime_server.user_transcript = "the kitchen"
    await _speak(device)
    assert await asking == {"answered": True, "transcript": "the kitchen"}
    await disconnect(hass, device, state)


async def test_failed_transcription_is_no_answer(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """`...input_audio_transcription.failed`: not answered, at once rather than at the timeout."""
    realtime_server.transcription_fails = True
    realtime_server.user_transcript = "mumble"
    device = await bridged(hass, client)
    state = device_state(hass, device)
    realtime_server.script(ScriptedResponse(text="Which room?", audio=tone(120)))
    asking = hass.async_create_task(
        bridge_of(hass, state).async_ask("Which room?", answer_timeout=60)
    )
    await wait_tts(device, "stop")
    await _speak(device)
    async with asyncio.timeout(10):
        assert await asking == {"answered": False}
    await disconnect(hass, device, state)


async def test_ask_without_transcription_is_refused_up_front(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """Transcription off: the question is refused with a clear error, not asked and timed out."""
    _set_options(hass, **{CONF_TRANSCRIPTION_MODEL: TRANSCRIPTION_OFF})
    device = await bridged(hass, client)
    state = device_state(hass, device)
    creates = len(realtime_server.of_type("response.create"))
    with pytest.raises(HomeAssistantError) as err:
        await bridge_of(hass, state).async_ask("Which room?", answer_timeout=60)
    assert err.value.translation_key == "ask_needs_transcription"
    assert len(realtime_server.of_type("response.create")) == creates
    await disconnect(hass, device, state)
