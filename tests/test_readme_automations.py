"""The README's doorbell and bedtime automations, run as written by Home Assistant.

The YAML is read from the README; the test only gives the entities it names to a simulated
board, the test TTS engine and a demo media player.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
import json
from pathlib import Path
import re
from typing import Any

from aiohttp.test_utils import TestClient
from homeassistant.components.media_player import (
    MediaPlayerEntity,
    MediaPlayerEntityFeature,
    MediaPlayerState,
)
from homeassistant.core import HomeAssistant
from homeassistant.helpers import area_registry as ar, entity_registry as er
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import (
    MockModule,
    MockPlatform,
    mock_integration,
    mock_platform,
)
import yaml

from custom_components.openai_realtime_voice.const import DOMAIN
from realtime_server import RealtimeServer, ScriptedResponse, tone
from simulator.device import DeviceSimulator
from simulator.speech import synthesize
from tests.bridge_helpers import bridge_of, bridged, device_state, wait_tts
from tests.device_helpers import device_client, release_devices, wait_until
from tests.pipeline_providers import Providers, providers_flow, setup_providers

README = Path(__file__).parent.parent / "README.md"
# The README's boards, named as Home Assistant names a board and its MAC address.
KITCHEN = "bread_compact_wifi_02_d6_e0_0f_32_b4"
BEDROOM = "esp_box_3_02_4a_91_5c_07_e2"


def readme_automations() -> dict[str, dict[str, Any]]:
    """The automations of the README's actions example, by alias."""
    text = README.read_text(encoding="utf-8")
    section = text.split("## Actions (for automations and scripts)", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```yaml\n(automation:.*?)```", section, re.DOTALL)
    return {a["alias"]: a for a in yaml.safe_load(block)["automation"]}


@pytest.fixture
async def providers(
    hass: HomeAssistant, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Providers]:
    """The test STT and TTS entities; the TTS engine is the README's `tts.piper`."""
    with providers_flow():
        providers = await setup_providers(hass, tmp_path, monkeypatch)
        assert providers.tts.entity_id is not None
        er.async_get(hass).async_update_entity(providers.tts.entity_id, new_entity_id="tts.piper")
        await hass.async_block_till_done()
        yield providers


class KitchenSpeaker(MediaPlayerEntity):
    """A media player that keeps what it was asked to play."""

    _attr_name = "Kitchen speaker"
    _attr_state = MediaPlayerState.IDLE
    _attr_supported_features = MediaPlayerEntityFeature.PLAY_MEDIA

    def __init__(self) -> None:
        """Nothing played yet."""
        self.played: list[str] = []

    async def async_play_media(self, media_type: str, media_id: str, **kwargs: Any) -> None:
        """Keep the media id."""
        self.played.append(media_id)


@pytest.fixture
async def speaker(hass: HomeAssistant) -> KitchenSpeaker:
    """The README's `media_player.kitchen_speaker`."""
    entity = KitchenSpeaker()

    async def setup_platform(hass: HomeAssistant, config: Any, add: Any, info: Any = None) -> None:
        add([entity])

    mock_integration(hass, MockModule("kitchen_speaker"))
    mock_platform(
        hass, "kitchen_speaker.media_player", MockPlatform(async_setup_platform=setup_platform)
    )
    assert await async_setup_component(
        hass, "media_player", {"media_player": {"platform": "kitchen_speaker"}}
    )
    await hass.async_block_till_done()
    assert entity.entity_id == "media_player.kitchen_speaker"
    return entity


@pytest.fixture
async def client(
    hass: HomeAssistant,
    hass_client_no_auth: Any,
    realtime_server: RealtimeServer,
    *,
    lights: None,
    providers: Providers,
    speaker: KitchenSpeaker,
) -> AsyncGenerator[TestClient]:
    """A loaded entry, the README's entities, and an HTTP client for boards."""
    http = await device_client(hass, hass_client_no_auth, realtime_server)
    yield http
    await release_devices(hass, http)


async def board_named(hass: HomeAssistant, client: TestClient, name: str) -> DeviceSimulator:
    """A paired board whose satellite and Connected sensor carry the README's entity ids."""
    device = await bridged(hass, client)
    entities = er.async_get(hass)
    for domain, key in (("assist_satellite", "assist_satellite"), ("binary_sensor", "connected")):
        entity_id = entities.async_get_entity_id(domain, DOMAIN, f"{device.mac}_{key}")
        assert entity_id is not None
        suffix = "" if domain == "assist_satellite" else "_connected"
        entities.async_update_entity(entity_id, new_entity_id=f"{domain}.{name}{suffix}")
    await hass.async_block_till_done()
    return device


async def load(hass: HomeAssistant, alias: str) -> None:
    """Set up the automation component with the README's automation of this alias."""
    config = {"automation": [readme_automations()[alias]]}
    assert await async_setup_component(hass, "automation", config)
    await hass.async_block_till_done()


async def test_doorbell_speaks_on_the_board_in_a_conversation(
    hass: HomeAssistant,
    client: TestClient,
    realtime_server: RealtimeServer,
    speaker: KitchenSpeaker,
) -> None:
    """The board is in a conversation: the line is spoken on it, not on the speaker."""
    device = await board_named(hass, client, KITCHEN)
    hass.states.async_set("binary_sensor.doorbell", "off")
    await load(hass, "Doorbell announcement")
    realtime_server.script(ScriptedResponse(text="Someone is at the door.", audio=tone(240)))
    start = len(device.messages)
    hass.states.async_set("binary_sensor.doorbell", "on")
    await wait_tts(device, "stop", start)
    await hass.async_block_till_done()
    assert device.assistant_lines[-1] == "Someone is at the door."
    assert speaker.played == []


async def test_doorbell_uses_the_speaker_while_the_board_is_idle(
    hass: HomeAssistant, client: TestClient, speaker: KitchenSpeaker
) -> None:
    """The board is idle: the automation does not fail, the speaker says it."""
    device = await board_named(hass, client, KITCHEN)
    state = device_state(hass, device)
    await device.close_audio_channel()
    await wait_until(lambda: bridge_of(hass, state) is None and not state.connected, state)
    await hass.async_block_till_done()
    assert hass.states.get(f"binary_sensor.{KITCHEN}_connected").state == "off"
    hass.states.async_set("binary_sensor.doorbell", "off")
    await load(hass, "Doorbell announcement")
    hass.states.async_set("binary_sensor.doorbell", "on")
    await hass.async_block_till_done()
    (played,) = speaker.played
    assert played.startswith("media-source://tts/tts.piper?")
    assert "Someone+rang+the+front+door." in played


async def test_bedtime_asks_at_the_next_conversation(
    hass: HomeAssistant,
    client: TestClient,
    realtime_server: RealtimeServer,
) -> None:
    """22:30 with an idle board: nothing fails; when someone wakes it, it asks, and a yes
    turns the downstairs lights off."""
    areas = ar.async_get(hass)
    downstairs = areas.async_create("Downstairs")
    er.async_get(hass).async_update_entity("light.kitchen_lights", area_id=downstairs.id)
    await hass.services.async_call(
        "light", "turn_on", {"entity_id": "light.kitchen_lights"}, blocking=True
    )
    device = await board_named(hass, client, BEDROOM)
    state = device_state(hass, device)
    await device.close_audio_channel()
    await wait_until(lambda: bridge_of(hass, state) is None and not state.connected, state)
    await hass.async_block_till_done()
    await load(hass, "Bedtime lights")

    # 22:30 (the time trigger is Home Assistant's own: run the actions as it would).
    await hass.services.async_call(
        "automation", "trigger", {"entity_id": "automation.bedtime_lights"}
    )
    # It waits for the board (Home Assistant's block_till_done would wait with it).
    await wait_until(
        lambda: hass.states.get("automation.bedtime_lights").attributes["current"] == 1, hass
    )
    assert hass.states.get("light.kitchen_lights").state == "on"

    realtime_server.user_transcript = "yes please"
    realtime_server.script(
        ScriptedResponse(text="Shall I turn off the downstairs lights?", audio=tone(240)),
        ScriptedResponse(text=json.dumps({"option": "yes", "confidence": 0.9})),
    )
    start = len(device.messages)
    await device.open_audio_channel()  # someone wakes the board
    await wait_tts(device, "stop", start)
    await wait_until(lambda: device.mic_active, device)  # after the play-out
    await device.send_audio(await synthesize("yes please", 16000) + bytes(32000))
    await wait_until(
        lambda: hass.states.get("light.kitchen_lights").state == "off", hass, timeout=15
    )
    await wait_until(
        lambda: hass.states.get("automation.bedtime_lights").attributes["current"] == 0, hass
    )
    await hass.services.async_call(  # its 22:30 timer goes
        "automation", "turn_off", {"entity_id": "automation.bedtime_lights"}, blocking=True
    )
