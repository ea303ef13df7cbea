"""A device's access-granting calls wait for the user, as typed Assist requests do.

The services API parks `lock.unlock`, `cover.open_cover` on a garage door and the like until
the same call comes back with `confirm: true` after a new user turn. On the device path the
model's tools run inside the device conversation's chat log, with the user's spoken turn
recorded before them, so a model that confirms in the same breath is told to keep waiting.
End to end: a simulated device, real Home Assistant with demo locks and covers, a scripted model.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
import json
from typing import Any

from aiohttp.test_utils import TestClient
from homeassistant.components import conversation
from homeassistant.components.homeassistant.exposed_entities import async_expose_entity
from homeassistant.core import HomeAssistant
from homeassistant.helpers import chat_session, llm
from homeassistant.setup import async_setup_component
import pytest

from custom_components.openai_realtime_voice.bridge.turns import UNTRANSCRIBED
from custom_components.openai_realtime_voice.const import (
    CONF_LLM_HASS_API,
    CONF_SERVICES_ALLOWLIST,
    CONF_TRANSCRIPTION_MODEL,
    DEFAULT_SERVICES_ALLOWLIST,
    TRANSCRIPTION_OFF,
)
from custom_components.openai_realtime_voice.services_api import API_ID
from custom_components.openai_realtime_voice.xiaozhi import ListenMode
from realtime_server import RealtimeServer, ScriptedCall, ScriptedResponse, tone
from tests.bridge_helpers import (
    bridge_of,
    bridged,
    device_state,
    disconnect,
    loud,
    tts_states,
    wait_tts,
)
from tests.device_helpers import release_devices, setup_entry, wait_until

pytestmark = pytest.mark.usefixtures("demo_home")

# The merged API puts the services API's tools in its name space.
UNLOCK = "home-assistant-services__lock__unlock"
OPEN_COVER = "home-assistant-services__cover__open_cover"


@pytest.fixture
def entry_options() -> dict[str, Any]:
    """Extra entry options of a test (overridden by parametrisation)."""
    return {}


@pytest.fixture
async def client(
    hass: HomeAssistant,
    hass_client_no_auth: Any,
    realtime_server: RealtimeServer,
    entry_options: dict[str, Any],
) -> AsyncIterator[TestClient]:
    """A loaded entry offering the services API (locks allowed) and a client for devices.

    Devices still connected at the end are disconnected before the Realtime server stops.
    """
    assert await async_setup_component(hass, "http", {"http": {"login_attempts_threshold": 1000}})
    await setup_entry(
        hass,
        realtime_server,
        {
            CONF_LLM_HASS_API: [llm.LLM_API_ASSIST, API_ID],
            CONF_SERVICES_ALLOWLIST: [*DEFAULT_SERVICES_ALLOWLIST, "lock"],
            **entry_options,
        },
    )
    http: TestClient = await hass_client_no_auth()
    hass.config.internal_url = str(http.make_url("/"))
    for entity_id in ("lock.front_door", "cover.garage_door"):
        async_expose_entity(hass, conversation.DOMAIN, entity_id, True)
    yield http
    await release_devices(hass, http)


def _outputs(server: RealtimeServer) -> list[dict[str, Any]]:
    """The tool results the bridge sent back to the model, in order."""
    return [
        json.loads(event["item"]["output"])
        for event in server.of_type("conversation.item.create")
        if event["item"]["type"] == "function_call_output"
    ]


async def _speak(device: Any, server: RealtimeServer, responses: int) -> None:
    """One spoken user turn (a loud tone, then silence ends it); wait for the model's answers."""
    await device.start_listening()
    await device.send_audio(loud(500) + bytes(32000))
    await wait_until(lambda: server.responses_done >= responses, server)
    await wait_tts(device, "stop")


