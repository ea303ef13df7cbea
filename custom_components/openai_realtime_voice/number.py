"""Speaker volume of each paired xiaozhi device, set through its MCP tool."""

from __future__ import annotations

from typing import override

from homeassistant.components.number import NumberEntity, NumberEntityDescription
from homeassistant.const import PERCENTAGE
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .const import DOMAIN
from .endpoint import VOLUME_TOOL, DeviceConnection
from .entity import XiaozhiDeviceEntity, async_add_device_entities
from .models import OpenAIRealtimeConfigEntry
from .xiaozhi import McpError

PARALLEL_UPDATES = 1

VOLUME = NumberEntityDescription(
    key="volume",
    translation_key="volume",
    native_min_value=0,
    native_max_value=100,
    native_step=1,
    native_unit_of_measurement=PERCENTAGE,
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: OpenAIRealtimeConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add a volume control per paired device."""
    async_add_device_entities(entry, async_add_entities, lambda home: [XiaozhiVolume(home, VOLUME)])


class XiaozhiVolume(XiaozhiDeviceEntity, NumberEntity):
    """The speaker volume; available while the device is connected and lists the tool."""

    @property
    @override
    def available(self) -> bool:
        """Only a connected device with the volume tool can be controlled."""
        return self.device.connected and self.device.has_tool(VOLUME_TOOL)

    @property
    @override
    def native_value(self) -> float | None:
        """The last volume read from or set on the device."""
        return self.device.volume

    @override
    async def async_set_native_value(self, value: float) -> None:
        """Send the new volume to the device."""
        connection = self.device.connection
        if not isinstance(connection, DeviceConnection) or not self.available:
            raise HomeAssistantError(translation_domain=DOMAIN, translation_key="device_offline")
        try:
            await connection.async_set_volume(round(value))
        except McpError as err:
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="volume_failed",
                translation_placeholders={"error": err.message},
            ) from err
