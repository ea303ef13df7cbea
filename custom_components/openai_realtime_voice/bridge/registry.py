"""Which speech bridge serves each paired device right now.

The device endpoint plugs what `async_serve_device` returns into each new connection: the
bridge is built and started, then registered here until the connection ends. The satellite
entity, the integration's actions and the vision upload look the bridge up by MAC.
"""

from __future__ import annotations

from homeassistant.core import HomeAssistant, callback
from homeassistant.util.hass_dict import HassKey

from ..const import DOMAIN
from ..endpoint import DATA_HUB, DeviceConnection, DeviceLink
from .core import SpeechBridge


class BridgeRegistry:
    """The live speech bridge of each connected device, by MAC."""

    def __init__(self) -> None:
        """Start empty."""
        self._bridges: dict[str, SpeechBridge] = {}

    def bridge(self, mac: str) -> SpeechBridge | None:
        """The bridge serving the device now (None while it is not connected)."""
        return self._bridges.get(mac)

    @callback
    def async_serve(self, bridge: SpeechBridge) -> DeviceLink:
        """Register a started bridge; the returned link forgets it, then stops it.

        The device's entities are told, so that they follow the new bridge at once.
        """
        self._bridges[bridge.device.mac] = bridge
        bridge.device.async_notify()
        return _ServedBridge(self, bridge)

    @callback
    def async_forget(self, bridge: SpeechBridge) -> None:
        """Forget a stopping bridge (unless a newer one already serves its device)."""
        mac = bridge.device.mac
        if self._bridges.get(mac) is not bridge:  # pragma: no cover - a replaced bridge stops first
            return
        del self._bridges[mac]
        bridge.device.async_notify()


class _ServedBridge:
    """A registered bridge as the connection's link: released before it stops."""

    def __init__(self, registry: BridgeRegistry, bridge: SpeechBridge) -> None:
        self._registry = registry
        self._bridge = bridge

    async def async_stop(self) -> None:
        """Nobody finds the bridge any more, then it cancels its tasks and closes."""
        self._registry.async_forget(self._bridge)
        await self._bridge.async_stop()


DATA_BRIDGES: HassKey[BridgeRegistry] = HassKey(f"{DOMAIN}_bridges")


@callback
def async_serve_device(hass: HomeAssistant, connection: DeviceConnection) -> DeviceLink | None:
    """The endpoint's link factory: start the device's bridge and register it while it serves.

    A connection of a device no loaded entry has paired gets no bridge.
    """
    if (found := hass.data[DATA_HUB].find_paired(connection.mac)) is None:
        return None
    bridge = SpeechBridge(hass, *found, connection)
    bridge.async_start()
    return hass.data[DATA_BRIDGES].async_serve(bridge)
