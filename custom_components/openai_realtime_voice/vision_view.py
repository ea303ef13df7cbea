"""`POST /api/openai_realtime_voice/vision`: a camera board's photo into its Realtime conversation.

The upload is the firmware's (`Esp32Camera::Explain`): `multipart/form-data` with the boundary
`----ESP32_CAMERA_BOUNDARY`, chunked, headers `Device-Id`, `Client-Id` and
`Authorization: Bearer <vision token>`; parts `question` then `file` (`camera.jpg`, JPEG). The
firmware returns our answer body verbatim to the model as the tool result, and fails the tool on
any status but 200.

The board uploads while its `self.camera.take_photo` call waits for its reply: an upload is
read only as the answer to such a call of that device, one per call and one at a time, and
only in the sizes camera boards take. Everything else is refused before the body is read.
"""

from __future__ import annotations

import asyncio
from http import HTTPStatus
import logging
from typing import Final

from aiohttp import BodyPartReader, web
from homeassistant.helpers.http import KEY_HASS, HomeAssistantView

from .bridge import serving
from .const import LOGGER, VISION_PATH
from .endpoint import DATA_HUB, MCP_TIMEOUT, bearer_token, normalize_mac, refuse_unread
from .images import BOARD_PHOTO, ImageError
from .models import find_home
from .rate_limit import RateLimiter
from .realtime import RealtimeError
from .vision import TAKE_PHOTO_TOOL, UploadRefused, async_scale, max_side
from .xiaozhi import McpClient

MAX_UPLOAD_BYTES: Final = 4 * 1024 * 1024
"""Largest upload read at all (camera boards send 10-200 KB; a 5 MP JPEG is ~2 MB)."""

UPLOAD_TIMEOUT: Final = MCP_TIMEOUT
"""Seconds a board has to send its whole photo: the `take_photo` call it answers fails after
that anyway (capture and upload take 1-2 s on Wi-Fi)."""

MAX_QUESTION_BYTES: Final = 4096
CHUNK: Final = 64 * 1024

_REFUSED_STATUS: Final = {
    UploadRefused.NOT_ASKED: HTTPStatus.CONFLICT,
    UploadRefused.BUSY: HTTPStatus.TOO_MANY_REQUESTS,
}

PHOTO_IN_CONVERSATION: Final = (
    "The photo is now in the conversation as the latest image. Look at it and answer: {question}"
)


class _TooLargeError(Exception):
    """The body went over the cap while it was streamed."""


async def _read_part(part: BodyPartReader, budget: int) -> bytes:
    """A part's bytes, read chunk by chunk; `_TooLargeError` past `budget`."""
    data = bytearray()
    while chunk := await part.read_chunk(CHUNK):
        data += chunk
        if len(data) > budget:
            raise _TooLargeError
    return bytes(data)


