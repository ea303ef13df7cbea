"""Sensors: the entry's token and cost totals after scripted turns, and per-device latency."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient
from homeassistant.components.sensor import (
    ATTR_STATE_CLASS,
    SensorDeviceClass,
    SensorStateClass,
)
from homeassistant.const import (
    ATTR_DEVICE_CLASS,
    ATTR_UNIT_OF_MEASUREMENT,
    STATE_UNKNOWN,
)
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr, entity_registry as er
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.openai_realtime_voice.const import DOMAIN
from realtime_server import RealtimeServer, ScriptedResponse, default_usage, tone
from realtime_server.discipline import TOKEN_USAGE
from tests.agent_helpers import ask_agent, set_settings
from tests.bridge_helpers import bridged, device_state, disconnect, loud, wait_tts
from tests.device_helpers import device_home, pair, simulator, wait_until

TOKEN_KEYS = (
    "text_input_tokens",
    "audio_input_tokens",
    "cached_input_tokens",
    "text_output_tokens",
    "audio_output_tokens",
)


def _usage(text_in: int, cached: int, audio_in: int, text_out: int, audio_out: int) -> Any:
    return {
        "input_token_details": {
            "text_tokens": text_in,
            "audio_tokens": audio_in,
            "cached_tokens_details": {"text_tokens": cached, "audio_tokens": 0},
        },
        "output_token_details": {"text_tokens": text_out, "audio_tokens": audio_out},
    }


def _entity_id(entity_registry: er.EntityRegistry, unique_id: str) -> str:
    entity_id = entity_registry.async_get_entity_id("sensor", DOMAIN, unique_id)
    assert entity_id is not None
    return entity_id


async def test_usage_sensors_follow_scripted_turns(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    realtime_server: RealtimeServer,
    entity_registry: er.EntityRegistry,
    device_registry: dr.DeviceRegistry,
) -> None:
    """Tokens and cost equal the sums of the server's usage objects, priced per the table."""
    ids = {
        key: _entity_id(entity_registry, f"{entry.entry_id}_{key}")
        for key in (*TOKEN_KEYS, "estimated_cost")
    }
    for key in TOKEN_KEYS:
        assert hass.states.get(ids[key]).state == "0"
    realtime_server.script(
        ScriptedResponse(text="One", usage=default_usage()),
        ScriptedResponse(text="Two", usage=_usage(1000, 400, 2000, 100, 3000)),
    )
    await ask_agent(hass, "first")
    await ask_agent(hass, "second")
    await hass.async_block_till_done()

    expected = {
        "text_input_tokens": 119 + 1000,
        "audio_input_tokens": 13 + 2000,
        "cached_input_tokens": 64 + 400,
        "text_output_tokens": 30 + 100,
        "audio_output_tokens": 91 + 3000,
    }
    for key, value in expected.items():
        state = hass.states.get(ids[key])
        assert int(state.state) == value, key
        assert state.attributes[ATTR_STATE_CLASS] == SensorStateClass.TOTAL_INCREASING
        assert state.attributes[ATTR_UNIT_OF_MEASUREMENT] == "tokens"

    # gpt-realtime-2.1: text 4 / 0.40 / 24, audio 32 / 0.40 / 64 USD per 1M tokens.
    usd = (
        (119 - 64 + 1000 - 400) * 4
        + (64 + 400) * 0.40
        + (13 + 2000) * 32
        + (30 + 100) * 24
        + (91 + 3000) * 64
    ) / 1_000_000
    cost = hass.states.get(ids["estimated_cost"])
    assert float(cost.state) == pytest.approx(usd)
    assert cost.attributes[ATTR_DEVICE_CLASS] == SensorDeviceClass.MONETARY
    assert cost.attributes[ATTR_STATE_CLASS] == SensorStateClass.TOTAL
    assert cost.attributes[ATTR_UNIT_OF_MEASUREMENT] == "USD"

    device = device_registry.async_get_device_by_identifier(
        (DOMAIN, entry.entry_id), entry.entry_id
    )
    assert device is not None
    assert entity_registry.async_get(ids["estimated_cost"]).device_id == device.id
    assert entity_registry.async_get(ids["text_input_tokens"]).translation_key == (
        "text_input_tokens"
    )


