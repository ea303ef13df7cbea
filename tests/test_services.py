"""Actions: speak, ask and converse on simulated devices, with the scripted Realtime model."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
import json
from typing import Any

from aiohttp.test_utils import TestClient
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import (
    device_registry as dr,
    entity_registry as er,
    selector,
    service as service_helper,
)
import pytest

from custom_components.openai_realtime_voice.const import DOMAIN
from realtime_server import RealtimeServer, ScriptedCall, ScriptedResponse, tone
from simulator.device import DeviceSimulator
from simulator.speech import synthesize
from tests.bridge_helpers import bridge_of, bridged, device_state, say, tts_states, wait_tts
from tests.device_helpers import device_client, pair, release_devices, simulator, wait_until


@pytest.fixture
async def client(
    hass: HomeAssistant, hass_client_no_auth: Any, realtime_server: RealtimeServer, lights: None
) -> AsyncIterator[TestClient]:
    """A loaded entry with lights, and an HTTP client for the simulated devices.

    Devices still connected at the end are disconnected before the Realtime server stops.
    """
    http = await device_client(hass, hass_client_no_auth, realtime_server)
    yield http
    await release_devices(hass, http)


async def _two_devices(
    hass: HomeAssistant, client: TestClient
) -> tuple[DeviceSimulator, DeviceSimulator]:
    """Two paired devices with open channels."""
    devices = (
        simulator(client, mac="aa:bb:cc:00:00:01"),
        simulator(client, mac="aa:bb:cc:00:00:02"),
    )
    for device in devices:
        await pair(hass, device)
    for device in devices:
        await device.open_audio_channel()
        state = device_state(hass, device)
        await wait_until(
            lambda state=state: (
                bridge_of(hass, state) is not None and bridge_of(hass, state).client is not None
            ),
            state,
        )
        await wait_until(lambda state=state: bridge_of(hass, state).client.connected, state)
    return devices


def _instructions(server: RealtimeServer) -> str:
    """The session's instructions as last set by a session.update."""
    updates = [
        e["session"] for e in server.of_type("session.update") if "instructions" in e["session"]
    ]
    return str(updates[-1]["instructions"])


def _device_id(hass: HomeAssistant, device: DeviceSimulator) -> str:
    entry = hass.config_entries.async_entries(DOMAIN)[0]
    found = dr.async_get(hass).async_get_device_by_identifier((DOMAIN, device.mac), entry.entry_id)
    assert found is not None
    return found.id


def _satellite(hass: HomeAssistant, device: DeviceSimulator) -> str:
    entities = er.async_entries_for_device(er.async_get(hass), _device_id(hass, device))
    return next(e.entity_id for e in entities if e.domain == "assist_satellite")


