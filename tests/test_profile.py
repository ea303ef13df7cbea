"""Per-device profiles: editing them in the UI and what a device's session gets."""

from __future__ import annotations

from homeassistant.config_entries import ConfigSubentryData
from homeassistant.const import CONF_API_KEY
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType, InvalidData
from homeassistant.helpers import area_registry as ar, device_registry as dr
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.openai_realtime_voice.agents import agent_settings
from custom_components.openai_realtime_voice.const import (
    CONF_BASE_URL,
    CONF_DEVICE_USER,
    CONF_DIALECT,
    CONF_GREETING,
    CONF_PROMPT,
    CONF_VAD_SILENCE_DURATION_MS,
    CONF_VAD_THRESHOLD,
    CONF_VOICE,
    DOMAIN,
)
from custom_components.openai_realtime_voice.profile import (
    CONF_AREA,
    CONF_EXTRA_INSTRUCTIONS,
    CONF_LANGUAGE,
    CONF_PROFILE,
    CONF_USER,
    effective_options,
)
from realtime_server import RealtimeServer
from tests.agent_helpers import agent_of, service_entry

MAC = "aa:bb:cc:dd:ee:01"


@pytest.fixture
async def device_entry(hass: HomeAssistant, realtime_server: RealtimeServer) -> MockConfigEntry:
    """A loaded entry with one paired device."""
    entry = service_entry(
        {
            CONF_API_KEY: realtime_server.api_key,
            CONF_BASE_URL: realtime_server.url,
            CONF_DIALECT: "ga",
        },
        devices=[
            ConfigSubentryData(
                subentry_type="device",
                title="Kitchen box",
                unique_id=MAC,
                data={
                    "mac": MAC,
                    "client_id": "c0ffee00-0000-4000-8000-000000000001",
                    "board": "esp-box-3",
                    "firmware": "2.4.2",
                    "token_hash": "0" * 64,
                },
            )
        ],
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return entry


def _subentry(entry: MockConfigEntry):
    return next(s for s in entry.subentries.values() if s.subentry_type == "device")


async def test_profile_is_saved_and_the_area_set(
    hass: HomeAssistant, device_entry: MockConfigEntry
) -> None:
    """A valid profile is stored on the device's subentry; its area goes to the registry."""
    kitchen = ar.async_get(hass).async_create("Kitchen")
    subentry = _subentry(device_entry)
    user = await hass.auth.async_create_user("Kid")
    result = await device_entry.start_subentry_reconfigure_flow(hass, subentry.subentry_id)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "reconfigure"
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"],
        {
            CONF_VOICE: "coral",
            CONF_EXTRA_INSTRUCTIONS: "You are in the {{ area }}.",
            CONF_LANGUAGE: "de",
            CONF_VAD_THRESHOLD: 0.7,
            CONF_VAD_SILENCE_DURATION_MS: 900,
            CONF_GREETING: "",
            CONF_USER: user.id,
            CONF_AREA: kitchen.id,
        },
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    profile = _subentry(device_entry).data[CONF_PROFILE]
    assert profile == {
        CONF_VOICE: "coral",
        CONF_EXTRA_INSTRUCTIONS: "You are in the {{ area }}.",
        CONF_LANGUAGE: "de",
        CONF_VAD_THRESHOLD: 0.7,
        CONF_VAD_SILENCE_DURATION_MS: 900,
        CONF_USER: user.id,
    }
    device = dr.async_get(hass).async_get_device_by_identifier((DOMAIN, MAC), device_entry.entry_id)
    assert device is not None
    assert device.area_id == kitchen.id
    # The pairing data is kept.
    assert _subentry(device_entry).data["token_hash"] == "0" * 64

    options = effective_options(hass, device_entry, _subentry(device_entry))
    assert options[CONF_VOICE] == "coral"
    assert options[CONF_VAD_THRESHOLD] == 0.7
    assert options[CONF_VAD_SILENCE_DURATION_MS] == 900
    assert options[CONF_LANGUAGE] == "de"
    assert options[CONF_DEVICE_USER] == user.id
    assert options[CONF_PROMPT].startswith(agent_of(device_entry).data[CONF_PROMPT])
    assert "You are in the Kitchen." in options[CONF_PROMPT]
    assert "'de'" in options[CONF_PROMPT]

    # The form shows the stored profile and the device's area next time.
    result = await device_entry.start_subentry_reconfigure_flow(hass, subentry.subentry_id)
    suggested = {
        str(key): key.description["suggested_value"]
        for key in result["data_schema"].schema
        if key.description and "suggested_value" in key.description
    }
    assert suggested[CONF_VOICE] == "coral"
    assert suggested[CONF_AREA] == kitchen.id


def _field(result: dict, name: str):
    return next((key, value) for key, value in result["data_schema"].schema.items() if key == name)


async def test_unset_fields_look_unset_and_the_camera_follows(
    hass: HomeAssistant, device_entry: MockConfigEntry
) -> None:
    """Unset means "the service's setting": no slider at 0, no camera switch showing Off."""
    subentry = _subentry(device_entry)
    result = await device_entry.start_subentry_reconfigure_flow(hass, subentry.subentry_id)
    for name in (CONF_VAD_THRESHOLD, CONF_VAD_SILENCE_DURATION_MS):
        key, selector = _field(result, name)
        assert selector.config["mode"] == "box", name  # an empty box, where a slider shows 0
        assert not key.description or "suggested_value" not in key.description
    key, selector = _field(result, "camera")
    assert selector.config["options"] == ["follow", "off"]
    assert key.default() == "follow"

    for shown, stored in (("off", {"camera": False}), ("follow", {})):
        result = await device_entry.start_subentry_reconfigure_flow(hass, subentry.subentry_id)
        result = await hass.config_entries.subentries.async_configure(
            result["flow_id"], {"camera": shown}
        )
        assert result["reason"] == "reconfigure_successful"
        assert _subentry(device_entry).data[CONF_PROFILE] == stored
        result = await device_entry.start_subentry_reconfigure_flow(hass, subentry.subentry_id)
        key, _ = _field(result, "camera")
        assert key.description["suggested_value"] == shown


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        (CONF_LANGUAGE, "English please", "invalid_language"),
        (CONF_VOICE, "   ", "invalid_voice"),
    ],
)
async def test_invalid_profile_values_are_refused_on_their_field(
    hass: HomeAssistant, device_entry: MockConfigEntry, field: str, value: str, error: str
) -> None:
    """Bad values are reported on the field; nothing is saved."""
    subentry = _subentry(device_entry)
    result = await device_entry.start_subentry_reconfigure_flow(hass, subentry.subentry_id)
    result = await hass.config_entries.subentries.async_configure(result["flow_id"], {field: value})
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {field: error}
    assert CONF_PROFILE not in _subentry(device_entry).data


