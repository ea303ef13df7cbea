"""Shared fixtures for the OpenAI Realtime Voice tests."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any
from unittest.mock import patch

from aiohttp.test_utils import TestClient
from homeassistant.components import conversation
from homeassistant.components.homeassistant.exposed_entities import async_expose_entity
from homeassistant.const import CONF_API_KEY, Platform
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    MockPlatform,
    mock_platform,
)

# phcc puts its own testing_config/custom_components first on sys.path; importing ours here
# makes Home Assistant's loader find this integration.
import custom_components.openai_realtime_voice  # noqa: F401
from custom_components.openai_realtime_voice.bridge.realtime_engine import RealtimeEngine
from custom_components.openai_realtime_voice.const import CONF_BASE_URL, CONF_DIALECT
from realtime_server import RealtimeServer
from simulator.camera import generated_picture
from tests.agent_helpers import service_entry
from tests.camera_helpers import BROKEN, GARAGE, PORCH, StillCamera
from tests.device_helpers import device_client
from tests.pipeline_providers import Providers, providers_flow, setup_providers


@pytest.fixture
async def home_assistant_core(hass: HomeAssistant, enable_custom_integrations: None) -> None:
    """Load custom integrations and the core integration, as a real installation has them.

    Conversation (our dependency) needs `homeassistant` for exposed entities.
    """
    assert await async_setup_component(hass, "homeassistant", {})


@pytest.fixture
async def realtime_server(socket_enabled: None) -> AsyncGenerator[RealtimeServer]:
    """A started RealtimeServer; fails the test if any protocol violation was recorded."""
    server = RealtimeServer()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
    assert not server.violations, "\n".join(server.violations)


@pytest.fixture(autouse=True)
def _home_assistant_tests(request: pytest.FixtureRequest) -> None:
    """Prepare Home Assistant in the tests that run it; other tests stay free of it."""
    if "hass" in request.fixturenames:
        request.getfixturevalue("home_assistant_core")


def _light(name: str, key: str) -> dict[str, Any]:
    switch = f"input_boolean.{key}"
    return {
        "name": name,
        "unique_id": key,
        "state": f"{{{{ is_state('{switch}', 'on') }}}}",
        "turn_on": {"action": "input_boolean.turn_on", "target": {"entity_id": switch}},
        "turn_off": {"action": "input_boolean.turn_off", "target": {"entity_id": switch}},
    }


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bridges try to reach Realtime again every 50 ms instead of after 5 s and more."""
    monkeypatch.setattr(RealtimeEngine, "retry_delays", (0.05,))


@pytest.fixture
async def lights(hass: HomeAssistant) -> None:
    """Kitchen and bedroom lights (template lights over input booleans), and intents."""
    assert await async_setup_component(hass, "intent", {})
    assert await async_setup_component(
        hass, "input_boolean", {"input_boolean": {"kitchen": {}, "bedroom": {}}}
    )
    assert await async_setup_component(
        hass,
        "template",
        {
            "template": [
                {
                    "light": [
                        _light("Kitchen Lights", "kitchen"),
                        _light("Bedroom Lights", "bedroom"),
                    ]
                }
            ]
        },
    )
    await hass.async_block_till_done()
    for entity_id in ("light.kitchen_lights", "light.bedroom_lights"):
        async_expose_entity(hass, conversation.DOMAIN, entity_id, True)
    for entity_id in ("input_boolean.kitchen", "input_boolean.bedroom"):
        async_expose_entity(hass, conversation.DOMAIN, entity_id, False)


@pytest.fixture
async def entry(
    hass: HomeAssistant,
    realtime_server: RealtimeServer,
    lights: None,
) -> MockConfigEntry:
    """A loaded entry whose agent talks to the local Realtime server."""
    entry = service_entry(
        {
            CONF_API_KEY: realtime_server.api_key,
            CONF_BASE_URL: realtime_server.url,
            CONF_DIALECT: "ga",
        }
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    realtime_server.received.clear()
    return entry


@pytest.fixture
async def client(
    hass: HomeAssistant,
    hass_client_no_auth: Any,
    realtime_server: RealtimeServer,
) -> TestClient:
    """A loaded entry (failed logins counted by HTTP bans) and a client for simulated devices."""
    return await device_client(hass, hass_client_no_auth, realtime_server)


@pytest.fixture
async def demo_home(hass: HomeAssistant) -> None:
    """Demo climate, locks, weather, covers and lights, as the demo integration sets them up."""
    platforms = [Platform.CLIMATE, Platform.LOCK, Platform.WEATHER, Platform.COVER, Platform.LIGHT]
    with patch(
        "homeassistant.components.demo.COMPONENTS_WITH_CONFIG_ENTRY_DEMO_PLATFORM", platforms
    ):
        entry = MockConfigEntry(domain="demo")
        entry.add_to_hass(hass)
        assert await hass.config_entries.async_setup(entry.entry_id)
        await hass.async_block_till_done()


@pytest.fixture
async def cameras(hass: HomeAssistant) -> dict[str, StillCamera]:
    """Two cameras (2000x1500 pictures): the garage one exposed, the porch one not."""
    made = {
        GARAGE: StillCamera("Garage", generated_picture(2000, 1500)),
        PORCH: StillCamera("Porch", generated_picture(2000, 1500)),
        BROKEN: StillCamera("Broken", b""),  # a camera that delivers no picture
    }

    async def setup_platform(hass: HomeAssistant, config: Any, add: Any, info: Any = None) -> None:
        add(list(made.values()))

    mock_platform(hass, "test.camera", MockPlatform(async_setup_platform=setup_platform))
    assert await async_setup_component(hass, "camera", {"camera": {"platform": "test"}})
    await hass.async_block_till_done()
    async_expose_entity(hass, conversation.DOMAIN, GARAGE, True)
    async_expose_entity(hass, conversation.DOMAIN, PORCH, False)
    async_expose_entity(hass, conversation.DOMAIN, BROKEN, True)
    return made


@pytest.fixture
async def providers(
    hass: HomeAssistant, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Providers]:
    """The test STT and TTS entities in the preferred Assist pipeline (the one devices fall back
    to and announcements speak with). Modules that need other entities define their own."""
    with providers_flow():
        yield await setup_providers(hass, tmp_path, monkeypatch)
