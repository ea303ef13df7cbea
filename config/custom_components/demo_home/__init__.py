"""A small home to talk to during development: lights and switches in named rooms.

A config entry integration: `demo_home:` in configuration.yaml imports one entry (or add it in
the UI). Each light and switch is a device placed in its room through the device's suggested
area, so Assist can reach "the kitchen light" by name and by area.
"""

from __future__ import annotations

from homeassistant.config_entries import SOURCE_IMPORT, ConfigEntry
from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers.typing import ConfigType

DOMAIN = "demo_home"
PLATFORMS = [Platform.LIGHT, Platform.SWITCH]
CONFIG_SCHEMA = cv.empty_config_schema(DOMAIN)

# (unique id, name, room, platform)
DEVICES = (
    ("kitchen_light", "Kitchen light", "Kitchen", Platform.LIGHT),
    ("living_room_light", "Living room light", "Living Room", Platform.LIGHT),
    ("bedroom_light", "Bedroom light", "Bedroom", Platform.LIGHT),
    ("kitchen_coffee_maker", "Coffee maker", "Kitchen", Platform.SWITCH),
    ("living_room_fan", "Living room fan", "Living Room", Platform.SWITCH),
)


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Import `demo_home:` from configuration.yaml as the (single) config entry."""
    if DOMAIN in config and not hass.config_entries.async_entries(DOMAIN):
        hass.async_create_task(
            hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_IMPORT})
        )
    return True


async def async_setup_entry(hass: HomeAssistant, entry: ConfigEntry) -> bool:
    """Add the lights and switches."""
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    return True


async def async_unload_entry(hass: HomeAssistant, entry: ConfigEntry) -> bool:
    """Remove the lights and switches."""
    return await hass.config_entries.async_unload_platforms(entry, PLATFORMS)