@pytest.mark.parametrize(
    "case",
    [
        (UNLOCK, "lock.front_door", "locked", "unlocked"),
        (OPEN_COVER, "cover.garage_door", "closed", "open"),
    ],
    ids=["unlock", "garage"],
)
async def test_model_cannot_confirm_its_own_request(
    hass: HomeAssistant,
    client: TestClient,
    realtime_server: RealtimeServer,
    case: tuple[str, str, str, str],
) -> None:
    """`confirm: true` straight after `confirmation_required` is refused; after a turn, it runs."""
    tool, entity_id, before, after = case
    arguments = {"entity_id": entity_id}
    realtime_server.user_transcript = "open up please"
    asked = json.dumps(arguments)
    confirmed = json.dumps({**arguments, "confirm": True})
    realtime_server.script(
        ScriptedResponse(calls=[ScriptedCall(tool, asked)]),
        # A misled model confirms in the same breath, without the user saying anything.
        ScriptedResponse(calls=[ScriptedCall(tool, confirmed)]),
        ScriptedResponse(text="Shall I?", audio=tone(120)),
    )
    device = await bridged(hass, client)
    state = device_state(hass, device)
    await _speak(device, realtime_server, 3)
    await hass.async_block_till_done()

    outputs = _outputs(realtime_server)
    assert [output["data"].get("status") for output in outputs] == [
        "confirmation_required",
        "confirmation_required",
    ]
    assert hass.states.get(entity_id).state == before

    # The user answers: a new turn, after which the same confirmed call runs.
    realtime_server.user_transcript = "yes"
    realtime_server.script(
        ScriptedResponse(calls=[ScriptedCall(tool, confirmed)]),
        ScriptedResponse(text="Done.", audio=tone(120)),
    )
    await _speak(device, realtime_server, 5)
    await hass.async_block_till_done()
    outputs = _outputs(realtime_server)
    assert len(outputs) == 3
    assert outputs[2]["data"]["success"] is True, outputs[2]
    await wait_until(lambda: hass.states.get(entity_id).state == after, hass)

    # The turns and the calls are in the device conversation's chat log, user turns first.
    bridge = bridge_of(hass, state)
    with (
        chat_session.async_get_chat_session(hass, bridge.turns.conversation_id) as session,
        conversation.async_get_chat_log(hass, session) as chat_log,
    ):
        users = [c.content for c in chat_log.content if isinstance(c, conversation.UserContent)]
        assert users == ["open up please", "yes"]
        roles = [content.role for content in chat_log.content]
        assert roles.index("user") < roles.index("tool_result")
    await disconnect(hass, device, state)


