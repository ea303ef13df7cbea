"""Demo switches."""

from __future__ import annotations

from homeassistant.components.switch import SwitchEntity
from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddEntitiesCallback
from homeassistant.helpers.typing import ConfigType, DiscoveryInfoType

from . import DEVICES
from .entity import DemoToggle


class DemoSwitch(DemoToggle, SwitchEntity):
    """An on/off switch."""


async def async_setup_platform(
    hass: HomeAssistant,
    config: ConfigType,
    async_add_entities: AddEntitiesCallback,
    discovery_info: DiscoveryInfoType | None = None,
) -> None:
    """Add the demo switches."""
    async_add_entities(
        DemoSwitch(uid, name, room) for uid, name, room, kind in DEVICES if kind is Platform.SWITCH
    )
