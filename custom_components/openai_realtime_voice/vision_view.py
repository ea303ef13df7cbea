"""`POST /api/openai_realtime_voice/vision`: a camera board's photo into its Realtime conversation.

The upload is the firmware's (`Esp32Camera::Explain`): `multipart/form-data` with the boundary
`----ESP32_CAMERA_BOUNDARY`, chunked, headers `Device-Id`, `Client-Id` and
`Authorization: Bearer <vision token>`; parts `question` then `file` (`camera.jpg`, JPEG). The
firmware returns our answer body verbatim to the model as the tool result, and fails the tool on
any status but 200.
"""

from __future__ import annotations

from http import HTTPStatus
import logging
from typing import Final

from aiohttp import BodyPartReader, web
from homeassistant.helpers.http import KEY_HASS, HomeAssistantView

from .bridge import DATA_BRIDGES
from .const import LOGGER, VISION_PATH
from .endpoint import DATA_HUB, bearer_token, normalize_mac
from .images import ImageError
from .rate_limit import RateLimiter
from .realtime import RealtimeError
from .vision import DATA_VISION, async_scale, max_side

MAX_UPLOAD_BYTES: Final = 4 * 1024 * 1024
"""Largest upload read at all (camera boards send 10-200 KB; a 5 MP JPEG is ~2 MB)."""

MAX_QUESTION_BYTES: Final = 4096
CHUNK: Final = 64 * 1024

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
        vision = hass.data.get(DATA_VISION)
        if vision is None or not vision.check(mac, token):
            source = request.remote or "unknown"
            LOGGER.log(
                logging.WARNING if self._warned.allow(source) else logging.DEBUG,
                "Refused a photo upload from %s (Device-Id %s): %s",
                source,
                mac or "missing",
                "no token" if token is None else "invalid or expired vision token",
            )
            await hass.data[DATA_HUB].logins.async_refused(request, mac, token)
            return web.Response(status=HTTPStatus.UNAUTHORIZED, text="unauthorized")
        assert mac is not None
        if request.content_length is not None and request.content_length > MAX_UPLOAD_BYTES:
            LOGGER.warning(
                "Refused a photo of %d bytes from device %s (limit %d)",
                request.content_length,
                mac,
                MAX_UPLOAD_BYTES,
            )
            return await _refuse_unread(request)
        if request.content_type != "multipart/form-data":
            return web.Response(status=HTTPStatus.BAD_REQUEST, text="expected multipart/form-data")
        try:
            question, photo = await _read_upload(request)
        except _TooLargeError:
            LOGGER.warning("Refused a photo over %d bytes from device %s", MAX_UPLOAD_BYTES, mac)
            return await _refuse_unread(request)
        except ValueError as err:  # aiohttp's multipart parser: malformed body
            LOGGER.debug("Device %s sent a malformed photo upload: %s", mac, err)
            return web.Response(status=HTTPStatus.BAD_REQUEST, text="malformed upload")
        if photo is None:
            return web.Response(status=HTTPStatus.BAD_REQUEST, text="no file part")

        found = hass.data[DATA_HUB].find_paired(mac)
        bridge = hass.data[DATA_BRIDGES].bridge(mac)
        client = bridge.client if bridge is not None else None
        if found is None or client is None:
            return web.Response(
                status=HTTPStatus.SERVICE_UNAVAILABLE, text="no conversation to show the photo to"
            )
        entry = found[0]
        try:
            image = await async_scale(hass, photo, max_side(entry), jpeg_only=True)
        except ImageError as err:
            LOGGER.warning("Device %s sent a photo that is not usable: %s", mac, err)
            return web.Response(status=HTTPStatus.BAD_REQUEST, text=f"bad photo: {err}")
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
        return web.Response(
            text=PHOTO_IN_CONVERSATION.format(question=question or "what do you see?")
        )


async def _read_upload(request: web.Request) -> tuple[str, bytes | None]:
    """The `question` text and the `file` bytes, streamed under the size cap."""
    reader = await request.multipart()
    question = ""
    photo: bytes | None = None
    budget = MAX_UPLOAD_BYTES
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            raise ValueError("nested multipart")  # noqa: TRY004 - a malformed body
        if part.name == "question":
            raw = await _read_part(part, min(budget, MAX_QUESTION_BYTES))
            question = raw.decode("utf-8", "replace").strip()
        elif part.name == "file":
            photo = await _read_part(part, budget)
            raw = photo
        else:
            raw = await _read_part(part, min(budget, MAX_QUESTION_BYTES))
        budget -= len(raw)
    return question, photo


async def _refuse_unread(request: web.Request) -> web.Response:
    """Answer 413 and close the connection: the rest of the body is never read.

    (aiohttp would otherwise linger, reading and discarding the body for up to 10 s.)
    """
    response = web.Response(status=HTTPStatus.REQUEST_ENTITY_TOO_LARGE, text="photo too large")
    response.force_close()
    await response.prepare(request)
    await response.write_eof()
    request.protocol.force_close()
    return response
