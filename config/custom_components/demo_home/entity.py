"""An on/off device placed in a room through its device's suggested area."""

from __future__ import annotations

from typing import Any

from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.entity import ToggleEntity

from . import DOMAIN


class DemoToggle(ToggleEntity):
    """Keeps its state in memory; the entity is its device (named after it)."""

    _attr_should_poll = False
    _attr_has_entity_name = True
    _attr_name = None

    def __init__(self, platform: str, unique_id: str, name: str, room: str) -> None:
        """One device per entity, suggested in `room` (the area is created on first start).

        The entity id is fixed (`light.kitchen_light`): Home Assistant would otherwise put the
        area in front of the device name (`light.kitchen_kitchen_light`).
        """
        self.entity_id = f"{platform}.{unique_id}"
        self._attr_unique_id = unique_id
        self._attr_is_on = False
        self._attr_device_info = DeviceInfo(
            identifiers={(DOMAIN, unique_id)}, name=name, suggested_area=room
        )

    async def async_turn_on(self, **kwargs: Any) -> None:
        """Turn on."""
        self._attr_is_on = True
        self.async_write_ha_state()

    async def async_turn_off(self, **kwargs: Any) -> None:
        """Turn off."""
        self._attr_is_on = False
        self.async_write_ha_state()
