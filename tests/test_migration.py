"""Version 1 entries (0.3.0: the entry was the key and its one agent) move to version 2.

The entry below is built exactly as 0.3.0 stored it: the connection in `data`, every setting the
options flow saves in `options`, a paired device as a subentry with its token's hash and profile,
and the registry entries 0.3.0's platforms made. After the migration the same agent answers
(its model, voice, instructions and tools reach the Realtime service), the board connects with
its old token and no pairing, and the conversation entity keeps its entity id.
"""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient
from homeassistant.config_entries import ConfigEntryState, ConfigSubentryData
from homeassistant.const import CONF_API_KEY
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr, entity_registry as er
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.openai_realtime_voice.agents import agent_subentries, device_agent
from custom_components.openai_realtime_voice.const import (
    CONF_BASE_URL,
    CONF_DIALECT,
    DEFAULT_SERVICES_ALLOWLIST,
    DOMAIN,
    SUBENTRY_CONVERSATION,
    SUBENTRY_DEVICE,
)
from custom_components.openai_realtime_voice.endpoint import device_subentries
from custom_components.openai_realtime_voice.endpoint.pairing import hash_token
from realtime_server import RealtimeServer, ScriptedResponse
from tests.agent_helpers import AGENT, ask_agent
from tests.bridge_helpers import device_state
from tests.device_helpers import release_devices, simulator, wait_until

MAC = "aa:bb:cc:00:31:01"
CLIENT_ID = "c0ffee00-0000-4000-8000-000000000031"
TOKEN = "migrated-device-token-0031"
PROMPT = "You are the voice of the Miller family's house."

V1_OPTIONS: dict[str, Any] = {
    # Everything 0.3.0's options flow stores, several values changed by the user.
    "model": "gpt-realtime-2.1-mini",
    "voice": "cedar",
    "prompt": PROMPT,
    "llm_hass_api": ["assist"],
    "turn_detection": "server_vad",
    "vad_threshold": 0.65,
    "vad_prefix_padding_ms": 250,
    "vad_silence_duration_ms": 700,
    "vad_eagerness": "auto",
    "noise_reduction": "near_field",
    "transcription_model": "gpt-4o-transcribe",
    "speed": 1.1,
    "max_output_tokens": 800,
    "services_allowlist": [*DEFAULT_SERVICES_ALLOWLIST, "lock"],
    "listening_timeout": 30,
    "wake_words": "Hey Nova",
    "image_input": True,
    "image_max_side": 768,
    "prices": "audio_out=50",
    "monthly_budget": 25.0,
    "budget_action": "cheaper_model",
    "budget_model": "gpt-realtime-2.1-mini",
}
AGENT_KEYS = {
    "model",
    "voice",
    "prompt",
    "llm_hass_api",
    "turn_detection",
    "vad_threshold",
    "vad_prefix_padding_ms",
    "vad_silence_duration_ms",
    "vad_eagerness",
    "noise_reduction",
    "transcription_model",
    "speed",
    "max_output_tokens",
    "image_input",
    "image_max_side",
    "prices",
}
DEVICE_DATA: dict[str, Any] = {
    "mac": MAC,
    "client_id": CLIENT_ID,
    "board": "esp-box-3",
    "firmware": "2.4.2",
    "token_hash": hash_token(TOKEN),
    "profile": {"extra_instructions": "You are in the kitchen."},
}


def v1_entry(server: RealtimeServer) -> MockConfigEntry:
    """The entry as 0.3.0 stored it."""
    return MockConfigEntry(
        domain=DOMAIN,
        version=1,
        minor_version=1,
        title="OpenAI Realtime",
        data={CONF_API_KEY: server.api_key, CONF_BASE_URL: server.url, CONF_DIALECT: "ga"},
        options=V1_OPTIONS,
        subentries_data=[
            ConfigSubentryData(
                data=DEVICE_DATA,
                subentry_id="01JDEVICE0000000000000031",
                subentry_type=SUBENTRY_DEVICE,
                title=f"esp-box-3 ({MAC})",
                unique_id=MAC,
            )
        ],
    )


