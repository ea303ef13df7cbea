"""What a misled model can reach through the services API, on a real Home Assistant.

Each test replays an attack of the third attack round (issue 29) against demo and template
entities: a hidden camera played on an exposed TV through a path Home Assistant signs, and
entity ids written in mixed case to probe for hidden entities, and an exposed scene or script
that unlocks a hidden lock.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
import json
from typing import Any
from unittest.mock import patch

from aiohttp.test_utils import TestClient
from homeassistant.components.conversation import UserContent, async_get_chat_log
from homeassistant.components.homeassistant.const import DATA_EXPOSED_ENTITIES
from homeassistant.components.homeassistant.exposed_entities import async_expose_entity
from homeassistant.components.media_player import async_process_play_media_url
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import CONF_API_KEY, Platform
from homeassistant.core import Context, HomeAssistant
from homeassistant.helpers import chat_session, llm
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.openai_realtime_voice.const import (
    CONF_BASE_URL,
    CONF_DIALECT,
    CONF_LLM_HASS_API,
    CONF_SERVICES_ALLOWLIST,
    DEFAULT_SERVICES_ALLOWLIST,
    DOMAIN,
)
from custom_components.openai_realtime_voice.services_api import (
    API_ID,
    async_register_services_api,
)
from realtime_server import RealtimeServer, ScriptedCall, ScriptedResponse
from tests.agent_helpers import TURN_ON, ask_agent, service_entry

ASSISTANT = "conversation"
PLAYER = "media_player.living_room"
CAMERA = "camera.demo_camera"
EXTERNAL = "https://home.example.org"


@pytest.fixture
async def http(hass: HomeAssistant, hass_client_no_auth: Any) -> AsyncIterator[TestClient]:
    """Demo players and a camera; media players allowed; the player exposed, the camera not.

    Yields a client of Home Assistant's HTTP server without credentials, as a TV on the LAN.
    """
    assert await async_setup_component(hass, "http", {})
    with patch(
        "homeassistant.components.demo.COMPONENTS_WITH_CONFIG_ENTRY_DEMO_PLATFORM",
        [Platform.MEDIA_PLAYER, Platform.CAMERA],
    ):
        demo = MockConfigEntry(domain="demo")
        demo.add_to_hass(hass)
        assert await hass.config_entries.async_setup(demo.entry_id)
        await hass.async_block_till_done()
    unregister = async_register_services_api(hass)
    entry = MockConfigEntry(domain=DOMAIN, options={CONF_SERVICES_ALLOWLIST: ["media_player"]})
    entry.add_to_hass(hass)
    entry.mock_state(hass, ConfigEntryState.LOADED)
    async_expose_entity(hass, ASSISTANT, PLAYER, True)
    async_expose_entity(hass, ASSISTANT, CAMERA, False)
    client: TestClient = await hass_client_no_auth()
    hass.config.internal_url = str(client.make_url("/")).rstrip("/")
    hass.config.external_url = EXTERNAL
    yield client
    unregister()
    entry.mock_state(hass, ConfigEntryState.NOT_LOADED)


async def call(hass: HomeAssistant, tool_name: str, args: dict[str, Any]) -> llm.ToolResult:
    """Call one tool the way an agent does."""
    api = await llm.async_get_api(
        hass,
        API_ID,
        llm.LLMContext(
            platform="test", context=Context(), language="en", assistant=ASSISTANT, device_id=None
        ),
    )
    return await api.async_call_tool(llm.ToolInput(tool_name=tool_name, tool_args=args))


def _play(media_id: str) -> dict[str, Any]:
    return {
        "entity_id": PLAYER,
        "media": {
            "entity_id": PLAYER,
            "media_content_id": media_id,
            "media_content_type": "image/jpeg",
        },
    }


def _playing(hass: HomeAssistant) -> Any:
    return hass.states.get(PLAYER).attributes.get("media_content_id")  # type: ignore[union-attr]


async def test_paths_home_assistant_would_sign_are_refused(
    hass: HomeAssistant, http: TestClient
) -> None:
    """A hidden camera's proxy path, or any API path on HA's own host, never reaches a player.

    A player integration (cast, sonos, dlna_dmr...) hands the id to
    `async_process_play_media_url`, which signs it for 24 hours: the signed URL really opens
    the hidden camera to anyone who reads it on the LAN.
    """
    signed = async_process_play_media_url(hass, f"/api/camera_proxy/{CAMERA}")
    leaked = await http.get(signed.removeprefix(hass.config.internal_url or ""))
    assert leaked.status == 200
    assert leaked.content_type.startswith("image/")

    internal = hass.config.internal_url
    port = http.port
    before = _playing(hass)
    for media_id in (
        f"/api/camera_proxy/{CAMERA}",
        f"/api/camera_proxy_stream/{CAMERA}",
        f" /api/%63amera_proxy/{CAMERA}",  # percent-encoded: HA signs the decoded path
        f"/local/../api/camera_proxy/{CAMERA}",
        "/api/image_proxy/image.doorbell_snapshot",
        f"{internal}/api/camera_proxy/{CAMERA}?width=640",
        f"{EXTERNAL}/api/camera_proxy_stream/{CAMERA}",
        f"http://LOCALHOST:{port}/api/camera_proxy/{CAMERA}",
        f"http://[::1]:{port}/api/camera_proxy/{CAMERA}",
        # A camera proxy is refused on any host: what reaches HA cannot be known for sure.
        f"http://homeassistant.lan:8123/api/camera_proxy/{CAMERA}",
        # Other API paths on HA's own host: signed, they read states, history, logs.
        "/api/states",
        f"/api/history/period/2026-01-01T00:00:00?filter_entity_id={CAMERA}",
        f"{internal}/api/error_log",
        f"{EXTERNAL}/auth/authorize",
    ):
        result = await call(hass, "media_player__play_media", _play(media_id))
        assert result.error, media_id
        assert result.data["error"] == "media_refused", (media_id, result.data)
    await hass.async_block_till_done()
    assert _playing(hass) == before

    # Exposing the camera does not open its proxy path: its media-source id is the way.
    async_expose_entity(hass, ASSISTANT, CAMERA, True)
    proxied = await call(hass, "media_player__play_media", _play(f"/api/camera_proxy/{CAMERA}"))
    assert proxied.data["error"] == "media_refused"
    shown = await call(hass, "media_player__play_media", _play(f"media-source://camera/{CAMERA}"))
    assert not shown.error, shown.data

    # What is not Home Assistant's own API plays as before.
    for media_id in (
        "/local/doorbell.mp3",
        f"{internal}/local/chime.mp3",
        "/api/tts_proxy/abc.mp3",  # served without authentication: HA does not sign it
        "https://radio.example.com/api/stream.mp3",
        "media-source://radio_browser/abc",
    ):
        result = await call(hass, "media_player__play_media", _play(media_id))
        assert not result.error, (media_id, result.data)
        await hass.async_block_till_done()
        assert _playing(hass) == media_id


@pytest.fixture
async def services(hass: HomeAssistant, demo_home: None) -> AsyncIterator[None]:
    """The services API over the demo home (the default allowlist: no entry is loaded)."""
    unregister = async_register_services_api(hass)
    yield
    unregister()


@pytest.mark.usefixtures("services")
async def test_mixed_case_ids_neither_probe_nor_write(hass: HomeAssistant) -> None:
    """`climate.Ecobee` (hidden) and `climate.No_Such` get one answer; nothing is stored.

    Home Assistant's exposure store makes an entry for every id it is asked about that is not
    in the entity registry: a probe must never get that far.
    """
    async_expose_entity(hass, ASSISTANT, "climate.ecobee", False)
    async_expose_entity(hass, ASSISTANT, "climate.heatpump", True)
    store = hass.data[DATA_EXPOSED_ENTITIES]
    stored = dict(store.entities)

    answers: set[tuple[str, str]] = set()
    for probe in (
        "climate.Ecobee",
        "CLIMATE.ECOBEE",
        " climate.ecobee ",
        "climate.ecobee",
        "climate.No_Such",
        "climate.no_such",
        "Climate.no such",
    ):
        result = await call(
            hass, "climate__set_hvac_mode", {"entity_id": probe, "hvac_mode": "cool"}
        )
        assert result.error, probe
        text = str(result.data["error_text"])
        for name in ("climate.ecobee", "climate.no_such", "climate.no such"):
            text = text.replace(name, "<id>")
        answers.add((str(result.data["error"]), text))
    assert len(answers) == 1, answers
    assert answers.pop()[0] == "unknown_entity"
    assert hass.states.get("climate.ecobee").state != "cool"  # type: ignore[union-attr]

    # An exposed entity written in another case is that entity.
    result = await call(
        hass, "climate__set_hvac_mode", {"entity_id": "Climate.HeatPump", "hvac_mode": "off"}
    )
    assert not result.error, result.data
    assert hass.states.get("climate.heatpump").state == "off"  # type: ignore[union-attr]
    assert result.data["states"] == {"climate.heatpump": "off"}
    assert dict(store.entities) == stored


@pytest.fixture
async def scenes(hass: HomeAssistant, demo_home: None) -> None:
    """An exposed scene and script that unlock a hidden lock and open a hidden garage door."""
    assert await async_setup_component(
        hass,
        "scene",
        {
            "scene": [
                {
                    "name": "Welcome home",
                    "entities": {
                        "lock.front_door": "unlocked",
                        "cover.garage_door": "open",
                        "light.kitchen_lights": "on",
                    },
                },
                {"name": "Reading", "entities": {"light.bed_light": "on"}},
                {"name": "Night light", "entities": {"light.ceiling_lights": "on"}},
            ]
        },
    )
    assert await async_setup_component(
        hass,
        "script",
        {
            "script": {
                "arrive": {
                    "alias": "Arrive",
                    "sequence": [
                        {"action": "scene.turn_on", "target": {"entity_id": "scene.reading"}},
                        {"action": "lock.unlock", "target": {"entity_id": "lock.front_door"}},
                    ],
                },
                "relax": {
                    "alias": "Relax",
                    "sequence": [
                        {"action": "scene.turn_on", "target": {"entity_id": "scene.reading"}}
                    ],
                },
            }
        },
    )
    await hass.async_block_till_done()
    for entity_id in ("scene.welcome_home", "scene.reading", "scene.night_light"):
        async_expose_entity(hass, ASSISTANT, entity_id, True)
    for entity_id in ("script.arrive", "script.relax", "light.bed_light"):
        async_expose_entity(hass, ASSISTANT, entity_id, True)
    for entity_id in ("lock.front_door", "cover.garage_door", "light.ceiling_lights"):
        async_expose_entity(hass, ASSISTANT, entity_id, False)


@pytest.fixture
async def welcome_home(hass: HomeAssistant, scenes: None) -> AsyncIterator[None]:
    """The scenes and scripts, and the services API registered."""
    unregister = async_register_services_api(hass)
    yield
    unregister()


def _allow(hass: HomeAssistant, *allowed: str) -> MockConfigEntry:
    entry = MockConfigEntry(domain=DOMAIN, options={CONF_SERVICES_ALLOWLIST: list(allowed)})
    entry.add_to_hass(hass)
    entry.mock_state(hass, ConfigEntryState.LOADED)
    return entry


def _state(hass: HomeAssistant, entity_id: str) -> str:
    state = hass.states.get(entity_id)
    assert state is not None
    return state.state


@pytest.mark.usefixtures("welcome_home")
async def test_scenes_and_scripts_answer_for_what_they_reach(hass: HomeAssistant) -> None:
    """A scene or script reaches what it sets or calls: the allowlist, exposure and confirmation
    apply to that, through nested scenes and scripts too."""
    entry = _allow(hass, *DEFAULT_SERVICES_ALLOWLIST)  # no lock services allowed
    for tool, args in (
        ("scene__turn_on", {"entity_id": "scene.welcome_home"}),
        ("script__turn_on", {"entity_id": "script.arrive"}),
        ("script__arrive", {}),
    ):
        refused = await call(hass, tool, args)
        assert refused.error, (tool, refused.data)
        assert refused.data["error"] == "not_allowed", refused.data
        assert "lock" in str(refused.data["error_text"])
    await hass.async_block_till_done()
    assert _state(hass, "lock.front_door") == "locked"
    assert _state(hass, "cover.garage_door") == "closed"
    assert _state(hass, "light.kitchen_lights") == "on"  # the demo's start; not from the scene

    # What reaches only exposed, harmless entities runs at once.
    assert not (await call(hass, "script__relax", {})).error
    await hass.async_block_till_done()
    assert _state(hass, "light.bed_light") == "on"

    # With locks allowed, the user is asked first, and it runs after their answer.
    entry.mock_state(hass, ConfigEntryState.NOT_LOADED)
    _allow(hass, *DEFAULT_SERVICES_ALLOWLIST, "lock")
    args = {"entity_id": "scene.welcome_home"}
    with (
        chat_session.async_get_chat_session(hass) as session,
        async_get_chat_log(hass, session) as chat_log,
    ):
        chat_log.async_add_user_content(UserContent("welcome home"))
        asked = await call(hass, "scene__turn_on", args)
        assert asked.data["status"] == "confirmation_required", asked.data
        hasty = await call(hass, "scene__turn_on", {**args, "confirm": True})
        assert hasty.data["status"] == "confirmation_required"
        assert _state(hass, "lock.front_door") == "locked"
        chat_log.async_add_user_content(UserContent("yes"))
        done = await call(hass, "scene__turn_on", {**args, "confirm": True})
        assert done.data.get("success") is True, done.data
    await hass.async_block_till_done()
    assert _state(hass, "lock.front_door") == "unlocked"

    # A hidden light alone is not refused, but the user is asked: it was not exposed.
    hidden = await call(hass, "scene__turn_on", {"entity_id": "scene.night_light"})
    assert hidden.data["status"] == "confirmation_required", hidden.data


@pytest.mark.usefixtures("scenes")
async def test_assist_intents_do_not_run_what_needs_a_yes(
    hass: HomeAssistant, realtime_server: RealtimeServer
) -> None:
    """Through Home Assistant's Assist API (the default), `HassTurnOn` of the exposed scene is
    refused as well: that API cannot ask the user. A harmless scene still runs."""
    entry = service_entry(
        {
            CONF_API_KEY: realtime_server.api_key,
            CONF_BASE_URL: realtime_server.url,
            CONF_DIALECT: "ga",
        },
        {CONF_LLM_HASS_API: [llm.LLM_API_ASSIST]},
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    realtime_server.script(
        ScriptedResponse(calls=[ScriptedCall(TURN_ON, json.dumps({"name": "Welcome home"}))]),
        ScriptedResponse(text="I cannot."),
    )
    await ask_agent(hass, "Welcome home")
    (output,) = _tool_outputs(realtime_server)
    assert output["data"]["error"] == "needs_confirmation", output
    await hass.async_block_till_done()
    assert _state(hass, "lock.front_door") == "locked"
    assert _state(hass, "cover.garage_door") == "closed"

    realtime_server.script(
        ScriptedResponse(calls=[ScriptedCall(TURN_ON, json.dumps({"name": "Reading"}))]),
        ScriptedResponse(text="Done."),
    )
    await ask_agent(hass, "Reading light")
    assert not _tool_outputs(realtime_server)[-1].get("error"), _tool_outputs(realtime_server)
    await hass.async_block_till_done()
    assert _state(hass, "light.bed_light") == "on"
    assert await hass.config_entries.async_unload(entry.entry_id)


def _tool_outputs(server: RealtimeServer) -> list[dict[str, Any]]:
    """The tool results the agent sent back to the model, in order."""
    return [
        json.loads(event["item"]["output"])
        for event in server.of_type("conversation.item.create")
        if event["item"]["type"] == "function_call_output"
    ]
