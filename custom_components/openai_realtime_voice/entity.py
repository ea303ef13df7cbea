"""Base entity of a paired xiaozhi device: its HA device, and updates from its live state."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import override

from homeassistant.core import callback
from homeassistant.helpers.device_registry import CONNECTION_NETWORK_MAC, DeviceInfo
from homeassistant.helpers.entity import Entity, EntityDescription
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .const import CONF_BOARD, CONF_FIRMWARE, DEVICE_MANUFACTURER, DOMAIN
from .home import DeviceHome
from .models import OpenAIRealtimeConfigEntry


@callback
def async_add_device_entities(
    entry: OpenAIRealtimeConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
    entities_for: Callable[[DeviceHome], Iterable[Entity]],
) -> None:
    """Add a platform's entities for each paired device, under the device's config subentry,
    and for each device paired while the entry is loaded."""

    @callback
    def add(home: DeviceHome) -> None:
        async_add_entities(entities_for(home), config_subentry_id=home.subentry.subentry_id)

    for home in entry.runtime_data.devices.values():
        add(home)
    adders = entry.runtime_data.entity_adders
    adders.append(add)
    entry.async_on_unload(lambda: adders.remove(add))


class XiaozhiDeviceEntity(Entity):
    """An entity of one paired device, named after the device and updated on its changes."""

    _attr_has_entity_name = True
    _attr_should_poll = False

    def __init__(self, home: DeviceHome, description: EntityDescription) -> None:
        """Attach the entity to a paired device's home."""
        self.entity_description = description
        self.home = home
        self.device = home.state
        subentry = home.subentry
        mac = home.mac
        self._attr_unique_id = f"{mac}_{description.key}"
        self._attr_device_info = DeviceInfo(
            identifiers={(DOMAIN, mac)},
            connections={(CONNECTION_NETWORK_MAC, mac)},
            manufacturer=DEVICE_MANUFACTURER,
            model=subentry.data.get(CONF_BOARD) or None,
            sw_version=subentry.data.get(CONF_FIRMWARE) or None,
            name=subentry.title,
        )

    @override
    async def async_added_to_hass(self) -> None:
        """Follow the device's live state."""
        await super().async_added_to_hass()
        self.async_on_remove(self.device.async_add_listener(self.async_write_ha_state))