def register_as_v1(hass: HomeAssistant, entry: MockConfigEntry) -> dict[str, str]:
    """The registry entries 0.3.0's platforms made: the service device with the agent and the
    usage sensors, the board's device and satellite. Their ids, by what they are."""
    devices = dr.async_get(hass)
    entities = er.async_get(hass)
    service = devices.async_get_or_create(
        config_entry_id=entry.entry_id,
        identifiers={(DOMAIN, entry.entry_id)},
        name=entry.title,
        manufacturer="OpenAI",
        model="gpt-realtime-2.1-mini",
        entry_type=dr.DeviceEntryType.SERVICE,
    )
    board = devices.async_get_or_create(
        config_entry_id=entry.entry_id,
        config_subentry_id="01JDEVICE0000000000000031",
        identifiers={(DOMAIN, MAC)},
        connections={(dr.CONNECTION_NETWORK_MAC, MAC)},
        name=f"esp-box-3 ({MAC})",
        manufacturer="xiaozhi",
    )
    agent = entities.async_get_or_create(
        "conversation",
        DOMAIN,
        entry.entry_id,
        config_entry=entry,
        device_id=service.id,
        suggested_object_id="openai_realtime",
    )
    cost = entities.async_get_or_create(
        "sensor",
        DOMAIN,
        f"{entry.entry_id}_estimated_cost",
        config_entry=entry,
        device_id=service.id,
        suggested_object_id="openai_realtime_estimated_cost",
    )
    satellite = entities.async_get_or_create(
        "assist_satellite",
        DOMAIN,
        f"{MAC}_assist_satellite",
        config_entry=entry,
        config_subentry_id="01JDEVICE0000000000000031",
        device_id=board.id,
        suggested_object_id="esp_box_3",
    )
    return {
        "service": service.id,
        "board": board.id,
        "agent": agent.entity_id,
        "cost": cost.entity_id,
        "satellite": satellite.entity_id,
    }


async def test_a_v1_entry_keeps_its_agent_devices_and_entity_ids(
    hass: HomeAssistant, hass_client_no_auth: Any, realtime_server: RealtimeServer, lights: None
) -> None:
    """The migration moves the agent into a subentry and loses no setting, device or id."""
    assert await async_setup_component(hass, "http", {"http": {"login_attempts_threshold": 1000}})
    entry = v1_entry(realtime_server)
    entry.add_to_hass(hass)
    ids = register_as_v1(hass, entry)
    assert ids["agent"] == AGENT

    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    assert (entry.version, entry.minor_version) == (2, 1)

    # The connection stays; the entry-wide settings stay in the options; the agent's move.
    assert dict(entry.data) == {
        CONF_API_KEY: realtime_server.api_key,
        CONF_BASE_URL: realtime_server.url,
        CONF_DIALECT: "ga",
    }
    assert dict(entry.options) == {k: v for k, v in V1_OPTIONS.items() if k not in AGENT_KEYS}
    (agent,) = agent_subentries(entry)
    assert agent.subentry_type == SUBENTRY_CONVERSATION
    assert agent.title == "OpenAI Realtime"
    assert dict(agent.data) == {k: v for k, v in V1_OPTIONS.items() if k in AGENT_KEYS}
    (device,) = device_subentries(entry)
    assert device.subentry_id == "01JDEVICE0000000000000031"
    assert dict(device.data) == DEVICE_DATA
    assert device_agent(entry, device) is agent

    # The conversation entity keeps its entity id; it now belongs to the agent subentry, on
    # the agent's own device. The usage sensor and the board keep theirs.
    entities = er.async_get(hass)
    conversation_entity = entities.async_get(AGENT)
    assert conversation_entity is not None
    assert conversation_entity.unique_id == agent.subentry_id
    assert conversation_entity.config_subentry_id == agent.subentry_id
    devices = dr.async_get(hass)
    agent_device = devices.async_get_device_by_identifier(
        (DOMAIN, agent.subentry_id), entry.entry_id
    )
    assert agent_device is not None
    assert conversation_entity.device_id == agent_device.id
    assert (agent_device.config_entry_id, agent_device.config_subentry_id) == (
        entry.entry_id,
        agent.subentry_id,
    )
    for key in ("cost", "satellite"):
        assert entities.async_get(ids[key]) is not None, key
    assert entities.async_get(ids["cost"]).device_id == ids["service"]
    assert devices.async_get(ids["board"]) is not None
    assert hass.states.get(AGENT) is not None
    assert not [
        e.entity_id
        for e in er.async_entries_for_config_entry(entities, entry.entry_id)
        if e.domain == "conversation" and e.entity_id != AGENT
    ]

    # The same agent answers a typed request: its model and settings reach the service.
    realtime_server.script(ScriptedResponse(text="Hello from the house."))
    result = await ask_agent(hass, "Hello")
    assert result.response.speech["plain"]["speech"] == "Hello from the house."
    assert realtime_server.models[-1] == "gpt-realtime-2.1-mini"
    typed = realtime_server.of_type("session.update")[-1]["session"]
    assert PROMPT in typed["instructions"]
    assert typed["max_output_tokens"] == 800
    assert any(tool["name"] == "intent__HassTurnOn" for tool in typed["tools"])

    # The board's stored token still works: no pairing, and its session has the agent's voice,
    # VAD, transcription and prompt, with the board's profile on top.
    client: TestClient = await hass_client_no_auth()
    hass.config.internal_url = str(client.make_url("/"))
    try:
        await _board_session(hass, client, realtime_server)
    finally:
        await release_devices(hass, client)

    # The entry-wide budget and the agent's prices are in force.
    budget = entry.runtime_data.budget
    assert (budget.limit, budget.action) == (25.0, "cheaper_model")
    assert entry.runtime_data.usage.prices is not None
    assert entry.runtime_data.usage.prices.audio_out == 50.0


