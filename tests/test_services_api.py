"""The "Home Assistant services" LLM API against a real Home Assistant with demo entities."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from typing import Any
from unittest.mock import patch

from homeassistant.components.conversation import UserContent, async_get_chat_log
from homeassistant.components.homeassistant.exposed_entities import async_expose_entity
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import Platform
from homeassistant.core import Context, HomeAssistant, ServiceCall, SupportsResponse
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import (
    area_registry as ar,
    chat_session,
    device_registry as dr,
    entity_registry as er,
    floor_registry as fr,
    label_registry as lr,
    llm,
    service as service_helper,
)
from homeassistant.setup import async_setup_component
import probatio
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, MockUser

from custom_components.openai_realtime_voice.const import (
    CONF_SERVICES_ALLOWLIST,
    DEFAULT_SERVICES_ALLOWLIST,
    DOMAIN,
)
from custom_components.openai_realtime_voice.services_api import (
    API_ID,
    API_NAME,
    ServicesAPI,
    agent_allowlist,
    async_register_services_api,
    build_prompt,
    configured_allowlist,
    policy,
)
from custom_components.openai_realtime_voice.services_api.confirm import (
    PendingConfirmations,
    Verdict,
    confirm_key,
)
from custom_components.openai_realtime_voice.services_api.spec import (
    UnsupportedServiceError,
    build_spec,
)

ASSISTANT = "conversation"


@pytest.fixture
async def api(hass: HomeAssistant, demo_home: None) -> AsyncIterator[ServicesAPI]:
    """The services API, registered the way the integration registers it."""
    unregister = async_register_services_api(hass)
    registered = next(a for a in llm.async_get_apis(hass) if a.id == API_ID)
    assert isinstance(registered, ServicesAPI)
    yield registered
    unregister()


@pytest.fixture(autouse=True)
async def _unload_mock_entries(hass: HomeAssistant) -> AsyncIterator[None]:
    """Entries marked loaded by `allow` were never set up: keep HA from unloading them."""
    yield
    for entry in hass.config_entries.async_entries(DOMAIN):
        entry.mock_state(hass, ConfigEntryState.NOT_LOADED)


def allow(hass: HomeAssistant, *entries: str) -> MockConfigEntry:
    """A loaded entry of ours whose options allow these services."""
    entry = MockConfigEntry(domain=DOMAIN, options={CONF_SERVICES_ALLOWLIST: list(entries)})
    entry.add_to_hass(hass)
    entry.mock_state(hass, ConfigEntryState.LOADED)
    return entry


def llm_context(context: Context | None = None) -> llm.LLMContext:
    """The context an agent passes for one request."""
    return llm.LLMContext(
        platform="test",
        context=context or Context(),
        language="en",
        assistant=ASSISTANT,
        device_id=None,
    )


async def instance(hass: HomeAssistant, context: Context | None = None) -> llm.APIInstance:
    """The API instance an agent gets."""
    return await llm.async_get_api(hass, API_ID, llm_context(context))


async def call(
    hass: HomeAssistant, tool_name: str, args: dict[str, Any], context: Context | None = None
) -> llm.ToolResult:
    """Call one tool the way an agent does (arguments validated by the tool's schema)."""
    api_instance = await instance(hass, context)
    return await api_instance.async_call_tool(llm.ToolInput(tool_name=tool_name, tool_args=args))


def tool_names(api_instance: llm.APIInstance) -> set[str]:
    """The names of an instance's tools."""
    return {tool.name for tool in api_instance.tools}


def openapi(tool: llm.Tool) -> dict[str, Any]:
    """A tool's parameters as an agent converts them."""
    result: dict[str, Any] = probatio.to_openapi(
        tool.parameters, custom_serializer=llm.selector_serializer, openapi_version="3.1.0"
    )
    return result


async def put_in_area(hass: HomeAssistant, area_name: str, *entity_ids: str) -> str:
    """Put the devices of these entities in an area (created if needed); return its id."""
    areas = ar.async_get(hass)
    area = areas.async_get_area_by_name(area_name) or areas.async_create(area_name)
    entities = er.async_get(hass)
    devices = dr.async_get(hass)
    for entity_id in entity_ids:
        entry = entities.async_get(entity_id)
        assert entry is not None
        assert entry.device_id is not None
        devices.async_update_device(entry.device_id, area_id=area.id)
    return area.id


# --- registration, options and tools ------------------------------------------------------------


async def test_api_is_registered_and_removable(hass: HomeAssistant, demo_home: None) -> None:
    """The API appears in llm.async_get_apis under our domain's id and goes away on unregister."""
    unregister = async_register_services_api(hass)
    api = next(a for a in llm.async_get_apis(hass) if a.id == API_ID)
    assert api.name == API_NAME == "Home Assistant services"
    assert f"{DOMAIN}.services" == API_ID
    unregister()
    assert API_ID not in {a.id for a in llm.async_get_apis(hass)}


async def test_every_tool_converts_and_is_tagged(hass: HomeAssistant, api: ServicesAPI) -> None:
    """Every generated tool has a JSON schema, a title, annotations and our integration."""
    allow(hass, *DEFAULT_SERVICES_ALLOWLIST, "lock")
    api_instance = await instance(hass)
    names = tool_names(api_instance)
    assert {"climate__set_hvac_mode", "weather__get_forecasts", "lock__unlock"} <= names
    assert "list_exposed_entities" in names
    assert api_instance.custom_serializer is llm.selector_serializer
    for tool in api_instance.tools:
        schema = openapi(tool)
        assert schema["type"] == "object", tool.name
        assert tool.title, tool.name
        assert tool.description, tool.name
        assert tool.integration == DOMAIN
        assert len(tool.name) <= 64

    by_name = {tool.name: tool for tool in api_instance.tools}
    hvac = by_name["climate__set_hvac_mode"]
    assert hvac.title == "Set thermostat HVAC mode"
    assert openapi(hvac)["properties"]["entity_id"]["type"] == "array"
    assert hvac.parameters({"entity_id": "climate.hvac", "hvac_mode": "heat"}) == {
        "entity_id": ["climate.hvac"],
        "hvac_mode": "heat",
    }
    forecasts = by_name["weather__get_forecasts"]
    assert openapi(forecasts)["properties"]["type"]["enum"] == ["daily", "hourly", "twice_daily"]
    assert openapi(forecasts)["required"] == ["type"]
    forecasts.parameters({"entity_id": ["weather.demo_weather_south"], "type": "daily"})
    with pytest.raises(probatio.Invalid):
        forecasts.parameters({"entity_id": ["weather.demo_weather_south"], "type": "weekly"})
    # Section fields (light.turn_on's advanced fields) are flattened into the parameters.
    light_props = openapi(by_name["light__turn_on"])["properties"]
    assert {"brightness_pct", "color_name", "rgbw_color"} <= set(light_props)
    by_name["light__turn_on"].parameters({"entity_id": ["light.bed_light"], "brightness_pct": 40})

    assert forecasts.annotations.read_only
    assert not forecasts.annotations.destructive
    assert by_name["lock__unlock"].annotations.destructive
    assert "confirm" in openapi(by_name["lock__unlock"])["properties"]
    assert by_name["cover__open_cover"].annotations.destructive
    assert not by_name["climate__set_hvac_mode"].annotations.destructive
    assert by_name["climate__set_hvac_mode"].annotations.idempotent
    assert "confirm" not in openapi(hvac)["properties"]

    assert "climate.set_hvac_mode: Set thermostat HVAC mode" in api_instance.api_prompt
    assert len(api_instance.api_prompt) <= 1500


async def test_default_allowlist_without_options(hass: HomeAssistant, api: ServicesAPI) -> None:
    """With no entry options the default applies: climate yes, lock no."""
    names = tool_names(await instance(hass))
    assert "climate__set_hvac_mode" in names
    assert "lock__unlock" not in names
    assert configured_allowlist(hass) == policy.parse_allowlist(DEFAULT_SERVICES_ALLOWLIST)


async def test_other_callers_get_what_every_loaded_entry_allows(
    hass: HomeAssistant, api: ServicesAPI
) -> None:
    """A caller that is not one of our agents gets the intersection of the loaded entries' lists.

    Junk entries and unloaded entries do not count; a domain covers its services.
    """
    allow(hass, "lock.unlock", "  Weather.*  ", "bad entry!", "climate", 42)  # type: ignore[arg-type]
    allow(hass, "climate.set_hvac_mode", "lock", "weather.get_forecasts")
    unloaded = MockConfigEntry(domain=DOMAIN, options={CONF_SERVICES_ALLOWLIST: ["light"]})
    unloaded.add_to_hass(hass)
    assert configured_allowlist(hass) == {
        "lock.unlock",
        "weather.get_forecasts",
        "climate.set_hvac_mode",
    }
    names = tool_names(await instance(hass))
    assert {"lock__unlock", "weather__get_forecasts", "climate__set_hvac_mode"} <= names
    assert "lock__lock" not in names
    assert "climate__set_temperature" not in names
    assert "light__turn_on" not in names


async def test_agent_allowlist_is_its_entrys_own(hass: HomeAssistant, api: ServicesAPI) -> None:
    """Inside `agent_allowlist`, an instance offers what those options allow, nothing more."""
    allow(hass, "lock")
    allow(hass, "light")
    with agent_allowlist({CONF_SERVICES_ALLOWLIST: ["light"]}):
        names = tool_names(await instance(hass))
    assert "light__turn_on" in names
    assert not [name for name in names if name.startswith("lock__")]
    with agent_allowlist({}):  # no allowlist option: the default
        names = tool_names(await instance(hass))
    assert "climate__set_hvac_mode" in names
    assert "lock__unlock" not in names
    # Outside, neither entry's list is widened by the other.
    assert not tool_names(await instance(hass)) - {"list_exposed_entities"}


async def test_only_our_agents_are_offered_the_camera(
    hass: HomeAssistant, api: ServicesAPI
) -> None:
    """`look_at_camera` puts its snapshot into the agent's own Realtime session: only an agent
    of an entry that allows image input is offered it, never another caller (which would be told
    "the snapshot is in the conversation" when it is not)."""
    assert "look_at_camera" not in tool_names(await instance(hass))
    with agent_allowlist({}):  # an entry with image input off
        assert "look_at_camera" not in tool_names(await instance(hass))
    with agent_allowlist({}, image_side=512):
        assert "look_at_camera" in tool_names(await instance(hass))


async def test_denied_services_never_offered(hass: HomeAssistant, api: ServicesAPI) -> None:
    """homeassistant.restart and friends stay out whatever the allowlist says."""
    allow(hass, "homeassistant", "homeassistant.restart", "scene", "light")
    assert await async_setup_component(hass, "scene", {})
    names = tool_names(await instance(hass))
    assert "light__turn_on" in names
    assert not [name for name in names if name.startswith("homeassistant__")]
    assert "scene__apply" not in names
    assert "scene__create" not in names
    assert "scene__reload" not in names
    assert "scene__turn_on" in names
    for denied in ("homeassistant.restart", "shell_command.x", "recorder.purge_entities"):
        assert policy.is_denied(*denied.split("."))
    assert not policy.is_allowed(frozenset({"homeassistant"}), "homeassistant", "restart")


async def test_prompt_stays_within_budget() -> None:
    """Many services: the prompt is cut with "and N more" and stays within budget."""
    specs = [
        build_spec(
            "light",
            f"service_number_{index}",
            {"fields": {}, "name": f"A fairly long service title number {index}"},
            {},
            SupportsResponse.NONE,
        )
        for index in range(200)
    ]
    prompt = build_prompt(specs, budget=1500)
    assert len(prompt) <= 1500
    assert "more" in prompt.splitlines()[-1]
    assert prompt.splitlines()[-1].startswith("... and ")
    assert "No actions" in build_prompt([])
    short = build_prompt(specs[:2])
    assert "more" not in short
    assert "light.service_number_1" in short


# --- calls: exposure, permissions, responses ----------------------------------------------------


async def test_set_hvac_mode_on_exposed_thermostat(hass: HomeAssistant, api: ServicesAPI) -> None:
    """The call runs blocking on an exposed thermostat and reports the new state."""
    result = await call(
        hass, "climate__set_hvac_mode", {"entity_id": "climate.hvac", "hvac_mode": "heat"}
    )
    assert not result.error, result.data
    assert result.data == {
        "success": True,
        "action": "climate.set_hvac_mode",
        "states": {"climate.hvac": "heat"},
    }
    state = hass.states.get("climate.hvac")
    assert state is not None
    assert state.state == "heat"


async def test_unexposed_thermostat_refused(hass: HomeAssistant, api: ServicesAPI) -> None:
    """An unexposed target is refused with a readable error, and nothing changes."""
    async_expose_entity(hass, ASSISTANT, "climate.ecobee", False)
    before = hass.states.get("climate.ecobee")
    assert before is not None
    result = await call(
        hass, "climate__set_hvac_mode", {"entity_id": ["climate.ecobee"], "hvac_mode": "cool"}
    )
    assert result.error
    assert result.data["error"] == "unknown_entity"
    assert "no entity climate.ecobee exposed" in str(result.data["error_text"])
    after = hass.states.get("climate.ecobee")
    assert after is not None
    assert after.state == before.state


@pytest.mark.parametrize(
    ("tool", "args"),
    [
        ("climate__set_hvac_mode", {"hvac_mode": "cool"}),
        # A light service: an existing climate entity would be "cannot be used with" it.
        ("light__turn_on", {}),
        ("lock__unlock", {}),
    ],
)
async def test_hidden_and_missing_entities_answer_alike(
    hass: HomeAssistant, api: ServicesAPI, tool: str, args: dict[str, Any]
) -> None:
    """An unexposed entity and one that does not exist get the same refusal: no probing."""
    allow(hass, *DEFAULT_SERVICES_ALLOWLIST, "lock")
    async_expose_entity(hass, ASSISTANT, "climate.ecobee", False)
    async_expose_entity(hass, ASSISTANT, "lock.kitchen_door", False)
    hidden_id = "lock.kitchen_door" if tool.startswith("lock") else "climate.ecobee"
    missing_id = hidden_id.replace(".", ".no_such_")
    assert hass.states.get(hidden_id) is not None
    hidden = await call(hass, tool, {"entity_id": hidden_id, **args})
    missing = await call(hass, tool, {"entity_id": missing_id, **args})
    assert hidden.error
    assert hidden.data == {
        key: str(value).replace(missing_id, hidden_id) for key, value in missing.data.items()
    }


async def test_area_with_unexposed_entity_refused(hass: HomeAssistant, api: ServicesAPI) -> None:
    """An area target is expanded; one unexposed thermostat in it refuses the whole call."""
    await put_in_area(hass, "Living room", "climate.hvac", "climate.ecobee")
    async_expose_entity(hass, ASSISTANT, "climate.ecobee", False)
    result = await call(
        hass, "climate__set_hvac_mode", {"area_id": "living room", "hvac_mode": "off"}
    )
    assert result.error
    assert result.data["error"] == "not_exposed"
    assert "1 entity in that target is" in str(result.data["error_text"])
    assert "climate.ecobee" not in str(result.data["error_text"])
    state = hass.states.get("climate.hvac")
    assert state is not None
    assert state.state != "off"

    async_expose_entity(hass, ASSISTANT, "climate.ecobee", True)
    result = await call(
        hass, "climate__set_hvac_mode", {"area_id": ["Living room"], "hvac_mode": "off"}
    )
    assert not result.error, result.data
    assert result.data["states"] == {"climate.ecobee": "off", "climate.hvac": "off"}


async def test_area_ignores_entities_the_service_does_not_act_on(
    hass: HomeAssistant, api: ServicesAPI
) -> None:
    """Unexposed lights in the area do not block a thermostat call (HA would not touch them)."""
    area_id = await put_in_area(hass, "Office", "climate.heatpump", "light.bed_light")
    async_expose_entity(hass, ASSISTANT, "light.bed_light", False)
    result = await call(hass, "climate__set_hvac_mode", {"area_id": area_id, "hvac_mode": "off"})
    assert not result.error, result.data
    assert result.data["states"] == {"climate.heatpump": "off"}


async def test_floor_label_device_and_group_targets(hass: HomeAssistant, api: ServicesAPI) -> None:
    """Floors, labels (by name), devices and old-style groups all resolve to exposed entities."""
    floor = fr.async_get(hass).async_create("Ground floor")
    area_id = await put_in_area(hass, "Hall", "climate.hvac")
    ar.async_get(hass).async_update(area_id, floor_id=floor.floor_id)
    result = await call(
        hass, "climate__set_hvac_mode", {"floor_id": "Ground floor", "hvac_mode": "cool"}
    )
    assert result.data["states"] == {"climate.hvac": "cool"}

    label = lr.async_get(hass).async_create("Heating")
    er.async_get(hass).async_update_entity("climate.heatpump", labels={label.label_id})
    result = await call(hass, "climate__set_hvac_mode", {"label_id": "Heating", "hvac_mode": "off"})
    assert result.data["states"] == {"climate.heatpump": "off"}

    entry = er.async_get(hass).async_get("climate.ecobee")
    assert entry is not None
    result = await call(
        hass, "climate__set_hvac_mode", {"device_id": entry.device_id, "hvac_mode": "off"}
    )
    assert result.data["states"] == {"climate.ecobee": "off"}

    await hass.services.async_call(
        "group",
        "set",
        {"object_id": "lights", "entities": ["light.bed_light", "light.kitchen_lights"]},
        blocking=True,
    )
    async_expose_entity(hass, ASSISTANT, "group.lights", False)
    result = await call(hass, "light__turn_off", {"entity_id": "group.lights"})
    assert result.data["error"] == "unknown_entity"
    async_expose_entity(hass, ASSISTANT, "group.lights", True)
    async_expose_entity(hass, ASSISTANT, "light.bed_light", False)
    result = await call(hass, "light__turn_off", {"entity_id": "group.lights"})
    assert result.data["error"] == "not_exposed"  # a member, reached through the group
    assert "1 entity in that target is" in str(result.data["error_text"])
    async_expose_entity(hass, ASSISTANT, "light.bed_light", True)
    result = await call(hass, "light__turn_off", {"entity_id": "group.lights"})
    assert not result.error, result.data
    assert result.data["states"] == {
        "group.lights": "off",
        "light.bed_light": "off",
        "light.kitchen_lights": "off",
    }


@pytest.mark.parametrize(
    ("args", "code"),
    [
        ({"entity_id": "all"}, "target_all_refused"),
        ({}, "no_target"),
        ({"entity_id": "none"}, "no_target"),
        ({"entity_id": "climate.nowhere"}, "unknown_entity"),
        ({"area_id": "Attic"}, "unknown_area"),
        ({"floor_id": "Basement"}, "unknown_floor"),
        ({"label_id": "Nothing"}, "unknown_label"),
        ({"device_id": "0123"}, "unknown_device"),
        ({"entity_id": "light.bed_light"}, "unsupported_target"),
    ],
)
async def test_bad_targets_refused(
    hass: HomeAssistant, api: ServicesAPI, args: dict[str, Any], code: str
) -> None:
    """Every bad target is a readable refusal, never an exception."""
    result = await call(hass, "climate__set_hvac_mode", {**args, "hvac_mode": "heat"})
    assert result.error
    assert result.data["error"] == code
    assert result.data["error_text"]


async def test_area_without_matching_entities(hass: HomeAssistant, api: ServicesAPI) -> None:
    """An area with nothing the service acts on is refused rather than silently doing nothing."""
    area_id = await put_in_area(hass, "Bedroom", "light.bed_light")
    result = await call(hass, "climate__set_hvac_mode", {"area_id": area_id, "hvac_mode": "heat"})
    assert result.data["error"] == "no_matching_entities"


async def test_user_without_permission_refused(
    hass: HomeAssistant, api: ServicesAPI, hass_read_only_user: MockUser
) -> None:
    """A read-only user cannot control the thermostat: refused, readable, nothing changes."""
    result = await call(
        hass,
        "climate__set_hvac_mode",
        {"entity_id": "climate.hvac", "hvac_mode": "off"},
        Context(user_id=hass_read_only_user.id),
    )
    assert result.error
    assert result.data["error"] == "permission_denied"
    assert "climate.hvac" in str(result.data["error_text"])
    state = hass.states.get("climate.hvac")
    assert state is not None
    assert state.state != "off"


async def test_user_policy_per_entity(hass: HomeAssistant, api: ServicesAPI) -> None:
    """A user allowed one thermostat may control it and not the others."""
    user = MockUser().add_to_hass(hass)
    user.mock_policy({"entities": {"entity_ids": {"climate.hvac": True}}})
    context = Context(user_id=user.id)
    allowed = await call(
        hass, "climate__set_hvac_mode", {"entity_id": "climate.hvac", "hvac_mode": "off"}, context
    )
    assert not allowed.error, allowed.data
    refused = await call(
        hass,
        "climate__set_hvac_mode",
        {"entity_id": "climate.ecobee", "hvac_mode": "off"},
        context,
    )
    assert refused.data["error"] == "permission_denied"


async def test_unknown_user_refused(hass: HomeAssistant, api: ServicesAPI) -> None:
    """A context naming a user that does not exist is refused."""
    result = await call(
        hass,
        "climate__set_hvac_mode",
        {"entity_id": "climate.hvac", "hvac_mode": "off"},
        Context(user_id="no-such-user"),
    )
    assert result.data["error"] == "unknown_user"


async def test_weather_forecast_returns_data(hass: HomeAssistant, api: ServicesAPI) -> None:
    """A response-only service returns its data to the model."""
    allow(hass, "weather")
    async_expose_entity(hass, ASSISTANT, "weather.demo_weather_south", True)
    result = await call(
        hass,
        "weather__get_forecasts",
        {"entity_id": "weather.demo_weather_south", "type": "daily"},
    )
    assert not result.error, result.data
    response = result.data["response"]
    assert isinstance(response, dict)
    forecast = response["weather.demo_weather_south"]
    assert isinstance(forecast, dict)
    assert isinstance(forecast["forecast"], list)
    assert forecast["forecast"]


# --- confirmation ------------------------------------------------------------------------------


async def test_unlock_needs_confirmation(hass: HomeAssistant, api: ServicesAPI) -> None:
    """lock.unlock: the first call asks, a confirm without a request asks, the second runs."""
    allow(hass, "lock")
    async_expose_entity(hass, ASSISTANT, "lock.front_door", True)
    args = {"entity_id": "lock.front_door"}

    with (
        chat_session.async_get_chat_session(hass) as session,
        async_get_chat_log(hass, session) as chat_log,
    ):
        conversation_id = session.conversation_id
        chat_log.async_add_user_content(UserContent("unlock the front door"))
        early = await call(hass, "lock__unlock", {**args, "confirm": True})
        assert not early.error
        assert early.data["status"] == "confirmation_required"
        assert hass.states.get("lock.front_door").state == "locked"  # type: ignore[union-attr]

        asked = await call(hass, "lock__unlock", args)
        assert not asked.error
        assert asked.data["status"] == "confirmation_required"
        assert asked.data["targets"] == ["Front Door"]
        assert "confirm: true" in str(asked.data["message"])
        assert hass.states.get("lock.front_door").state == "locked"  # type: ignore[union-attr]
        chat_log.async_add_user_content(UserContent("yes"))

    # Another conversation cannot use this request, however much its user has said.
    with (
        chat_session.async_get_chat_session(hass) as other,
        async_get_chat_log(hass, other) as other_log,
    ):
        for text in ("yes", "yes!"):
            other_log.async_add_user_content(UserContent(text))
        stolen = await call(hass, "lock__unlock", {**args, "confirm": True})
        assert stolen.data.get("status") == "confirmation_required"

    with (
        chat_session.async_get_chat_session(hass, conversation_id) as session,
        async_get_chat_log(hass, session),
    ):
        done = await call(hass, "lock__unlock", {**args, "confirm": True})
    assert not done.error, done.data
    assert done.data["success"] is True
    assert hass.states.get("lock.front_door").state == "unlocked"  # type: ignore[union-attr]


async def test_confirmation_outside_a_chat_log_keeps_waiting(
    hass: HomeAssistant, api: ServicesAPI
) -> None:
    """No chat log, so no count of the user's turns: a confirmation never runs the call."""
    allow(hass, "lock")
    async_expose_entity(hass, ASSISTANT, "lock.front_door", True)
    context = Context()
    args = {"entity_id": "lock.front_door"}
    asked = await call(hass, "lock__unlock", args, context)
    assert asked.data["status"] == "confirmation_required"
    for _ in range(3):
        again = await call(hass, "lock__unlock", {**args, "confirm": True}, context)
        assert again.data["status"] == "confirmation_required"
    assert hass.states.get("lock.front_door").state == "locked"  # type: ignore[union-attr]


async def test_unlock_unexposed_refused_before_asking(
    hass: HomeAssistant, api: ServicesAPI
) -> None:
    """An unexposed lock is refused outright (no confirmation dance)."""
    allow(hass, "lock")
    result = await call(hass, "lock__unlock", {"entity_id": "lock.kitchen_door"})
    assert result.data["error"] == "unknown_entity"


async def test_confirmation_waits_for_the_user_in_a_chat(
    hass: HomeAssistant, api: ServicesAPI
) -> None:
    """In a chat, confirm only counts once the user has spoken after the question."""
    allow(hass, "lock")
    async_expose_entity(hass, ASSISTANT, "lock.front_door", True)
    async_expose_entity(hass, ASSISTANT, "lock.openable_lock", True)
    args = {"entity_id": "lock.front_door"}
    with (
        chat_session.async_get_chat_session(hass) as session,
        async_get_chat_log(hass, session) as chat_log,
    ):
        chat_log.async_add_user_content(UserContent("unlock the front door"))
        asked = await call(hass, "lock__unlock", args)
        assert asked.data["status"] == "confirmation_required"
        # The model confirms on its own: still waiting for the user.
        hasty = await call(hass, "lock__unlock", {**args, "confirm": True})
        assert hasty.data["status"] == "confirmation_required"
        chat_log.async_add_user_content(UserContent("yes"))
        # A confirmation for a different lock does not count.
        wrong = await call(
            hass, "lock__unlock", {"entity_id": "lock.openable_lock", "confirm": True}
        )
        assert wrong.data["status"] == "confirmation_required"
        done = await call(hass, "lock__unlock", {**args, "confirm": True})
        assert done.data["success"] is True
    assert hass.states.get("lock.front_door").state == "unlocked"  # type: ignore[union-attr]


async def test_garage_cover_needs_confirmation_window_does_not(
    hass: HomeAssistant, api: ServicesAPI
) -> None:
    """Opening a garage door is confirmed first; opening a window is not."""
    window = await call(hass, "cover__open_cover", {"entity_id": "cover.kitchen_window"})
    assert window.data["success"] is True
    garage = await call(hass, "cover__open_cover", {"entity_id": "cover.garage_door"})
    assert garage.data["status"] == "confirmation_required"
    assert hass.states.get("cover.garage_door").state == "closed"  # type: ignore[union-attr]


def test_pending_confirmations_expire_and_are_bounded() -> None:
    """Requests expire after the TTL, the oldest go first beyond the bound, and run once."""
    clock = [datetime(2026, 1, 1)]  # noqa: DTZ001 - a fake clock only compared to itself
    pending = PendingConfirmations(ttl=timedelta(minutes=5), max_pending=2, now=lambda: clock[0])
    first = confirm_key("c1", "lock__unlock", {"entity_id": ["lock.a"], "confirm": True})
    assert first == confirm_key("c1", "lock__unlock", {"entity_id": ["lock.a"]})
    pending.request(first, None)
    clock[0] += timedelta(minutes=6)
    assert pending.confirm(first, None) is Verdict.NOT_REQUESTED

    pending.request(first, 1)
    assert pending.confirm(first, 1) is Verdict.AWAITING_USER
    assert pending.confirm(first, 2) is Verdict.CONFIRMED
    assert pending.confirm(first, 3) is Verdict.NOT_REQUESTED

    keys = [confirm_key("c", "t", {"n": n}) for n in range(3)]
    for key in keys:
        pending.request(key, 0)
    assert len(pending) == 2
    assert pending.confirm(keys[0], 1) is Verdict.NOT_REQUESTED
    assert pending.confirm(keys[2], 1) is Verdict.CONFIRMED


def test_pending_confirmations_wait_when_turns_are_unknown() -> None:
    """An unknown count of user turns, at the request or at the confirmation, keeps waiting."""
    pending = PendingConfirmations()
    key = confirm_key("c1", "lock__unlock", {"entity_id": ["lock.a"]})
    pending.request(key, None)
    assert pending.confirm(key, None) is Verdict.AWAITING_USER
    assert pending.confirm(key, 5) is Verdict.AWAITING_USER
    pending.request(key, 1)
    assert pending.confirm(key, None) is Verdict.AWAITING_USER
    assert pending.confirm(key, 2) is Verdict.CONFIRMED


class _Dialogue:
    """A spoken conversation on a fake clock: when the question ended, when the answer began."""

    def __init__(self) -> None:
        self.now = 10.0
        self.question: tuple[float, float] | None = None
        self.answer: float | None = None

    def mark(self) -> float:
        return self.now

    def answered_after(self, mark: float) -> bool:
        return (
            self.question is not None
            and self.question[0] > mark
            and self.answer is not None
            and self.answer > self.question[1]
        )


def test_spoken_confirmation_needs_an_answer_after_the_question() -> None:
    """Spoken: a new turn is not enough, it must start after a question that followed the
    request had played whole; a request and a confirmation from different kinds of
    conversation never match."""
    pending = PendingConfirmations()
    key = confirm_key("c1", "lock__unlock", {"entity_id": ["lock.a"]})
    dialogue = _Dialogue()
    pending.request(key, 1, dialogue)
    dialogue.answer = 10.5  # a "thanks" said before any question
    assert pending.confirm(key, 2, dialogue) is Verdict.AWAITING_USER
    dialogue.question = (11.0, 12.0)
    assert pending.confirm(key, 2, dialogue) is Verdict.AWAITING_USER
    assert pending.confirm(key, 2, None) is Verdict.AWAITING_USER  # typed: not this dialogue
    dialogue.answer = 12.3
    assert pending.confirm(key, 1, dialogue) is Verdict.AWAITING_USER  # no new turn counted
    assert pending.confirm(key, 2, dialogue) is Verdict.CONFIRMED

    pending.request(key, 1)  # typed
    assert pending.confirm(key, 2, dialogue) is Verdict.AWAITING_USER


# --- services of our own making: scripts, entity fields, failures --------------------------------


async def test_scripts_follow_their_exposure(hass: HomeAssistant, api: ServicesAPI) -> None:
    """A script's own service is offered and runs only while the script is exposed."""
    assert await async_setup_component(
        hass,
        "script",
        {
            "script": {
                "heat_up": {
                    "alias": "Heat up",
                    "sequence": [
                        {
                            "action": "climate.set_hvac_mode",
                            "target": {"entity_id": "climate.hvac"},
                            "data": {"hvac_mode": "heat"},
                        }
                    ],
                }
            }
        },
    )
    async_expose_entity(hass, ASSISTANT, "script.heat_up", True)
    api_instance = await instance(hass)
    assert "script__heat_up" in tool_names(api_instance)
    result = await call(hass, "script__heat_up", {})
    assert not result.error, result.data
    assert hass.states.get("climate.hvac").state == "heat"  # type: ignore[union-attr]

    async_expose_entity(hass, ASSISTANT, "script.heat_up", False)
    assert "script__heat_up" not in tool_names(await instance(hass))
    # A stale tool list (fetched while it was exposed) is still checked at call time.
    result = await api_instance.async_call_tool(
        llm.ToolInput(tool_name="script__heat_up", tool_args={})
    )
    assert result.data["error"] == "not_exposed"


def register_test_service(
    hass: HomeAssistant,
    name: str,
    handler: Callable[[ServiceCall], Any],
    fields: dict[str, Any],
    supports_response: SupportsResponse = SupportsResponse.NONE,
) -> None:
    """A service in the test domain `testsvc`, with a description like a services.yaml one."""
    hass.services.async_register("testsvc", name, handler, supports_response=supports_response)
    service_helper.async_set_service_schema(
        hass, "testsvc", name, {"name": name.title(), "fields": fields}
    )


async def test_entity_fields_are_checked(hass: HomeAssistant, api: ServicesAPI) -> None:
    """An entity named in a field (not the target) must be exposed too."""
    allow(hass, "testsvc")
    seen: list[dict[str, Any]] = []

    async def link(call: ServiceCall) -> None:
        seen.append(dict(call.data))

    register_test_service(hass, "link", link, {"other": {"selector": {"entity": {}}}})
    hass.services.async_register("testsvc", "anything", link)
    service_helper.async_set_service_schema(
        hass, "testsvc", "anything", {"fields": {}, "target": {}}
    )
    any_target = await call(hass, "testsvc__anything", {"entity_id": "light.bed_light"})
    assert any_target.data["success"] is True
    no_field = await call(hass, "testsvc__link", {})
    assert no_field.data["success"] is True
    seen.clear()
    async_expose_entity(hass, ASSISTANT, "climate.ecobee", False)
    refused = await call(hass, "testsvc__link", {"other": "climate.ecobee"})
    assert refused.data["error"] == "unknown_entity"
    missing = await call(hass, "testsvc__link", {"other": "climate.gone"})
    assert missing.data["error"] == "unknown_entity"
    done = await call(hass, "testsvc__link", {"other": "climate.hvac"})
    assert done.data["success"] is True
    assert done.data["states"] == {"climate.hvac": "cool"}
    assert seen == [{"other": "climate.hvac"}]


async def test_services_we_cannot_vet_are_not_offered(
    hass: HomeAssistant, api: ServicesAPI
) -> None:
    """Area/device selector fields, clashing fields and unknown selectors are left out."""
    allow(hass, "testsvc")

    async def noop(call: ServiceCall) -> None:
        return None

    register_test_service(hass, "by_area", noop, {"where": {"selector": {"area": {}}}})
    register_test_service(hass, "weird", noop, {"x": {"selector": {"no_such_selector": {}}}})
    register_test_service(hass, "plain", noop, {"note": {"example": '{"days": 2}'}})
    hass.services.async_register("testsvc", "clash", noop)
    service_helper.async_set_service_schema(
        hass,
        "testsvc",
        "clash",
        {"fields": {"entity_id": {"selector": {"text": {}}}}, "target": {"entity": {}}},
    )
    names = tool_names(await instance(hass))
    assert "testsvc__plain" in names
    assert not {"testsvc__by_area", "testsvc__weird", "testsvc__clash"} & names
    plain = next(t for t in (await instance(hass)).tools if t.name == "testsvc__plain")
    assert openapi(plain)["properties"]["note"]["type"] == "object"
    with pytest.raises(UnsupportedServiceError):
        build_spec(
            "x", "y", {"fields": {"a": {"selector": {"floor": {}}}}}, {}, SupportsResponse.NONE
        )


async def test_service_failures_become_readable_errors(
    hass: HomeAssistant, demo_home: None
) -> None:
    """Timeouts, HA errors, schema errors, admin-only services and vanished services."""
    api = ServicesAPI(hass, call_timeout=0.05)
    unregister = llm.async_register_api(hass, api)
    allow(hass, "testsvc")
    never = asyncio.Event()

    async def hang(call: ServiceCall) -> None:
        await never.wait()

    async def fail(call: ServiceCall) -> None:
        raise HomeAssistantError("the device is offline")

    async def answer(call: ServiceCall) -> dict[str, Any]:
        return {"when": datetime(2026, 5, 1, 12, 0), "ok": True}  # noqa: DTZ001

    register_test_service(hass, "hang", hang, {})
    register_test_service(hass, "fail", fail, {})
    register_test_service(hass, "answer", answer, {}, SupportsResponse.OPTIONAL)
    hass.services.async_register(
        "testsvc", "strict", fail, schema=probatio.Schema({probatio.Required("level"): int})
    )
    service_helper.async_set_service_schema(
        hass, "testsvc", "strict", {"fields": {"level": {"selector": {"text": {}}}}}
    )
    service_helper.async_register_admin_service(hass, "testsvc", "admin", fail)
    service_helper.async_set_service_schema(hass, "testsvc", "admin", {"fields": {}})
    register_test_service(hass, "vanishing", fail, {})

    api_instance = await instance(hass)
    hass.services.async_remove("testsvc", "vanishing")

    async def run(name: str, args: dict[str, Any], context: Context | None = None) -> Any:
        result = await api_instance.async_call_tool(llm.ToolInput(tool_name=name, tool_args=args))
        return result.data

    assert (await run("testsvc__hang", {}))["error"] == "timeout"
    failed = await run("testsvc__fail", {})
    assert failed == {"error": "failed", "error_text": "the device is offline"}
    assert (await run("testsvc__strict", {"level": "high"}))["error"] == "invalid_arguments"
    assert (await run("testsvc__vanishing", {}))["error"] == "service_not_found"
    answered = await run("testsvc__answer", {})
    assert answered["response"] == {"when": "2026-05-01T12:00:00", "ok": True}

    user = MockUser().add_to_hass(hass)
    admin_only = await llm.async_get_api(hass, API_ID, llm_context(Context(user_id=user.id)))
    result = await admin_only.async_call_tool(
        llm.ToolInput(tool_name="testsvc__admin", tool_args={})
    )
    assert result.data["error"] == "permission_denied"
    unregister()


async def test_target_filters_by_integration_and_device_class(
    hass: HomeAssistant, api: ServicesAPI
) -> None:
    """A target filter naming an integration and device class admits only matching entities."""
    allow(hass, "testsvc")
    seen: list[list[str]] = []

    async def record(call: ServiceCall) -> None:
        seen.append(call.data["entity_id"])

    hass.services.async_register("testsvc", "garage", record)
    service_helper.async_set_service_schema(
        hass,
        "testsvc",
        "garage",
        {
            "fields": {},
            "target": {
                "entity": {"integration": "demo", "domain": "cover", "device_class": "garage"}
            },
        },
    )
    hass.services.async_register("testsvc", "elsewhere", record)
    service_helper.async_set_service_schema(
        hass,
        "testsvc",
        "elsewhere",
        {"fields": {}, "target": {"entity": [{"integration": "other"}]}},
    )
    hass.states.async_set("cover.unregistered", "closed", {"device_class": "garage"})
    async_expose_entity(hass, ASSISTANT, "cover.unregistered", True)

    window = await call(hass, "testsvc__garage", {"entity_id": "cover.kitchen_window"})
    assert window.data["error"] == "unsupported_target"
    unregistered = await call(hass, "testsvc__garage", {"entity_id": "cover.unregistered"})
    assert unregistered.data["error"] == "unsupported_target"
    garage = await call(hass, "testsvc__garage", {"entity_id": "cover.garage_door"})
    assert garage.data["success"] is True
    other = await call(hass, "testsvc__elsewhere", {"entity_id": "cover.garage_door"})
    assert other.data["error"] == "unsupported_target"
    assert seen == [["cover.garage_door"]]

    async def explode(call: ServiceCall) -> None:
        raise KeyError("bug in an integration")

    register_test_service(hass, "explode", explode, {})
    broken = await call(hass, "testsvc__explode", {})
    assert broken.data["error"] == "failed"
    assert "unexpected error" in str(broken.data["error_text"])


def test_spec_tolerates_odd_descriptions() -> None:
    """Junk fields are skipped, non-JSON examples stay strings, titles fall back to the name."""
    spec = build_spec(
        "demo",
        "odd",
        {
            "fields": {
                "junk": "not a field",
                "period": {"example": "{not json"},
                "note": {"example": "plain words"},
                "section": {"fields": {"inner": {"selector": {"boolean": {}}}}},
            },
            "target": {"entity": "junk"},
        },
        {},
        SupportsResponse.OPTIONAL,
    )
    assert spec.title == "demo.odd"
    assert spec.target_filters == ()
    properties = openapi_schema(spec.parameters)["properties"]
    assert properties["period"] == {"type": "string"}
    assert properties["note"] == {"type": "string"}
    assert properties["inner"] == {"type": "boolean"}
    assert "junk" not in properties
    assert not spec.annotations.read_only
    mapped = build_spec(
        "demo", "m", {"target": {"entity": {"domain": "light"}}}, {}, SupportsResponse.NONE
    )
    assert [f.domains for f in mapped.target_filters] == [frozenset({"light"})]


def openapi_schema(schema: Any) -> dict[str, Any]:
    """A schema as an agent converts it."""
    result: dict[str, Any] = probatio.to_openapi(
        schema, custom_serializer=llm.selector_serializer, openapi_version="3.1.0"
    )
    return result


async def test_confirmation_without_context_uses_the_chat(
    hass: HomeAssistant, api: ServicesAPI
) -> None:
    """No request context: the chat session ties the confirmation to its request."""
    allow(hass, "lock")
    async_expose_entity(hass, ASSISTANT, "lock.front_door", True)
    context = llm.LLMContext(
        platform="test", context=None, language="en", assistant=ASSISTANT, device_id="dev-1"
    )
    api_instance = await llm.async_get_api(hass, API_ID, context)
    args = {"entity_id": "lock.front_door"}
    with (
        chat_session.async_get_chat_session(hass) as session,
        async_get_chat_log(hass, session) as chat_log,
    ):
        asked = await api_instance.async_call_tool(llm.ToolInput("lock__unlock", dict(args)))
        assert asked.data["status"] == "confirmation_required"
        chat_log.async_add_user_content(UserContent("yes"))
        done = await api_instance.async_call_tool(
            llm.ToolInput("lock__unlock", {**args, "confirm": True})
        )
    assert done.data["success"] is True


# --- the entity finder --------------------------------------------------------------------------


async def test_list_exposed_entities(hass: HomeAssistant, api: ServicesAPI) -> None:
    """The finder lists exposed entities only, filtered by domain, area and name."""
    den = await put_in_area(hass, "Den", "climate.hvac", "climate.ecobee")
    async_expose_entity(hass, ASSISTANT, "climate.ecobee", False)
    registry = er.async_get(hass)
    own = registry.async_get_or_create(
        "sensor", "test", "den-1", suggested_object_id="den_air", original_name="Den air"
    )
    registry.async_update_entity(own.entity_id, area_id=den)
    hass.states.async_set(own.entity_id, "21", {"friendly_name": "Den air"})
    async_expose_entity(hass, ASSISTANT, own.entity_id, True)
    result = await call(hass, "list_exposed_entities", {"domain": "climate"})
    ids = [item["entity_id"] for item in result.data["entities"]]  # type: ignore[index,union-attr]
    assert ids == ["climate.heatpump", "climate.hvac"]
    in_den = await call(hass, "list_exposed_entities", {"area": "den"})
    assert in_den.data["entities"] == [
        {"entity_id": "climate.hvac", "name": "Hvac", "state": "cool", "area": "Den"},
        {"entity_id": "sensor.den_air", "name": "Den air", "state": "21", "area": "Den"},
    ]
    by_name = await call(hass, "list_exposed_entities", {"name": "heat"})
    assert [e["entity_id"] for e in by_name.data["entities"]] == ["climate.heatpump"]  # type: ignore[index,union-attr]
    unknown = await call(hass, "list_exposed_entities", {"area": "Moon"})
    assert unknown.data["error"] == "unknown_area"
    bad = await call(hass, "list_exposed_entities", {"colour": "red"})
    assert bad.data["error"] == "invalid_arguments"


async def test_arguments_are_validated(hass: HomeAssistant, api: ServicesAPI) -> None:
    """Arguments outside the tool's schema are refused before anything is resolved."""
    unknown_key = await call(
        hass, "climate__set_hvac_mode", {"entity_id": "climate.hvac", "colour": "red"}
    )
    assert unknown_key.data["error"] == "invalid_arguments"
    weather = await call(hass, "light__turn_on", {"entity_id": "light.bed_light", "flash": "x"})
    assert weather.data["error"] == "invalid_arguments"


async def test_list_exposed_entities_is_capped(hass: HomeAssistant, api: ServicesAPI) -> None:
    """More than 100 matches: the list is cut and says how many were left out."""
    for index in range(105):
        hass.states.async_set(f"sensor.probe_{index:03}", "1")
        async_expose_entity(hass, ASSISTANT, f"sensor.probe_{index:03}", True)
    result = await call(hass, "list_exposed_entities", {"domain": "sensor"})
    assert len(result.data["entities"]) == 100  # type: ignore[arg-type]
    assert result.data["truncated"] == 5


# --- media that names an entity ----------------------------------------------------------------


@pytest.fixture
async def demo_media(hass: HomeAssistant) -> AsyncIterator[ServicesAPI]:
    """Demo media players and cameras, and the services API allowing media players."""
    with patch(
        "homeassistant.components.demo.COMPONENTS_WITH_CONFIG_ENTRY_DEMO_PLATFORM",
        [Platform.MEDIA_PLAYER, Platform.CAMERA],
    ):
        entry = MockConfigEntry(domain="demo")
        entry.add_to_hass(hass)
        assert await hass.config_entries.async_setup(entry.entry_id)
        await hass.async_block_till_done()
    unregister = async_register_services_api(hass)
    allow(hass, "media_player")
    async_expose_entity(hass, ASSISTANT, "media_player.living_room", True)
    async_expose_entity(hass, ASSISTANT, "camera.demo_camera", False)
    yield next(a for a in llm.async_get_apis(hass) if isinstance(a, ServicesAPI))
    unregister()


async def test_media_source_naming_an_entity_needs_it_exposed(
    hass: HomeAssistant, demo_media: ServicesAPI
) -> None:
    """An unexposed camera cannot be played on an exposed player through its media-source id."""

    def play(media_id: str) -> dict[str, Any]:
        return {
            "entity_id": "media_player.living_room",
            "media": {
                "entity_id": "media_player.living_room",
                "media_content_id": media_id,
                "media_content_type": "image/jpeg",
            },
        }

    def playing() -> Any:
        return hass.states.get("media_player.living_room").attributes.get("media_content_id")  # type: ignore[union-attr]

    before = playing()
    hidden = await call(
        hass, "media_player__play_media", play("media-source://camera/camera.demo_camera")
    )
    assert hidden.error
    assert hidden.data["error"] == "unknown_entity", hidden.data
    missing = await call(
        hass, "media_player__play_media", play("media-source://camera/camera.nowhere")
    )
    assert (
        str(missing.data["error_text"]).replace("camera.nowhere", "camera.demo_camera")
        == (hidden.data["error_text"])
    )
    # Written differently, it is still the camera.
    shouted = await call(
        hass, "media_player__play_media", play(" MEDIA-SOURCE://Camera/camera.demo_camera")
    )
    assert shouted.data["error"] == "unknown_entity"
    recording = await call(
        hass, "media_player__play_media", play("media-source://nest/device/event")
    )
    assert recording.data["error"] == "media_refused"
    await hass.async_block_till_done()
    assert playing() == before

    async_expose_entity(hass, ASSISTANT, "camera.demo_camera", True)
    shown = await call(
        hass, "media_player__play_media", play("media-source://camera/camera.demo_camera")
    )
    assert not shown.error, shown.data
    await hass.async_block_till_done()
    assert playing() == "media-source://camera/camera.demo_camera"
    music = await call(hass, "media_player__play_media", play("media-source://radio_browser/abc"))
    assert not music.error, music.data


async def test_browse_media_is_not_offered(hass: HomeAssistant, demo_media: ServicesAPI) -> None:
    """Browsing lists every media source, hidden cameras included: it is never offered."""
    names = tool_names(await instance(hass))
    assert "media_player__play_media" in names
    assert "media_player__browse_media" not in names
    assert policy.is_denied("media_player", "browse_media")
