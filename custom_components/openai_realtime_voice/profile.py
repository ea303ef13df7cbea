"""Per-device profiles: a paired device's overrides of its agent's settings."""

from __future__ import annotations

from collections.abc import Mapping
import re
from typing import Any, Final

from homeassistant.config_entries import ConfigEntry, ConfigSubentry
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import TemplateError
from homeassistant.helpers import area_registry as ar, device_registry as dr, template

from .agents import agent_settings, device_agent
from .const import (
    CONF_DEVICE_USER,
    CONF_GREETING,
    CONF_NOISE_REDUCTION,
    CONF_PROMPT,
    CONF_TURN_DETECTION,
    CONF_VAD_EAGERNESS,
    CONF_VAD_SILENCE_DURATION_MS,
    CONF_VAD_THRESHOLD,
    CONF_VOICE,
    DOMAIN,
    LOGGER,
)

CONF_PROFILE: Final = "profile"
CONF_EXTRA_INSTRUCTIONS: Final = "extra_instructions"
CONF_LANGUAGE: Final = "language"
CONF_USER: Final = "user"
CONF_AREA: Final = "area"

# Settings a profile may override, by the entry option they replace.
OVERRIDES: Final = (
    CONF_VOICE,
    CONF_TURN_DETECTION,
    CONF_VAD_THRESHOLD,
    CONF_VAD_SILENCE_DURATION_MS,
    CONF_VAD_EAGERNESS,
    CONF_NOISE_REDUCTION,
    CONF_GREETING,
)
_LANGUAGE: Final = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")


def profile_of(subentry: ConfigSubentry | None) -> dict[str, Any]:
    """The profile stored on a device's subentry (empty when none was set)."""
    if subentry is None:
        return {}
    return dict(subentry.data.get(CONF_PROFILE) or {})


def validate_profile(profile: Mapping[str, Any]) -> dict[str, str]:
    """Field-level errors of a profile the user entered.

    The form's selectors already refuse numbers out of range and broken templates.
    """
    errors: dict[str, str] = {}
    language = profile.get(CONF_LANGUAGE)
    if language and not _LANGUAGE.match(str(language)):
        errors[CONF_LANGUAGE] = "invalid_language"
    if (voice := profile.get(CONF_VOICE)) is not None and not str(voice).strip():
        errors[CONF_VOICE] = "invalid_voice"
    return errors


def device_area_name(hass: HomeAssistant, entry_id: str, mac: str) -> str | None:
    """The name of the area the device is in, from the device registry."""
    device = dr.async_get(hass).async_get_device_by_identifier((DOMAIN, mac), entry_id)
    if device is None or device.area_id is None:
        return None
    area = ar.async_get(hass).async_get_area(device.area_id)
    return area.name if area else None


def effective_options(
    hass: HomeAssistant,
    entry: ConfigEntry,
    subentry: ConfigSubentry | None,
) -> dict[str, Any]:
    """The settings of the device's agent with the device's overrides applied, for a session.

    The agent is the one the device chose, else the entry's first (`agents.device_agent`); the
    entry-wide options come with it. Extra instructions are rendered (with `area` available) and
    appended to the agent's prompt; a response language becomes an instruction too, and the
    transcription language.
    """
    options = agent_settings(entry, device_agent(entry, subentry))
    profile = profile_of(subentry)
    merged = dict(options)
    for key in OVERRIDES:
        if (value := profile.get(key)) not in (None, ""):
            merged[key] = value
    additions: list[str] = []
    if extra := profile.get(CONF_EXTRA_INSTRUCTIONS):
        mac = str(subentry.unique_id) if subentry is not None else ""
        try:
            rendered = template.Template(str(extra), hass).async_render(
                {"area": device_area_name(hass, entry.entry_id, mac)}, parse_result=False
            )
        except TemplateError as err:
            LOGGER.warning("The device's extra instructions cannot be rendered: %s", err)
        else:
            additions.append(str(rendered).strip())
    if language := profile.get(CONF_LANGUAGE):
        merged[CONF_LANGUAGE] = language
        additions.append(f"Always answer in the language with the code '{language}'.")
    if additions:
        merged[CONF_PROMPT] = "\n\n".join(
            part for part in (str(options.get(CONF_PROMPT) or ""), *additions) if part
        )
    if user := profile.get(CONF_USER):
        merged[CONF_DEVICE_USER] = user
    return merged