async def test_cost_is_unknown_for_a_model_without_prices(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    realtime_server: RealtimeServer,
    entity_registry: er.EntityRegistry,
) -> None:
    """A model missing from the price table counts tokens but has no cost estimate."""
    set_settings(hass, entry, model="my-deployment")
    await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    realtime_server.script(ScriptedResponse(text="One", usage=default_usage()))
    await ask_agent(hass, "first")
    await hass.async_block_till_done()
    cost = _entity_id(entity_registry, f"{entry.entry_id}_estimated_cost")
    tokens = _entity_id(entity_registry, f"{entry.entry_id}_text_input_tokens")
    assert hass.states.get(cost).state == STATE_UNKNOWN
    assert hass.states.get(tokens).state == "119"


async def test_device_latency_sensor(
    hass: HomeAssistant, client: TestClient, entity_registry: er.EntityRegistry
) -> None:
    """The latency sensor shows the device's last response latency in milliseconds."""
    device = simulator(client)
    try:
        await pair(hass, device)
        await hass.async_block_till_done()
        entity_id = _entity_id(entity_registry, f"{device.mac}_latency")
        state = hass.states.get(entity_id)
        assert state.state == STATE_UNKNOWN
        assert state.attributes[ATTR_DEVICE_CLASS] == SensorDeviceClass.DURATION
        assert state.attributes[ATTR_UNIT_OF_MEASUREMENT] == "ms"
        assert entity_registry.async_get(entity_id).entity_category == "diagnostic"

        device_state = device_home(hass, device.mac).state
        device_state.latencies.append(640.0)
        device_state.last_latency_ms = 640.0
        device_state.async_notify()
        await hass.async_block_till_done()
        assert float(hass.states.get(entity_id).state) == 640.0
    finally:
        await device.close()


async def test_device_latency_is_restored_after_a_restart(
    hass: HomeAssistant, client: TestClient, entity_registry: er.EntityRegistry
) -> None:
    """A restart keeps the last response latency instead of showing unknown."""
    device = simulator(client)
    try:
        await pair(hass, device)
        await hass.async_block_till_done()
        entity_id = _entity_id(entity_registry, f"{device.mac}_latency")
        device_state = device_home(hass, device.mac).state
        device_state.last_latency_ms = 512.5
        device_state.async_notify()
        await hass.async_block_till_done()
    finally:
        await device.close()
    entry = hass.config_entries.async_entries(DOMAIN)[0]
    assert await hass.config_entries.async_unload(entry.entry_id)
    # What a restart forgets: the device's in-memory state.
    device_state.last_latency_ms = None
    device_state.latencies.clear()
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert float(hass.states.get(entity_id).state) == 512.5
    assert device_home(hass, device.mac).state.last_latency_ms == 512.5


async def test_transcription_tokens_are_counted(
    hass: HomeAssistant,
    client: TestClient,
    realtime_server: RealtimeServer,
    entity_registry: er.EntityRegistry,
) -> None:
    """Input transcription is billed apart from the responses: its tokens have their own total."""
    realtime_server.user_transcript = "what is the weather"
    realtime_server.discipline.transcription_usage = TOKEN_USAGE
    realtime_server.script(ScriptedResponse(text="Sunny.", audio=tone(300)))
    (entry,) = hass.config_entries.async_entries(DOMAIN)
    entity_id = _entity_id(entity_registry, f"{entry.entry_id}_transcription_tokens")
    assert hass.states.get(entity_id).state == "0"
    device = await bridged(hass, client)
    try:
        await device.start_listening()
        await device.send_audio(loud(400) + bytes(32000))
        await wait_tts(device, "stop")
        await wait_until(lambda: hass.states.get(entity_id).state != "0", hass)
        assert int(hass.states.get(entity_id).state) == TOKEN_USAGE["total_tokens"]
        # The response's own tokens are counted as before, not mixed with transcription's.
        audio_in = _entity_id(entity_registry, f"{entry.entry_id}_audio_input_tokens")
        assert hass.states.get(audio_in).state == "13"
    finally:
        await disconnect(hass, device, device_state(hass, device))
