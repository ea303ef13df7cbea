"""What a device's Realtime session opens with: the rendered prompt and every offered tool."""

from __future__ import annotations

from aiohttp.test_utils import TestClient
from homeassistant.core import HomeAssistant
import pytest

from custom_components.openai_realtime_voice.bridge import DEVICE_PREFIX
from custom_components.openai_realtime_voice.bridge.session_setup import (
    async_device_session_config,
)
from custom_components.openai_realtime_voice.const import CONF_LLM_HASS_API, DOMAIN
from custom_components.openai_realtime_voice.realtime import Modality
from tests.agent_helpers import set_settings
from tests.bridge_helpers import bridge_of, bridged, device_state, disconnect

pytestmark = pytest.mark.usefixtures("lights")


async def test_the_session_gets_the_prompt_and_every_tool(
    hass: HomeAssistant, client: TestClient
) -> None:
    """Home Assistant's tools and the device's model-facing MCP tools, in audio mode."""
    device = await bridged(hass, client)
    state = device_state(hass, device)
    bridge = bridge_of(hass, state)
    assert bridge is not None
    config = await async_device_session_config(bridge, bridge.turns, state, bridge.connection)
    names = [tool.name for tool in config.tools]
    assert config.output_modality is Modality.AUDIO
    assert config.instructions
    assert f"{DEVICE_PREFIX}self_audio_speaker_set_volume" in names
    assert "intent__HassTurnOn" in names
    assert state.errors["llm_api"] == 0
    await disconnect(hass, device, state)


async def test_an_unknown_llm_api_still_gives_a_session(
    hass: HomeAssistant, client: TestClient
) -> None:
    """An API that is gone is counted; the session opens with the prompt and device tools."""
    device = await bridged(hass, client)
    state = device_state(hass, device)
    bridge = bridge_of(hass, state)
    assert bridge is not None
    entry = hass.config_entries.async_entries(DOMAIN)[0]
    set_settings(hass, entry, **{CONF_LLM_HASS_API: ["no_such_api"]})
    config = await async_device_session_config(bridge, bridge.turns, state, bridge.connection)
    names = [tool.name for tool in config.tools]
    assert state.errors["llm_api"] == 1
    assert "intent__HassTurnOn" not in names
    assert f"{DEVICE_PREFIX}self_audio_speaker_set_volume" in names
    await disconnect(hass, device, state)