@pytest.mark.parametrize(
    ("field", "value"),
    [
        (CONF_VAD_THRESHOLD, 1.5),
        (CONF_VAD_SILENCE_DURATION_MS, 50),
        (CONF_EXTRA_INSTRUCTIONS, "You are in the {{ area "),
    ],
)
async def test_out_of_range_numbers_are_refused(
    hass: HomeAssistant, device_entry: MockConfigEntry, field: str, value: float | str
) -> None:
    """Numbers out of range and broken templates are refused by the form's selectors."""
    subentry = _subentry(device_entry)
    result = await device_entry.start_subentry_reconfigure_flow(hass, subentry.subentry_id)
    with pytest.raises(InvalidData) as err:
        await hass.config_entries.subentries.async_configure(result["flow_id"], {field: value})
    assert field in err.value.schema_errors
    assert CONF_PROFILE not in _subentry(device_entry).data


async def test_no_profile_means_the_entry_settings(
    hass: HomeAssistant, device_entry: MockConfigEntry
) -> None:
    """A device without a profile uses its agent's settings (and the entry-wide) unchanged."""
    settings = agent_settings(device_entry, agent_of(device_entry))
    assert effective_options(hass, device_entry, _subentry(device_entry)) == settings
    assert effective_options(hass, device_entry, None) == settings
