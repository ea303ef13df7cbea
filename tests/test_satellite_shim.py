"""The satellite shim: what it relies on in Home Assistant's satellite, checked against the
installed release (these tests fail when a release changes it), and what it does with it."""

from __future__ import annotations

from collections.abc import Callable
import inspect
from typing import Any

from aiohttp.test_utils import TestClient
from homeassistant.components.assist_satellite import (
    AssistSatelliteAnswer,
    AssistSatelliteEntity,
)
from homeassistant.components.assist_satellite.entity import AssistSatelliteState
from homeassistant.core import HomeAssistant
import pytest

from custom_components.openai_realtime_voice.satellite_shim import SatelliteShim
from tests.bridge_helpers import bridged, device_state, disconnect, satellite_of

pytestmark = pytest.mark.usefixtures("lights")

RELIED_ON: dict[str, list[str]] = {
    "_set_state": ["self", "state"],
    "async_internal_announce": [
        "self",
        "message",
        "media_id",
        "preannounce",
        "preannounce_media_id",
    ],
    "async_internal_start_conversation": [
        "self",
        "start_message",
        "start_media_id",
        "extra_system_prompt",
        "preannounce",
        "preannounce_media_id",
    ],
    "async_internal_ask_question": [
        "self",
        "question",
        "question_media_id",
        "preannounce",
        "preannounce_media_id",
        "answers",
    ],
    "_question_response_to_answer": ["self", "response_text", "answers"],
}
"""Home Assistant's satellite methods the shim calls or overrides, with their parameters."""


def contract_breaks(base: type) -> list[str]:
    """How `base` differs from what the shim relies on (empty: it matches)."""
    breaks = []
    for name, parameters in RELIED_ON.items():
        method: Callable[..., Any] | None = getattr(base, name, None)
        if method is None:
            breaks.append(f"{name} is gone")
        elif (found := list(inspect.signature(method).parameters)) != parameters:
            breaks.append(f"{name}({', '.join(found)}) changed")
    return breaks


def test_home_assistant_still_has_what_the_shim_relies_on() -> None:
    """The installed Home Assistant has each method with the parameters the shim passes."""
    assert contract_breaks(AssistSatelliteEntity) == []
    assert isinstance(AssistSatelliteEntity.__dict__["state"], property)


def test_the_contract_check_sees_a_change() -> None:
    """A release that renames a parameter or drops a method is caught."""

    class Renamed(AssistSatelliteEntity):
        async def async_internal_announce(self, text: str | None = None) -> None:  # type: ignore[override]
            """A changed signature."""

    class Dropped:
        pass

    assert contract_breaks(Renamed) == ["async_internal_announce(self, text) changed"]
    assert "_set_state is gone" in contract_breaks(Dropped)


class _Answering(SatelliteShim):
    """A satellite whose Realtime path answers every question with one sentence."""

    def __init__(self, hass: HomeAssistant, sentence: str | None) -> None:
        self.hass = hass
        self.sentence = sentence

    async def async_realtime_ask_question(
        self, question: str | None, question_media_id: str | None
    ) -> str | None:
        return self.sentence

    def async_get_configuration(self) -> Any:
        raise NotImplementedError

    async def async_set_configuration(self, config: Any) -> None:
        raise NotImplementedError

    def on_pipeline_event(self, event: Any) -> None:
        raise NotImplementedError


async def test_a_realtime_answer_is_matched_as_home_assistant_matches(
    hass: HomeAssistant,
) -> None:
    """The transcript goes through Home Assistant's matcher: the answer's id and slots."""
    answers = [
        {"id": "yes", "sentences": ["yes [please]", "sure"]},
        {"id": "later", "sentences": ["in {minutes} minutes"]},
    ]
    satellite = _Answering(hass, "in ten minutes")
    assert await satellite.async_internal_ask_question("When?", answers=answers) == (
        AssistSatelliteAnswer(id="later", sentence="in ten minutes", slots={"minutes": "ten"})
    )
    satellite.sentence = "sure"
    answer = await satellite.async_internal_ask_question("Now?", answers=answers)
    assert answer is not None
    assert answer.id == "yes"
    satellite.sentence = "purple"
    assert await satellite.async_internal_ask_question("Now?", answers=answers) == (
        AssistSatelliteAnswer(id=None, sentence="purple")
    )
    assert await satellite.async_internal_ask_question("Now?") == AssistSatelliteAnswer(
        id=None, sentence="purple"
    )


async def test_the_state_is_written_only_while_the_entity_shows_it(
    hass: HomeAssistant, client: TestClient
) -> None:
    """`shim_set_state` sets the final state; an entity going away writes none."""
    device = await bridged(hass, client)
    state = device_state(hass, device)
    satellite = satellite_of(hass, state)
    assert satellite is not None
    satellite.shim_set_state(AssistSatelliteState.PROCESSING)
    assert hass.states.get(satellite.entity_id).state == "processing"
    home_face, satellite.home.face = satellite.home.face, None  # as while it is removed
    satellite.shim_set_state(AssistSatelliteState.RESPONDING)
    assert satellite.state == "processing"
    assert hass.states.get(satellite.entity_id).state == "processing"
    satellite.home.face = home_face
    await disconnect(hass, device, state)
