"""When each paired xiaozhi device last talked to Home Assistant."""

from __future__ import annotations

from datetime import datetime
from typing import override

from homeassistant.components.sensor import (
    RestoreSensor,
    SensorDeviceClass,
    SensorEntityDescription,
)
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from . import OpenAIRealtimeConfigEntry
from .entity import XiaozhiDeviceEntity

PARALLEL_UPDATES = 0

LAST_SEEN = SensorEntityDescription(
    key="last_seen",
    translation_key="last_seen",
    device_class=SensorDeviceClass.TIMESTAMP,
    entity_category=EntityCategory.DIAGNOSTIC,
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: OpenAIRealtimeConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add a last-seen sensor per paired device."""
    for subentry, state in entry.runtime_data.devices.values():
        async_add_entities(
            [XiaozhiLastSeenSensor(subentry, state, LAST_SEEN)],
            config_subentry_id=subentry.subentry_id,
        )


class XiaozhiLastSeenSensor(XiaozhiDeviceEntity, RestoreSensor):
    """The last OTA check, connection or disconnection; kept across restarts."""

    @override
    async def async_added_to_hass(self) -> None:
        """Restore the last known time if the device has not been seen since the start."""
        await super().async_added_to_hass()
        last = await self.async_get_last_sensor_data()
        if self.device.last_seen is None and last and isinstance(last.native_value, datetime):
            self.device.last_seen = last.native_value

    @property
    @override
    def native_value(self) -> datetime | None:
        """When the device was last seen."""
        return self.device.last_seen
