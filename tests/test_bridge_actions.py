"""`Actions`: speak, ask and converse on a connected device (the actions and the satellite)."""

from __future__ import annotations

import asyncio

from aiohttp.test_utils import TestClient
from homeassistant.core import HomeAssistant
import pytest

from custom_components.openai_realtime_voice.bridge import BridgeBusyError
from custom_components.openai_realtime_voice.realtime import RealtimeSessionClosed
from realtime_server import RealtimeServer, ScriptedResponse, tone
from tests.bridge_helpers import bridge_of, bridged, device_state, disconnect, tts_states
from tests.device_helpers import wait_until

pytestmark = pytest.mark.usefixtures("lights")


async def test_speak_returns_once_the_line_was_heard(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """A verbatim line is spoken out of band, and `async_speak` returns after `tts stop`."""
    device = await bridged(hass, client)
    state = device_state(hass, device)
    bridge = bridge_of(hass, state)
    assert bridge is not None
    realtime_server.script(ScriptedResponse(text="Dinner is ready.", audio=tone(300)))
    await bridge.actions.async_speak(message="Dinner is ready", interrupt=True)
    create = realtime_server.of_type("response.create")[-1]
    assert create["response"]["conversation"] == "none"
    assert "Dinner is ready" in create["response"]["instructions"]
    await wait_until(lambda: tts_states(device)[-1:] == ["stop"], device)
    assert "sentence_start:Dinner is ready." in tts_states(device)
    await disconnect(hass, device, state)


async def test_a_second_question_is_refused_and_closing_fails_the_first(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """One question at a time; the device leaving fails the waiting one at once."""
    device = await bridged(hass, client)
    state = device_state(hass, device)
    bridge = bridge_of(hass, state)
    assert bridge is not None
    actions = bridge.actions
    realtime_server.script(ScriptedResponse(text="Are you there?", audio=tone(120)))
    first = hass.async_create_task(actions.async_ask("Are you there?", answer_timeout=60))
    await wait_until(lambda: actions.asking, realtime_server)
    with pytest.raises(BridgeBusyError):
        await actions.async_ask("Hello?", answer_timeout=60)
    actions.close("the device disconnected")
    with pytest.raises(RealtimeSessionClosed):
        async with asyncio.timeout(5):
            await first
    assert not actions.asking
    await disconnect(hass, device, state)
