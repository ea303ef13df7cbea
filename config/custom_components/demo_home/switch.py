"""Demo switches."""

from __future__ import annotations

from homeassistant.components.switch import SwitchEntity
from homeassistant.config_entries import ConfigEntry
from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from . import DEVICES
from .entity import DemoToggle


class DemoSwitch(DemoToggle, SwitchEntity):
    """An on/off switch."""


async def async_setup_entry(
    hass: HomeAssistant, entry: ConfigEntry, async_add_entities: AddConfigEntryEntitiesCallback
) -> None:
    """Add the demo switches."""
    async_add_entities(
        DemoSwitch(kind, uid, name, room)
        for uid, name, room, kind in DEVICES
        if kind is Platform.SWITCH
    )
