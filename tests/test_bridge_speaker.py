"""Barge-in on the device path against the service's semantics (issue 19 items 2 and 5).

A paired simulated device, real Home Assistant and the scripted Realtime server, which
cancels only default-conversation responses on speech and refuses to truncate out-of-band
items, as the service does.
"""

from __future__ import annotations

import asyncio

from aiohttp.test_utils import TestClient
from homeassistant.core import HomeAssistant
import pytest

from custom_components.openai_realtime_voice.xiaozhi import ListenMode
from realtime_server import RealtimeServer, ScriptedCall, ScriptedResponse, tone
from tests.agent_helpers import TURN_ON
from tests.bridge_helpers import bridge_of, bridged, device_state, disconnect, loud, say, wait_tts
from tests.device_helpers import wait_until

pytestmark = pytest.mark.usefixtures("lights")


async def test_barge_in_during_an_out_of_band_reply_cancels_it(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """The user talks over `say` (out of band): the bridge cancels it, never truncates it."""
    realtime_server.script(
        ScriptedResponse(text="An announcement.", audio=tone(3000), chunks=10, hold=asyncio.Event())
    )
    device = await bridged(hass, client)
    state = device_state(hass, device)
    await device.start_listening(ListenMode.REALTIME)
    bridge = bridge_of(hass, state)
    say = hass.async_create_task(bridge.async_say("An announcement."))
    await wait_until(lambda: device.downlink_outcomes().get("played", 0) >= 6, device)
    start = len(device.messages)
    await device.send_audio(loud(300))
    await wait_tts(device, "stop", start)
    cancel = await asyncio.wait_for(realtime_server.wait_for("response.cancel"), 3)
    created = realtime_server.response_params[0]
    assert created["conversation"] == "none"
    assert cancel["response_id"]
    await asyncio.wait_for(say, 3)  # the announcement ended: its caller does not hang
    assert not realtime_server.of_type("conversation.item.truncate")
    await wait_until(lambda: realtime_server.responses_done >= 1, realtime_server)
    await disconnect(hass, device, state)


async def test_barge_in_after_a_tool_follow_up_truncates_the_reply_playing(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """Reply A still plays while its tool follow-up B is generated: A is cut where heard."""
    realtime_server.script(
        ScriptedResponse(
            text="Let me check.",
            audio=tone(3000),
            chunks=10,
            calls=[ScriptedCall(TURN_ON, '{"name": "Kitchen Lights"}')],
        ),
        ScriptedResponse(text="It is on.", audio=tone(1000), chunks=4, hold=asyncio.Event()),
    )
    device = await bridged(hass, client)
    state = device_state(hass, device)
    await say(device)
    await wait_until(lambda: len(realtime_server.response_params) >= 2, realtime_server)
    await wait_until(lambda: device.downlink_outcomes().get("played", 0) >= 6, device)
    first_item = next(iter(realtime_server.session.audio_ms))
    (follow_up,) = realtime_server.session.running  # B, held after its audio
    await device.abort()
    truncate = await asyncio.wait_for(realtime_server.wait_for("conversation.item.truncate"), 3)
    assert truncate["item_id"] == first_item
    assert 0 < truncate["audio_end_ms"] < 3000
    cancel = await asyncio.wait_for(realtime_server.wait_for("response.cancel"), 3)
    assert cancel["response_id"] == follow_up
    await wait_until(lambda: realtime_server.responses_done >= 2, realtime_server)
    await disconnect(hass, device, state)


async def test_late_transcripts_keep_their_turn_in_the_chat_log(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """Transcripts that arrive after their turn's reply are recorded in that turn (issue 19.6)."""
    from homeassistant.components import conversation
    from homeassistant.helpers import chat_session

    realtime_server.transcript_after_response = True
    realtime_server.transcript_delay = 0.5  # after the reply was recorded
    device = await bridged(hass, client)
    state = device_state(hass, device)
    bridge = bridge_of(hass, state)

    def recorded() -> list[tuple[str, str | None]]:
        with (
            chat_session.async_get_chat_session(hass, bridge.turns.conversation_id) as session,
            conversation.async_get_chat_log(hass, session) as chat_log,
        ):
            return [(c.role, c.content) for c in chat_log.content[1:]]

    for question, answer in (("first question", "First."), ("second question", "Second.")):
        realtime_server.user_transcript = question
        realtime_server.script(ScriptedResponse(text=answer, audio=tone(300)))
        start = len(device.messages)
        await say(device, 300)
        await wait_tts(device, "stop", start)
        await wait_until(lambda q=question: ("user", q) in recorded(), hass)
    await wait_until(lambda: realtime_server.responses_done >= 2, realtime_server)
    await hass.async_block_till_done()
    # Too late for the board's screen (the reply was on it), in time for the chat log.
    assert device.user_lines == []
    turns = recorded()
    assert turns == [
        ("user", "first question"),
        ("assistant", "First."),
        ("user", "second question"),
        ("assistant", "Second."),
    ]
    await disconnect(hass, device, state)
