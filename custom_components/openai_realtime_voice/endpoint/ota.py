"""The firmware's boot check (`POST .../ota/`) and activation poll (`POST .../ota/activate`).

Answers exactly what stock xiaozhi firmware expects: `websocket` (url, token, version) for paired
devices, `activation` (code, message, challenge) for unknown ones, always `server_time` and a
`firmware` echo that never triggers a flash, and never `mqtt`.

Both endpoints are unauthenticated (the firmware sends no credentials there), so they are
rate-limited per source address and change nothing about a paired device: only its
authenticated WebSocket does. A body is read within `BODY_TIMEOUT`, with one of the few reads
its address may have open at once; a request refused before its body was read is closed.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from http import HTTPStatus
import json
import time
from typing import Any, Final

from aiohttp import web
from homeassistant.helpers.http import KEY_HASS, HomeAssistantView
from homeassistant.util import dt as dt_util
import yarl

from ..const import (
    ACTIVATE_PATH,
    CONF_DEVICE_WEBSOCKET_URL,
    DEVICE_WS_PATH,
    DOMAIN,
    LOGGER,
    OTA_PATH,
)
from .hub import DATA_HUB, DeviceHub
from .pairing import CODE_LIFETIME, ActivationRefused, DevicePairing, PendingDevice, normalize_mac

MAX_BODY_SIZE: Final = 16 * 1024
"""Largest request body read; the firmware's system info is about 2 KB."""

BODY_TIMEOUT: Final = 10.0
"""Seconds a boot check or activation poll has to send its whole body. The firmware sends its
system info with the request (`Ota::CheckVersion` sets it as the content before `Open`); a
body still coming after this is a stalled or hostile client."""

PROTOCOL_VERSION: Final = 1
"""Binary framing handed to devices: v1 (raw Opus) is the firmware default and the leanest."""

ACTIVATION_MESSAGE: Final = "Home Assistant\n{code}"


class BadRequestError(Exception):
    """The request cannot be a firmware boot check or activation poll."""

    def __init__(self, status: HTTPStatus, reason: str, *, unread: bool = False) -> None:
        """Keep the HTTP status to answer with; `unread`: the body was not read to its end."""
        super().__init__(reason)
        self.status = status
        self.unread = unread


@dataclass(frozen=True, slots=True)
class BootCheck:
    """What a device reported about itself in its OTA request."""

    mac: str
    client_id: str
    board: str
    firmware: str


async def read_json_body(request: web.Request) -> dict[str, Any]:
    """Read at most `MAX_BODY_SIZE` bytes of a JSON object body; an empty body is `{}`.

    The read holds one of its address's body reads (`DevicePairing.body_reads`) and ends
    after `BODY_TIMEOUT`.
    """
    if request.content_length is not None and request.content_length > MAX_BODY_SIZE:
        raise BadRequestError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "body too large", unread=True)
    pairing, source = _pairing(request), _source(request)
    if not pairing.body_reads.acquire(source):
        raise BadRequestError(HTTPStatus.TOO_MANY_REQUESTS, "too many requests", unread=True)
    data = bytearray()
    try:
        async with asyncio.timeout(BODY_TIMEOUT):
            while chunk := await request.content.read(MAX_BODY_SIZE + 1 - len(data)):
                data += chunk
                if len(data) > MAX_BODY_SIZE:
                    raise BadRequestError(
                        HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "body too large", unread=True
                    )
    except TimeoutError as err:
        raise BadRequestError(
            HTTPStatus.REQUEST_TIMEOUT, f"body not sent within {BODY_TIMEOUT:g} s", unread=True
        ) from err
    finally:
        pairing.body_reads.release(source)
    if not data.strip():
        return {}
    try:
        body = json.loads(data)
    except (ValueError, RecursionError) as err:
        raise BadRequestError(HTTPStatus.BAD_REQUEST, "body is not JSON") from err
    if not isinstance(body, dict):
        raise BadRequestError(HTTPStatus.BAD_REQUEST, "body is not a JSON object")
    return body


async def refuse_unread(request: web.Request, status: HTTPStatus, text: str) -> web.Response:
    """Answer and close the connection: the rest of the body is never read.

    (aiohttp would otherwise linger, reading and discarding the body for up to 10 s.)
    """
    response = web.Response(status=status, text=text)
    response.force_close()
    await response.prepare(request)
    await response.write_eof()
    request.protocol.force_close()
    return response