class DeviceVisionView(HomeAssistantView):
    """Take a camera board's photo and add it to the device's Realtime conversation."""

    url = VISION_PATH
    name = "api:openai_realtime_voice:vision"
    requires_auth = False

    def __init__(self) -> None:
        """Start with no refusal logged."""
        self._warned = RateLimiter(1, 600.0)

    async def post(self, request: web.Request) -> web.Response:
        """Check the token and size, read the photo, scale it and hand it to the model."""
        hass = request.app[KEY_HASS]
        mac = normalize_mac(request.headers.get("Device-Id"))
        token = bearer_token(request.headers.get("Authorization"))
        hub = hass.data[DATA_HUB]
        vision = hub.vision
        if not vision.check(mac, token):
            source = request.remote or "unknown"
            LOGGER.log(
                logging.WARNING if self._warned.allow(source) else logging.DEBUG,
                "Refused a photo upload from %s (Device-Id %s): %s",
                source,
                mac or "missing",
                "no token" if token is None else "invalid or expired vision token",
            )
            await hub.logins.async_refused(request, mac, token)
            return web.Response(status=HTTPStatus.UNAUTHORIZED, text="unauthorized")
        assert mac is not None
        if request.content_length is not None and request.content_length > MAX_UPLOAD_BYTES:
            LOGGER.warning(
                "Refused a photo of %d bytes from device %s (limit %d)",
                request.content_length,
                mac,
                MAX_UPLOAD_BYTES,
            )
            return await refuse_unread(
                request, HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "photo too large"
            )
        if request.content_type != "multipart/form-data":
            return await refuse_unread(
                request, HTTPStatus.BAD_REQUEST, "expected multipart/form-data"
            )
        found = find_home(hass, mac)
        if found is None or (bridge := serving(found[1])) is None:
            return await refuse_unread(request, HTTPStatus.SERVICE_UNAVAILABLE, "no conversation")
        mcp = bridge.connection.mcp
        call = vision.claim_upload(mac, mcp.calls_in_flight(TAKE_PHOTO_TOOL))
        if isinstance(call, UploadRefused):
            LOGGER.log(
                logging.WARNING if self._warned.allow(f"{mac} {call}") else logging.DEBUG,
                "Refused a photo upload from device %s: %s",
                mac,
                call,
            )
            return await refuse_unread(request, _REFUSED_STATUS[call], str(call))
        try:
            return await self._take(request, mac, mcp, call)
        finally:
            vision.release_upload(mac)

    async def _take(
        self,
        request: web.Request,
        mac: str,
        mcp: McpClient,
        call: int,
    ) -> web.Response:
        """Read the photo for this pending call, scale it and hand it to the model."""
        hass = request.app[KEY_HASS]
        hub = hass.data[DATA_HUB]
        vision = hub.vision
        # The body is read within a deadline, and counts against the address as the boot
        # check's does (`DevicePairing.body_reads`).
        body_reads, source = hub.pairing.body_reads, request.remote or "unknown"
        if not body_reads.acquire(source):
            return await refuse_unread(request, HTTPStatus.TOO_MANY_REQUESTS, "too many requests")
        try:
            async with asyncio.timeout(UPLOAD_TIMEOUT):
                photo = await _read_upload(request)
        except TimeoutError:
            LOGGER.debug("Device %s's photo was not sent within %g s", mac, UPLOAD_TIMEOUT)
            return await refuse_unread(
                request, HTTPStatus.REQUEST_TIMEOUT, f"photo not sent within {UPLOAD_TIMEOUT:g} s"
            )
        except _TooLargeError:
            LOGGER.warning("Refused a photo over %d bytes from device %s", MAX_UPLOAD_BYTES, mac)
            return await refuse_unread(
                request, HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "photo too large"
            )
        except ValueError as err:  # aiohttp's multipart parser: malformed body
            LOGGER.debug("Device %s sent a malformed photo upload: %s", mac, err)
            return await refuse_unread(request, HTTPStatus.BAD_REQUEST, "malformed upload")
        finally:
            body_reads.release(source)
        if photo is None:
            return web.Response(status=HTTPStatus.BAD_REQUEST, text="no file part")

        found = find_home(hass, mac)
        bridge = serving(found[1]) if found is not None else None
        client = bridge.client if bridge is not None else None
        if found is None or client is None:
            return web.Response(
                status=HTTPStatus.SERVICE_UNAVAILABLE, text="no conversation to show the photo to"
            )
        entry = found[0]
        try:
            image = await async_scale(
                hass, photo, max_side(entry, found[1].subentry), source=BOARD_PHOTO
            )
        except ImageError as err:
            LOGGER.warning("Device %s sent a photo that is not usable: %s", mac, err)
            return web.Response(status=HTTPStatus.BAD_REQUEST, text=f"bad photo: {err}")
        # The call may have timed out while the photo was read and scaled.
        if (arguments := mcp.calls_in_flight(TAKE_PHOTO_TOOL).get(call)) is None:
            LOGGER.debug("Device %s's photo came after its take_photo call ended", mac)
            return web.Response(status=HTTPStatus.CONFLICT, text="the photo came too late")
        try:
            await client.add_user_image(image.data_url)
        except RealtimeError as err:
            LOGGER.warning("Could not give device %s's photo to the model: %s", mac, err)
            return web.Response(
                status=HTTPStatus.SERVICE_UNAVAILABLE, text="the conversation is not available"
            )
        vision.images_sent[entry.entry_id] += 1
        vision.device_images[mac] += 1
        LOGGER.debug(
            "Device %s photo %dx%d -> %dx%d (%d bytes) added to its conversation",
            mac,
            image.source_width,
            image.source_height,
            image.width,
            image.height,
            len(image.jpeg),
        )
        # The model's own question: what the upload says is the uploader's, not the model's.
        question = arguments.get("question")
        if not isinstance(question, str) or not question.strip():
            question = "what do you see?"
        return web.Response(text=PHOTO_IN_CONVERSATION.format(question=question.strip()))


async def _read_upload(request: web.Request) -> bytes | None:
    """The `file` part's bytes, streamed under the size cap (the other parts are skipped).

    The `question` part is the uploader's word: the answer asks the model's own question.
    """
    reader = await request.multipart()
    photo: bytes | None = None
    budget = MAX_UPLOAD_BYTES
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            raise ValueError("nested multipart")  # noqa: TRY004 - a malformed body
        if part.name == "file":
            photo = raw = await _read_part(part, budget)
        else:
            raw = await _read_part(part, min(budget, MAX_QUESTION_BYTES))
        budget -= len(raw)
    return photo
