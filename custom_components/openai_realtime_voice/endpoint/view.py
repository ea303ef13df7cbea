"""The device WebSocket endpoint: authenticate before the upgrade, then serve the channel."""

from __future__ import annotations

from collections.abc import Awaitable
from http import HTTPStatus
import logging
from typing import Any, Final, Protocol

from aiohttp import hdrs, web
from homeassistant.components.http.ban import process_success_login
from homeassistant.config_entries import ConfigEntry, ConfigSubentry
from homeassistant.helpers.http import KEY_HASS, HomeAssistantView
from yarl import URL

from ..const import CONF_DEVICE_WEBSOCKET_URL, DEVICE_WS_PATH, LOGGER, VISION_PATH
from ..rate_limit import RateLimiter
from ..vision import image_input_allowed
from .hub import DATA_HUB

MAX_MESSAGE_SIZE: Final = 256 * 1024
"""Largest WebSocket message accepted at all; the session refuses smaller oversized frames."""

REFUSAL_LOG_WINDOW: Final = 600.0
"""A refused connection is logged as a warning once per source address in this many seconds
(later ones at debug level), and at most `REFUSAL_WARNINGS` times in all per window."""

REFUSAL_WARNINGS: Final = 10

# No aiohttp heartbeat: in aiohttp 3.14 data arriving during the closing handshake re-arms the
# heartbeat timer after close (a leaked timer per connection). The connection's own idle
# timeout (120 s, as the firmware's) already ends sockets whose peer vanished.


class DeviceServer(Protocol):
    """Serves an authenticated device's channel until it ends (the entry's device home).

    It gets the entry and subentry the view authenticated the device against: the pairing
    is looked up once per connect.
    """

    def __call__(
        self,
        entry: ConfigEntry[Any],
        subentry: ConfigSubentry,
        ws: web.WebSocketResponse,
        *,
        protocol_version: int | None,
        vision: tuple[str, str] | None,
    ) -> Awaitable[None]:
        """Serve the prepared WebSocket; returns when the device has left."""


def vision_url(request: web.Request, websocket_url: str | None) -> str:
    """Where a camera board uploads its photos: the address its WebSocket really reached.

    - The entry's `device_websocket_url`, when set: the board was told to connect there (and
      a proxy or port mapping in between is the reason it is set).
    - Else this request's origin when its `Host` names a port, or when a trusted reverse proxy
      forwarded it (Home Assistant's forwarded middleware refused the request otherwise): the
      scheme and host are then the ones the board used.
    - Else the firmware's handshake, whose `Host` has no port (esp-ml307 `WebSocket::Connect`
      writes only the host): the host it named and the port of the local socket its
      connection reached (8123 unless Home Assistant listens elsewhere).
    """
    if websocket_url:
        try:
            url = URL(websocket_url).origin()
        except ValueError:
            LOGGER.warning("Ignoring the device WebSocket URL %s: not absolute", websocket_url)
        else:
            scheme = "https" if url.scheme in ("wss", "https") else "http"
            return str(url.with_scheme(scheme).with_path(VISION_PATH))
    url = request.url.origin()
    if url.explicit_port is None and hdrs.X_FORWARDED_FOR not in request.headers:
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        if isinstance(sockname, tuple) and len(sockname) >= 2 and isinstance(sockname[1], int):
            url = url.with_port(sockname[1])
    return str(url.with_path(VISION_PATH))


class DeviceWebSocketView(HomeAssistantView):
    """`GET /api/openai_realtime_voice/ws`: one xiaozhi device's audio channel."""

    url = DEVICE_WS_PATH
    name = "api:openai_realtime_voice:ws"
    requires_auth = False

    def __init__(self, serve: DeviceServer) -> None:
        """Hand each authenticated device to `serve`."""
        self._serve = serve
        self._warned_sources = RateLimiter(1, REFUSAL_LOG_WINDOW)
        self._warnings = RateLimiter(REFUSAL_WARNINGS, REFUSAL_LOG_WINDOW)

    async def get(self, request: web.Request) -> web.StreamResponse:
        """Check the device's token, upgrade, and serve it until it leaves."""
        hass = request.app[KEY_HASS]
        hub = hass.data[DATA_HUB]
        login = hub.pairing.authenticate(request.headers)
        if (found := login.found) is None:
            if login.not_loaded:
                # A known device while its entry reloads or waits for a new key: not a
                # failed login (no ban, no notification), just "come back later".
                LOGGER.debug("Device %s connected while its entry is not loaded", login.mac)
                return web.Response(status=HTTPStatus.SERVICE_UNAVAILABLE, text="not ready")
            # Warned once per address and window; a flood goes to debug.
            source = request.remote or "unknown"
            warn = self._warned_sources.allow(source) and self._warnings.allow("")
            LOGGER.log(
                logging.WARNING if warn else logging.DEBUG,
                "Refused a device connection from %s (Device-Id %s): %s",
                source,
                login.mac or "missing",
                "no token" if login.token is None else "invalid token",
            )
            await hub.logins.async_refused(request, login.mac, login.token)
            return web.Response(status=HTTPStatus.UNAUTHORIZED)
        process_success_login(request)
        version: int | None = None
        if header := request.headers.get("Protocol-Version"):
            if header.strip() not in ("1", "2", "3"):
                return web.Response(status=HTTPStatus.BAD_REQUEST, text="bad Protocol-Version")
            version = int(header)

        ws = web.WebSocketResponse(max_msg_size=MAX_MESSAGE_SIZE, decode_text=False)
        await ws.prepare(request)
        entry, subentry = found
        mac = str(subentry.unique_id)
        # A camera board uploads its photos beside this socket, with a token of its own that
        # ends with this connection (never the device's main token).
        vision: tuple[str, str] | None = None
        if image_input_allowed(entry, subentry):
            url = vision_url(request, entry.options.get(CONF_DEVICE_WEBSOCKET_URL))
            vision = (url, hub.vision.issue(mac))
        try:
            await self._serve(entry, subentry, ws, protocol_version=version, vision=vision)
        finally:
            if vision is not None:
                hub.vision.revoke(mac, vision[1])  # not a successor's token
        return ws