async def _refusal(request: web.Request, err: BadRequestError) -> web.Response:
    """The answer to a request that is not a boot check or activation poll."""
    if err.unread:
        return await refuse_unread(request, err.status, str(err))
    return web.Response(status=err.status, text=str(err))


def _text(value: object, limit: int = 64) -> str | None:
    """A printable, bounded string from untrusted input, or None."""
    if not isinstance(value, str) or not (value := value.strip()):
        return None
    return "".join(c for c in value if c.isprintable())[:limit] or None


def parse_boot_check(headers: Any, body: dict[str, Any]) -> BootCheck:
    """Read the device identity from the headers and system-info body the firmware sends."""
    mac = normalize_mac(headers.get("Device-Id"))
    if mac is None:
        raise BadRequestError(HTTPStatus.BAD_REQUEST, "missing or invalid Device-Id")
    # The firmware always sends its Client-Id (`Ota::SetupHttp`); pairing is bound to it.
    if (client_id := _text(headers.get("Client-Id"), 64)) is None:
        raise BadRequestError(HTTPStatus.BAD_REQUEST, "missing Client-Id")
    agent_board, _, agent_version = str(headers.get("User-Agent", "")).partition("/")
    board = body.get("board")
    board = board if isinstance(board, dict) else {}
    application = body.get("application")
    application = application if isinstance(application, dict) else {}
    return BootCheck(
        mac=mac,
        client_id=client_id,
        board=_text(board.get("name")) or _text(board.get("type")) or _text(agent_board) or "",
        firmware=_text(application.get("version"), 32) or _text(agent_version, 32) or "",
    )


def server_time() -> dict[str, int]:
    """The clock the device sets: ms since the epoch and the local offset in minutes."""
    offset = dt_util.now().utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset is not None else 0
    return {"timestamp": int(time.time() * 1000), "timezone_offset": minutes}


def websocket_url(override: str | None, request_url: yarl.URL) -> str:
    """The device WebSocket URL: the option, else the host and port of this very request.

    The device just reached Home Assistant at that address, so it can reach it again there;
    the firmware has no mDNS, so HA's own `homeassistant.local` or a container address
    would not resolve.
    """
    if override:
        return override
    base = request_url.origin()
    scheme = "wss" if base.scheme == "https" else "ws"
    return str(base.with_scheme(scheme).with_path(DEVICE_WS_PATH))


def activation_section(pending: PendingDevice, now: float) -> dict[str, Any]:
    """The `activation` object: the code the device shows and speaks, and the challenge."""
    return {
        "code": pending.code,
        "message": ACTIVATION_MESSAGE.format(code=pending.code),
        "challenge": pending.challenge,
        "timeout_ms": int(max(0.0, min(pending.expires - now, CODE_LIFETIME)) * 1000),
    }


def _hub(request: web.Request) -> DeviceHub:
    """The hass-wide device hub (set up with the integration)."""
    return request.app[KEY_HASS].data[DATA_HUB]


def _pairing(request: web.Request) -> DevicePairing:
    """The hass-wide pairing state, which rate-limits these unauthenticated endpoints."""
    return _hub(request).pairing


def _source(request: web.Request) -> str:
    """The address rate limits count against (the client's, behind a trusted proxy)."""
    return request.remote or "unknown"


_REFUSED_STATUS: Final = {
    ActivationRefused.CONFLICT: HTTPStatus.CONFLICT,
    ActivationRefused.RATE_LIMITED: HTTPStatus.TOO_MANY_REQUESTS,
    ActivationRefused.FULL: HTTPStatus.SERVICE_UNAVAILABLE,
}


