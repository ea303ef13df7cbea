"""Connectivity of each paired xiaozhi device (its audio channel is open)."""

from __future__ import annotations

from typing import override

from homeassistant.components.binary_sensor import (
    BinarySensorEntity,
    BinarySensorEntityDescription,
)
from homeassistant.components.binary_sensor.const import BinarySensorDeviceClass
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .entity import XiaozhiDeviceEntity, async_add_device_entities
from .models import OpenAIRealtimeConfigEntry

PARALLEL_UPDATES = 0

CONNECTED = BinarySensorEntityDescription(
    key="connected",
    translation_key="connected",
    device_class=BinarySensorDeviceClass.CONNECTIVITY,
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: OpenAIRealtimeConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add a connectivity sensor per paired device."""
    async_add_device_entities(
        entry,
        async_add_entities,
        lambda home: [XiaozhiConnectedSensor(home, CONNECTED)],
    )


class XiaozhiConnectedSensor(XiaozhiDeviceEntity, BinarySensorEntity):
    """On while the device has a live WebSocket to Home Assistant."""

    @property
    @override
    def is_on(self) -> bool:
        """Whether the device is connected."""
        return self.device.connected
