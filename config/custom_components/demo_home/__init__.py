"""A small home to talk to during development: lights and switches in named rooms."""

from __future__ import annotations

from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers.discovery import async_load_platform
from homeassistant.helpers.typing import ConfigType

DOMAIN = "demo_home"

# (unique id, name, room, platform)
DEVICES = (
    ("kitchen_light", "Kitchen light", "Kitchen", Platform.LIGHT),
    ("living_room_light", "Living room light", "Living Room", Platform.LIGHT),
    ("bedroom_light", "Bedroom light", "Bedroom", Platform.LIGHT),
    ("kitchen_coffee_maker", "Coffee maker", "Kitchen", Platform.SWITCH),
    ("living_room_fan", "Living room fan", "Living Room", Platform.SWITCH),
)


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Load the light and switch platforms."""
    for platform in (Platform.LIGHT, Platform.SWITCH):
        hass.async_create_task(async_load_platform(hass, platform, DOMAIN, {}, config))
    return True