@pytest.mark.parametrize("entry_options", [{CONF_TRANSCRIPTION_MODEL: TRANSCRIPTION_OFF}])
async def test_untranscribed_turn_counts_as_a_turn(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """With transcription off, a spoken turn is recorded as a marker and still counts once."""
    asked = json.dumps({"entity_id": "lock.front_door"})
    confirmed = json.dumps({"entity_id": "lock.front_door", "confirm": True})
    realtime_server.script(
        ScriptedResponse(calls=[ScriptedCall(UNLOCK, asked)]),
        ScriptedResponse(calls=[ScriptedCall(UNLOCK, confirmed)]),
        ScriptedResponse(text="Shall I?", audio=tone(120)),
    )
    device = await bridged(hass, client)
    state = device_state(hass, device)
    await _speak(device, realtime_server, 3)
    assert hass.states.get("lock.front_door").state == "locked"

    realtime_server.script(
        ScriptedResponse(calls=[ScriptedCall(UNLOCK, confirmed)]),
        ScriptedResponse(text="Done.", audio=tone(120)),
    )
    await _speak(device, realtime_server, 5)
    await wait_until(lambda: hass.states.get("lock.front_door").state == "unlocked", hass)
    bridge = bridge_of(hass, state)
    with (
        chat_session.async_get_chat_session(hass, bridge.turns.conversation_id) as session,
        conversation.async_get_chat_log(hass, session) as chat_log,
    ):
        users = [c for c in chat_log.content if isinstance(c, conversation.UserContent)]
        assert len(users) == 2
        assert all(user.content for user in users)  # a marker, not an empty turn
    await disconnect(hass, device, state)


async def test_tools_do_not_wait_for_a_late_transcript(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """Tools run at once; a transcript arriving later takes the turn's place in the chat log.

    The service transcribes 0.4-1 s after the commit (issue 28): the user's turn is recorded as
    a marker before the tools run (it counts for confirmations) and gets its words later.
    """
    realtime_server.commit_transcript_delay = 1.0
    realtime_server.user_transcript = "unlock the front door"
    realtime_server.script(
        ScriptedResponse(
            calls=[ScriptedCall(UNLOCK, json.dumps({"entity_id": "lock.front_door"}))]
        ),
        ScriptedResponse(text="Shall I?", audio=tone(120)),
    )
    device = await bridged(hass, client)
    state = device_state(hass, device)
    bridge = bridge_of(hass, state)
    user_turns: list[str] = []

    def chat_log_users() -> list[str]:
        with (
            chat_session.async_get_chat_session(hass, bridge.turns.conversation_id) as session,
            conversation.async_get_chat_log(hass, session) as chat_log,
        ):
            return [
                str(c.content) for c in chat_log.content if isinstance(c, conversation.UserContent)
            ]

    async def output_sent(event: dict[str, Any]) -> None:
        if event["item"]["type"] == "function_call_output":
            user_turns.extend(chat_log_users())

    realtime_server.hooks["conversation.item.create"] = output_sent
    await _speak(device, realtime_server, 2)
    assert _outputs(realtime_server)[0]["data"]["status"] == "confirmation_required"
    # The tool ran before the transcript came: the turn was recorded as the marker.
    assert user_turns == [UNTRANSCRIBED]
    await wait_until(lambda: chat_log_users() == ["unlock the front door"], hass)
    with (
        chat_session.async_get_chat_session(hass, bridge.turns.conversation_id) as session,
        conversation.async_get_chat_log(hass, session) as chat_log,
    ):
        roles = [content.role for content in chat_log.content]
        assert roles[:4] == ["system", "user", "assistant", "tool_result"]
    await disconnect(hass, device, state)


async def test_a_turn_spoken_before_the_question_does_not_confirm(
    hass: HomeAssistant,
    client: TestClient,
    realtime_server: RealtimeServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Realtime listening: a "thanks" committed before the question played is no answer to it.

    The model asks to unlock; while its tool call waits, the user (still listening, as a
    realtime-mode board does) says "thanks". That turn is new to the next reply, but it started
    before any question was played: only a turn that starts after a reply that followed the
    request has played to its end may confirm.
    """
    realtime_server.transcript_after_response = True
    realtime_server.transcript_delay = 1.0
    asked = json.dumps({"entity_id": "lock.front_door"})
    confirmed = json.dumps({"entity_id": "lock.front_door", "confirm": True})
    realtime_server.user_transcript = "unlock the front door"
    realtime_server.script(
        ScriptedResponse(calls=[ScriptedCall(UNLOCK, asked)]),
        ScriptedResponse(calls=[ScriptedCall(UNLOCK, confirmed)]),
        ScriptedResponse(text="Shall I unlock the front door?", audio=tone(300)),
    )
    device = await bridged(hass, client)
    state = device_state(hass, device)
    await device.start_listening(ListenMode.REALTIME)
    await device.send_audio(loud(500) + bytes(32000))
    await wait_until(lambda: realtime_server.responses_done >= 1, realtime_server)
    realtime_server.user_transcript = "thanks"
    await device.send_audio(loud(300) + bytes(32000))
    await wait_until(lambda: len(_outputs(realtime_server)) >= 2, realtime_server)
    await wait_until(lambda: realtime_server.responses_done >= 3, realtime_server)
    await hass.async_block_till_done()
    assert [output["data"].get("status") for output in _outputs(realtime_server)] == [
        "confirmation_required",
        "confirmation_required",
    ]
    assert hass.states.get("lock.front_door").state == "locked"  # type: ignore[union-attr]

    # Once the question has played, the user's answer starts after it and confirms.
    question = "sentence_start:Shall I unlock the front door?"
    await wait_until(lambda: question in tts_states(device), device, timeout=15)
    asked_at = next(
        index
        for index, message in enumerate(device.messages)
        if message["type"] == "tts" and message.get("text") == question.partition(":")[2]
    )
    await wait_tts(device, "stop", asked_at)
    realtime_server.user_transcript = "yes"
    realtime_server.script(
        ScriptedResponse(calls=[ScriptedCall(UNLOCK, confirmed)]),
        ScriptedResponse(text="Done.", audio=tone(120)),
    )
    done = realtime_server.responses_done
    await device.send_audio(loud(500) + bytes(32000))
    await wait_until(lambda: realtime_server.responses_done >= done + 2, realtime_server)
    await wait_until(lambda: hass.states.get("lock.front_door").state == "unlocked", hass)  # type: ignore[union-attr]
    assert _outputs(realtime_server)[-1]["data"]["success"] is True
    await disconnect(hass, device, state)
