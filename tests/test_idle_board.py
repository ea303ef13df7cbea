"""Actions on an idle board: a clear error that says why, for every action.

A stock board opens its WebSocket only when it is woken (wake word or button:
`Application::ToggleChatState`, `Application::StartListening` and the wake word handler are
the only callers of `Protocol::OpenAudioChannel`) and sends no keepalive; in auto mode it is
idle only once the channel closed. So nothing can reach an idle board: each action says so,
names the board, and does not start a TTS stream or a pipeline it could never play.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

from aiohttp.test_utils import TestClient
from homeassistant.components.assist_satellite import AssistSatelliteEntityFeature
from homeassistant.const import ATTR_SUPPORTED_FEATURES
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
import pytest

from custom_components.openai_realtime_voice.const import DOMAIN
from realtime_server import RealtimeServer
from simulator.device import DeviceSimulator
from tests.bridge_helpers import bridge_of, bridged, device_state, satellite_id
from tests.device_helpers import device_client, release_devices, wait_until
from tests.pipeline_providers import Providers

IDLE_CALLS: list[tuple[str, str, dict[str, Any]]] = [
    ("assist_satellite", "announce", {"message": "Someone is at the door."}),
    ("assist_satellite", "start_conversation", {"start_message": "Good evening."}),
    ("assist_satellite", "ask_question", {"question": "Lights off?"}),
    (DOMAIN, "speak", {"message": "Someone is at the door."}),
    (DOMAIN, "ask", {"question": "Lights off?"}),
    (DOMAIN, "converse", {"instructions": "Ask about dinner."}),
]


@pytest.fixture
async def client(
    hass: HomeAssistant,
    hass_client_no_auth: Any,
    realtime_server: RealtimeServer,
    providers: Providers,
) -> AsyncGenerator[TestClient]:
    """A loaded entry, the pipeline providers, and an HTTP client for boards."""
    http = await device_client(hass, hass_client_no_auth, realtime_server)
    yield http
    await release_devices(hass, http)


async def idle_board(hass: HomeAssistant, client: TestClient) -> DeviceSimulator:
    """A paired board after its conversation ended: its channel is closed."""
    device = await bridged(hass, client)
    state = device_state(hass, device)
    await device.close_audio_channel()
    await wait_until(lambda: bridge_of(hass, state) is None and not state.connected, state)
    return device


@pytest.mark.parametrize(("domain", "service", "data"), IDLE_CALLS)
async def test_every_action_on_an_idle_board_says_why(
    hass: HomeAssistant,
    client: TestClient,
    providers: Providers,
    *,
    domain: str,
    service: str,
    data: dict[str, Any],
) -> None:
    """The error names the board and the reason, in the integration's translations; no TTS
    stream or pipeline is started for it."""
    device = await idle_board(hass, client)
    entity_id = satellite_id(hass, device.mac)
    with pytest.raises(HomeAssistantError) as err:
        await hass.services.async_call(
            domain,
            service,
            {"entity_id": entity_id, **data},
            blocking=True,
            return_response=service in ("ask", "ask_question"),
        )
    assert err.value.translation_domain == DOMAIN
    assert err.value.translation_key == "device_idle"
    assert err.value.translation_placeholders == {"device": f"bread-compact-wifi ({device.mac})"}
    message = str(err.value)
    assert f"bread-compact-wifi ({device.mac})" in message
    assert "wake word or button" in message
    assert "TTS engine" not in message
    assert providers.tts.messages == []
    assert providers.stt.requests == []
    assert hass.states.get(entity_id).state == "idle"


async def test_satellite_features_are_the_boards_capabilities(
    hass: HomeAssistant, client: TestClient
) -> None:
    """Announcements and started conversations work whenever the board is in a conversation,
    so the satellite keeps both features while it is idle: Home Assistant checks features
    before the entity runs, and a missing one would turn the reason above into "does not
    support" (or skip the board in an area-wide announcement without a word)."""
    device = await idle_board(hass, client)
    features = hass.states.get(satellite_id(hass, device.mac)).attributes[ATTR_SUPPORTED_FEATURES]
    assert features == (
        AssistSatelliteEntityFeature.ANNOUNCE | AssistSatelliteEntityFeature.START_CONVERSATION
    )
