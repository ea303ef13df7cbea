"""What a misled model can reach through the services API, on a real Home Assistant.

Each test replays an attack of the third attack round (issue 29) against demo and template
entities: a hidden camera played on an exposed TV through a path Home Assistant signs, and
entity ids written in mixed case to probe for hidden entities.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from unittest.mock import patch

from aiohttp.test_utils import TestClient
from homeassistant.components.homeassistant.const import DATA_EXPOSED_ENTITIES
from homeassistant.components.homeassistant.exposed_entities import async_expose_entity
from homeassistant.components.media_player import async_process_play_media_url
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import Platform
from homeassistant.core import Context, HomeAssistant
from homeassistant.helpers import llm
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.openai_realtime_voice.const import CONF_SERVICES_ALLOWLIST, DOMAIN
from custom_components.openai_realtime_voice.services_api import (
    API_ID,
    async_register_services_api,
)

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
