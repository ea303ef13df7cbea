"""Serving a connected device: its home attaches the connection, a speech bridge answers it.

The WebSocket view authenticates the device against its entry and hands over the entry and
subentry it found; `async_serve_device` finds the device's home in that entry, attaches the
connection (closing one it replaces), starts the bridge on it and serves it until it ends.
"""

from __future__ import annotations

from aiohttp import web
from homeassistant.config_entries import ConfigSubentry
from homeassistant.const import EVENT_HOMEASSISTANT_STOP
from homeassistant.core import Event, HomeAssistant, callback

from ..const import LOGGER
from ..endpoint import DeviceConnection
from ..home import DeviceHome
from ..models import OpenAIRealtimeConfigEntry
from .core import SpeechBridge


async def async_serve_device(
    hass: HomeAssistant,
    entry: OpenAIRealtimeConfigEntry,
    subentry: ConfigSubentry,
    ws: web.WebSocketResponse,
    *,
    protocol_version: int | None,
    vision: tuple[str, str] | None,
) -> None:
    """Serve an authenticated device's prepared WebSocket until the device leaves."""
    home = entry.runtime_data.devices[str(subentry.unique_id)]

    @callback
    def start_bridge(connection: DeviceConnection) -> SpeechBridge:
        bridge = SpeechBridge(hass, entry, home, connection)
        bridge.async_start()
        home.async_serve(bridge)
        return bridge

    connection = DeviceConnection(
        hass,
        ws,
        home.state,
        protocol_version=protocol_version,
        vision=vision,
        link_factory=start_bridge,
    )
    await home.async_attach(connection)
    LOGGER.debug("Device %s connected", home.mac)

    async def _close_on_stop(_: Event) -> None:
        """HA stops: end the channel (the HTTP server would wait for this handler)."""
        await connection.async_close("server stopping")

    remove_stop_listener = hass.bus.async_listen(EVENT_HOMEASSISTANT_STOP, _close_on_stop)
    try:
        await connection.run()
    finally:
        remove_stop_listener()
        home.async_detach(connection)
        LOGGER.debug("Device %s disconnected (%s)", home.mac, connection.close_reason)


def serving(home: DeviceHome) -> SpeechBridge | None:
    """The speech bridge serving the device now (None while it is not connected)."""
    return home.bridge if isinstance(home.bridge, SpeechBridge) else None