class OtaView(HomeAssistantView):
    """The boot-time version check every xiaozhi device makes."""

    url = OTA_PATH
    extra_urls = [OTA_PATH.rstrip("/")]
    name = "api:openai_realtime_voice:ota"
    requires_auth = False

    async def post(self, request: web.Request) -> web.Response:
        """Answer the firmware's boot check."""
        if not _pairing(request).ota_requests.allow(_source(request)):
            return web.Response(status=HTTPStatus.TOO_MANY_REQUESTS, text="too many requests")
        try:
            check = parse_boot_check(request.headers, await read_json_body(request))
        except BadRequestError as err:
            LOGGER.debug("Refused OTA request from %s: %s", request.remote, err)
            return await _refusal(request, err)
        return self._answer(request, check, start_pairing=True)

    async def get(self, request: web.Request) -> web.Response:
        """Answer a body-less check (browsers, older clients) from the headers alone.

        A GET changes nothing: it starts no pairing and hands over no token.
        """
        if not _pairing(request).ota_requests.allow(_source(request)):
            return web.Response(status=HTTPStatus.TOO_MANY_REQUESTS, text="too many requests")
        try:
            check = parse_boot_check(request.headers, {})
        except BadRequestError as err:
            return web.Response(status=err.status, text=str(err))
        return self._answer(request, check, start_pairing=False)

    def _answer(
        self, request: web.Request, check: BootCheck, *, start_pairing: bool
    ) -> web.Response:
        hub = _hub(request)
        hass = hub.hass
        pairing = hub.pairing
        if not hass.config_entries.async_loaded_entries(DOMAIN):
            return web.Response(status=HTTPStatus.SERVICE_UNAVAILABLE, text="not ready")
        body: dict[str, Any] = {}
        found = hub.find_paired(check.mac)
        if found is not None and pairing.is_paired_client(check.mac, check.client_id):
            # Nothing here changes the device's state (firmware issue, last seen): anyone can
            # send its MAC and Client-Id. Its authenticated connection reports them.
            entry = found[0]
            socket: dict[str, Any] = {
                "url": websocket_url(entry.options.get(CONF_DEVICE_WEBSOCKET_URL), request.url),
                "version": PROTOCOL_VERSION,
            }
            token = pairing.token_for(check.mac, check.client_id) if start_pairing else None
            if token is not None:
                socket["token"] = token
                LOGGER.info("Handed device %s its token", check.mac)
            body["websocket"] = socket
        elif start_pairing:
            pending = pairing.async_activation(
                check.mac, check.client_id, check.board, check.firmware, _source(request)
            )
            if isinstance(pending, ActivationRefused):
                return web.Response(status=_REFUSED_STATUS[pending], text=str(pending))
            body["activation"] = activation_section(pending, pairing.clock())
        body["server_time"] = server_time()
        body["firmware"] = {"version": check.firmware, "url": ""}
        return self.json(body)


class ActivateView(HomeAssistantView):
    """The activation poll: 202 until the user typed the code in Home Assistant, then 200.

    DIY boards send `{}`; boards with an efuse serial number send an HMAC of the challenge
    keyed with a secret burnt into the chip, which only the vendor can check. We verify that
    the challenge (when sent) is the one we issued, and otherwise rely on the typed code.
    Only the Client-Id that asked to pair learns anything: any other gets 404, so nobody can
    watch another device's pairing.
    """

    url = ACTIVATE_PATH
    name = "api:openai_realtime_voice:ota:activate"
    requires_auth = False

    async def post(self, request: web.Request) -> web.Response:
        """Report whether the device has been approved."""
        pairing = _pairing(request)
        if not pairing.activate_requests.allow(_source(request)):
            return web.Response(status=HTTPStatus.TOO_MANY_REQUESTS, text="too many requests")
        if (mac := normalize_mac(request.headers.get("Device-Id"))) is None:
            return web.Response(status=HTTPStatus.BAD_REQUEST, text="invalid Device-Id")
        client_id = _text(request.headers.get("Client-Id"), 64) or ""
        try:
            body = await read_json_body(request)
        except BadRequestError as err:
            LOGGER.debug("Refused activation poll from %s: %s", request.remote, err)
            return await _refusal(request, err)
        if pairing.is_approved(mac, client_id):
            return web.Response(status=HTTPStatus.OK, text="success")
        pending = pairing.async_poll(mac, client_id)
        if pending is None:
            return web.Response(status=HTTPStatus.NOT_FOUND, text="unknown device")
        challenge = body.get("challenge")
        if challenge is not None and challenge != pending.challenge:
            return web.Response(status=HTTPStatus.FORBIDDEN, text="wrong challenge")
        return web.Response(status=HTTPStatus.ACCEPTED, text="waiting for approval")