async def _board_session(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    board = simulator(client, mac=MAC, client_id=CLIENT_ID, token=TOKEN)
    boot = await board.check_version()
    assert boot.activation is None
    assert boot.websocket is not None
    assert not hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    before = len(realtime_server.sessions)
    await board.open_audio_channel()
    state = device_state(hass, board)
    await wait_until(
        lambda: len(realtime_server.sessions) > before and state.connection is not None,
        realtime_server,
        state,
    )
    await wait_until(
        lambda: realtime_server.sessions[before].session.get("instructions"), realtime_server
    )
    session = realtime_server.sessions[before].session
    assert realtime_server.models[before] == "gpt-realtime-2.1-mini"
    assert session["audio"]["output"]["voice"] == "cedar"
    assert session["audio"]["output"]["speed"] == 1.1
    vad = session["audio"]["input"]["turn_detection"]
    assert (vad["type"], vad["threshold"], vad["silence_duration_ms"]) == ("server_vad", 0.65, 700)
    assert session["audio"]["input"]["noise_reduction"] == {"type": "near_field"}
    assert session["audio"]["input"]["transcription"]["model"] == "gpt-4o-transcribe"
    assert PROMPT in session["instructions"]
    assert "You are in the kitchen." in session["instructions"]


async def test_a_downgraded_entry_is_not_loaded(
    hass: HomeAssistant, realtime_server: RealtimeServer
) -> None:
    """An entry from a newer version than this one knows is left alone."""
    entry = MockConfigEntry(
        domain=DOMAIN,
        version=3,
        data={CONF_API_KEY: realtime_server.api_key, CONF_BASE_URL: realtime_server.url},
    )
    entry.add_to_hass(hass)
    assert not await hass.config_entries.async_setup(entry.entry_id)
    assert entry.state is ConfigEntryState.MIGRATION_ERROR


async def test_settings_an_older_entry_never_stored_show_their_defaults(
    hass: HomeAssistant, realtime_server: RealtimeServer
) -> None:
    """An entry whose options hold only some settings migrates them as they are; the agent's
    form shows the defaults its sessions used for the others, but no prompt or API it never had."""
    entry = MockConfigEntry(
        domain=DOMAIN,
        version=1,
        title="OpenAI Realtime",
        data={CONF_API_KEY: realtime_server.api_key, CONF_BASE_URL: realtime_server.url},
        options={"model": "gpt-realtime-2.1", "listening_timeout": 40},
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    (agent,) = agent_subentries(entry)
    assert dict(agent.data) == {"model": "gpt-realtime-2.1"}
    assert dict(entry.options) == {"listening_timeout": 40}
    result = await entry.start_subentry_reconfigure_flow(hass, agent.subentry_id)
    shown = {
        str(key): key.description["suggested_value"]
        for key in result["data_schema"].schema
        if key.description and "suggested_value" in key.description
    }
    assert shown["voice"] == "marin"
    assert shown["turn_detection"] == "server_vad"
    assert shown["model"] == "gpt-realtime-2.1"
    assert "prompt" not in shown
    assert "llm_hass_api" not in shown
