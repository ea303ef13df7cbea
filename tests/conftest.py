"""Shared fixtures for the OpenAI Realtime Voice tests."""

from __future__ import annotations

from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
import pytest

# phcc puts its own testing_config/custom_components first on sys.path; importing ours here
# makes Home Assistant's loader find this integration.
import custom_components.openai_realtime  # noqa: F401


@pytest.fixture
async def home_assistant_core(hass: HomeAssistant, enable_custom_integrations: None) -> None:
    """Load custom integrations and the core integration, as a real installation has them.

    Conversation (our dependency) needs `homeassistant` for exposed entities.
    """
    assert await async_setup_component(hass, "homeassistant", {})


@pytest.fixture(autouse=True)
def _home_assistant_tests(request: pytest.FixtureRequest) -> None:
    """Prepare Home Assistant in the tests that run it; other tests stay free of it."""
    if "hass" in request.fixturenames:
        request.getfixturevalue("home_assistant_core")


from tests.realtime_server import realtime_server  # noqa: E402, F401 - shared fixture
