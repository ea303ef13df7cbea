"""Demo lights."""

from __future__ import annotations

from homeassistant.components.light import ColorMode, LightEntity
from homeassistant.config_entries import ConfigEntry
from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from . import DEVICES
from .entity import DemoToggle


class DemoLight(DemoToggle, LightEntity):
    """An on/off light."""

    _attr_color_mode = ColorMode.ONOFF
    _attr_supported_color_modes = {ColorMode.ONOFF}


async def async_setup_entry(
    hass: HomeAssistant, entry: ConfigEntry, async_add_entities: AddConfigEntryEntitiesCallback
) -> None:
    """Add the demo lights."""
    async_add_entities(
        DemoLight(kind, uid, name, room)
        for uid, name, room, kind in DEVICES
        if kind is Platform.LIGHT
    )
