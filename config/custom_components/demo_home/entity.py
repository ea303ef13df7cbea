"""An on/off device placed in a room through its device's suggested area."""

from __future__ import annotations

from typing import Any

from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.entity import ToggleEntity

from . import DOMAIN


class DemoToggle(ToggleEntity):
    """Keeps its state in memory."""

    _attr_should_poll = False

    def __init__(self, unique_id: str, name: str, room: str) -> None:
        """Name the entity (YAML platforms get no device, so the device name alone is lost)."""
        self._attr_unique_id = unique_id
        self._attr_name = name
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