async def test_speak_sends_no_conversation_and_no_tools(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """An announcement bills no conversation and offers no tool; a tool call it makes anyway
    is not run and starts no reply in the conversation (issue 28 item 7)."""
    kitchen, _ = await _two_devices(hass, client)
    creates_before = len(realtime_server.of_type("response.create"))
    realtime_server.script(
        ScriptedResponse(
            text="The door.",
            audio=tone(300),
            calls=[ScriptedCall("device__self_audio_speaker_set_volume", '{"volume": 5}')],
        )
    )
    await hass.services.async_call(
        DOMAIN,
        "speak",
        {"device_id": _device_id(hass, kitchen), "message": "The door."},
        blocking=True,
    )
    await wait_tts(kitchen, "stop")
    creates = realtime_server.of_type("response.create")[creates_before:]
    assert len(creates) == 1  # no reply to a tool output followed
    response = creates[0]["response"]
    assert response["input"] == []  # the conversation is not billed as input
    assert response["tools"] == []
    assert response["tool_choice"] == "none"
    outputs = [
        event
        for event in realtime_server.of_type("conversation.item.create")
        if event["item"]["type"] == "function_call_output"
    ]
    assert outputs == []


async def test_speak_plays_one_out_of_band_response_on_the_right_device(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """speak: one out-of-band response with the call's instructions, on the target only."""
    kitchen, bedroom = await _two_devices(hass, client)
    creates_before = len(realtime_server.of_type("response.create"))
    realtime_server.script(ScriptedResponse(text="Someone is at the door.", audio=tone(300)))
    await hass.services.async_call(
        DOMAIN,
        "speak",
        {
            "device_id": _device_id(hass, kitchen),
            "message": "Someone is at the door.",
            "instructions": "Speak calmly.",
        },
        blocking=True,
    )
    creates = realtime_server.of_type("response.create")[creates_before:]
    assert len(creates) == 1
    response = creates[0]["response"]
    assert response["conversation"] == "none"
    assert "Someone is at the door." in response["instructions"]
    assert "Speak calmly." in response["instructions"]
    await wait_tts(kitchen, "stop")
    assert tts_states(kitchen) == ["start", "sentence_start:Someone is at the door.", "stop"]
    assert kitchen.downlink_outcomes() == {"played": 5}
    assert tts_states(bedroom) == []


async def test_speak_waits_for_the_reply_in_progress(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """A speak during a reply is played after it, without cutting it off."""
    device = await bridged(hass, client)
    hold = asyncio.Event()
    realtime_server.script(
        ScriptedResponse(text="Here is a long story.", audio=tone(600), hold=hold),
        ScriptedResponse(text="Dinner is ready.", audio=tone(180)),
    )
    await say(device)
    await wait_tts(device, "start")
    await wait_until(lambda: bool(device.playback.downlink), device)
    speak = hass.async_create_task(
        hass.services.async_call(
            DOMAIN,
            "speak",
            {"entity_id": _satellite(hass, device), "prompt": "Say that dinner is ready."},
            blocking=True,
        )
    )
    await asyncio.sleep(0.1)
    assert not speak.done()
    assert not realtime_server.of_type("response.cancel")
    hold.set()
    await speak
    await wait_tts(device, "stop")
    assert tts_states(device) == [
        "start",
        "sentence_start:Here is a long story.",
        "sentence_start:Dinner is ready.",
        "stop",
    ]
    assert not realtime_server.of_type("response.cancel")
    assert not realtime_server.of_type("conversation.item.truncate")


async def test_ask_returns_the_answer_and_the_matched_option(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """ask: the question is spoken, the spoken answer transcribed and matched, not answered."""
    device = await bridged(hass, client)
    realtime_server.user_transcript = "yes please, all of them"
    realtime_server.script(
        ScriptedResponse(text="Shall I turn off the downstairs lights?", audio=tone(240)),
        ScriptedResponse(text=json.dumps({"option": "yes", "confidence": 0.93})),
    )
    answer = await synthesize("yes please, all of them", 16000)

    async def reply() -> None:
        await wait_tts(device, "stop")
        # listen start once the question played out
        await wait_until(lambda: device.mic_active, device)
        await device.send_audio(answer + bytes(32000))

    replying = hass.async_create_task(reply())
    result = await hass.services.async_call(
        DOMAIN,
        "ask",
        {
            "device_id": _device_id(hass, device),
            "question": "Shall I turn off the downstairs lights?",
            "options": ["yes", "no"],
            "timeout": 20,
        },
        blocking=True,
        return_response=True,
    )
    await replying
    assert result == {
        "answered": True,
        "transcript": "yes please, all of them",
        "option": "yes",
        "confidence": 0.93,
    }
    updates = [event["session"] for event in realtime_server.of_type("session.update")]
    assert any(
        u.get("audio", {}).get("input", {}).get("turn_detection", {}).get("create_response")
        is False
        for u in updates
    )
    # The answer was not answered by the model; the matching ran as a silent text response.
    creates = realtime_server.of_type("response.create")
    assert creates[-1]["response"]["output_modalities"] == ["text"]
    assert creates[-1]["response"]["conversation"] == "none"
    assert realtime_server.responses_done == 2
    # Turn detection creates responses again afterwards.
    assert updates[-1]["audio"]["input"]["turn_detection"]["create_response"] is True


async def test_ask_times_out_cleanly(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """No answer within the timeout: answered false, and the device can be asked again."""
    device = await bridged(hass, client)
    realtime_server.script(ScriptedResponse(text="Are you there?", audio=tone(120)))
    result = await hass.services.async_call(
        DOMAIN,
        "ask",
        {"device_id": _device_id(hass, device), "question": "Are you there?", "timeout": 3},
        blocking=True,
        return_response=True,
    )
    assert result == {"answered": False}
    assert not bridge_of(hass, device_state(hass, device)).actions.asking


async def test_converse_adds_instructions_for_the_next_answer_only(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """converse: extra instructions reach the session until its next answer is done."""
    device = await bridged(hass, client)
    base = _instructions(realtime_server)
    realtime_server.user_transcript = "yes"
    realtime_server.script(
        ScriptedResponse(text="Shall we get the house ready?", audio=tone(180)),
        ScriptedResponse(text="Good night then.", audio=tone(180)),
    )
    await hass.services.async_call(
        DOMAIN,
        "converse",
        {
            "entity_id": _satellite(hass, device),
            "message": "Shall we get the house ready?",
            "instructions": "Help the user get the house ready for the night.",
        },
        blocking=True,
    )
    with_extra = _instructions(realtime_server)
    assert with_extra.startswith(base)
    assert with_extra.endswith("Help the user get the house ready for the night.")
    await wait_until(lambda: device.mic_active, device)  # listen start once the question played out
    await device.send_audio(await synthesize("yes", 16000) + bytes(32000))
    await wait_until(lambda: realtime_server.responses_done >= 2, realtime_server)
    await wait_until(lambda: _instructions(realtime_server) == base, realtime_server)


async def test_converse_without_instructions_opens_a_conversation(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """converse: `instructions` are optional; without them the session keeps its own."""
    device = await bridged(hass, client)
    base = _instructions(realtime_server)
    realtime_server.script(ScriptedResponse(text="What can I do?", audio=tone(180)))
    await hass.services.async_call(
        DOMAIN,
        "converse",
        {"entity_id": _satellite(hass, device), "message": "What can I do?"},
        blocking=True,
    )
    await wait_until(lambda: device.state.value == "listening", device)
    assert _instructions(realtime_server) == base
    assert "What can I do?" in realtime_server.response_params[-1]["instructions"]


async def test_actions_refuse_unknown_and_offline_targets(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """Unknown targets, offline devices and bad arguments give translated errors."""
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(
            DOMAIN, "speak", {"entity_id": "light.kitchen_lights", "message": "hi"}, blocking=True
        )
    assert err.value.translation_key == "not_a_voice_device"
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(DOMAIN, "speak", {"message": "hi"}, blocking=True)
    assert err.value.translation_key == "no_target"

    device, other = await _two_devices(hass, client)
    device_id = _device_id(hass, device)
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(
            DOMAIN, "speak", {"device_id": device_id, "message": "a", "prompt": "b"}, blocking=True
        )
    assert err.value.translation_key == "message_or_prompt"
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(
            DOMAIN,
            "ask",
            {"device_id": [device_id, _device_id(hass, other)], "question": "Hm?"},
            blocking=True,
            return_response=True,
        )
    assert err.value.translation_key == "one_device"

    state = device_state(hass, device)
    await device.close()
    await wait_until(lambda: bridge_of(hass, state) is None and not state.connected, state)
    with pytest.raises(HomeAssistantError) as err:
        await hass.services.async_call(
            DOMAIN, "speak", {"device_id": device_id, "message": "hi"}, blocking=True
        )
    assert err.value.translation_key == "device_idle"


async def test_actions_take_devices_from_a_device_selector_field(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """hassfest refuses device filters on a target: the actions' target picks satellites, and a
    `device_id` field's device selector lists the voice devices. What that selector returns is
    what the action takes."""
    descriptions = await service_helper.async_get_all_descriptions(hass)
    kitchen, _ = await _two_devices(hass, client)
    for name, multiple in (("speak", True), ("ask", False), ("converse", True)):
        description = descriptions[DOMAIN][name]
        assert "device" not in description["target"], name
        field = selector.selector(description["fields"]["device_id"]["selector"])
        assert isinstance(field, selector.DeviceSelector)
        assert field.config["multiple"] is multiple, name
        assert field.config["filter"] == [{"integration": DOMAIN}]
    picked = selector.selector(descriptions[DOMAIN]["speak"]["fields"]["device_id"]["selector"])(
        [_device_id(hass, kitchen)]
    )
    realtime_server.script(ScriptedResponse(text="Dinner is ready.", audio=tone(300)))
    await hass.services.async_call(
        DOMAIN, "speak", {"device_id": picked, "message": "Dinner is ready."}, blocking=True
    )
    await wait_tts(kitchen, "stop")
    assert "sentence_start:Dinner is ready." in tts_states(kitchen)
