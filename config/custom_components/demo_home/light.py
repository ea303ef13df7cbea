"""Demo lights."""

from __future__ import annotations

from homeassistant.components.light import ColorMode, LightEntity
from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddEntitiesCallback
from homeassistant.helpers.typing import ConfigType, DiscoveryInfoType

from . import DEVICES
from .entity import DemoToggle


class DemoLight(DemoToggle, LightEntity):
    """An on/off light."""

    _attr_color_mode = ColorMode.ONOFF
    _attr_supported_color_modes = {ColorMode.ONOFF}


async def async_setup_platform(
    hass: HomeAssistant,
    config: ConfigType,
    async_add_entities: AddEntitiesCallback,
    discovery_info: DiscoveryInfoType | None = None,
) -> None:
    """Add the demo lights."""
    async_add_entities(
        DemoLight(uid, name, room) for uid, name, room, kind in DEVICES if kind is Platform.LIGHT
    )
