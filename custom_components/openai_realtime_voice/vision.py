"""Image input: who may upload pictures, and how a picture reaches a Realtime conversation.

A device camera (xiaozhi `self.camera.take_photo`) gets a vision URL and a short-lived token in
the MCP `initialize` of each connection; the token is random, stored only as a hash, ends with the
connection and after `VISION_TOKEN_LIFETIME` at the latest. An upload is accepted only as the
answer to a `take_photo` call of that device still waiting for its reply, one upload per call and
one at a time per device. Pictures are scaled in an executor and never stored.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import partial
import hashlib
import secrets
import time
from typing import Any, Final

from homeassistant.config_entries import ConfigEntry, ConfigSubentry
from homeassistant.core import HomeAssistant

from .agents import agent_settings, device_agent
from .const import (
    CONF_DIALECT,
    CONF_IMAGE_INPUT,
    CONF_IMAGE_MAX_SIDE,
    DEFAULT_IMAGE_INPUT,
    DIALECT_BETA,
)
from .images import (
    ANY_PICTURE,
    DEFAULT_MAX_SIDE,
    MAX_MAX_SIDE,
    MIN_MAX_SIDE,
    ScaledImage,
    SourceLimits,
    scale_picture,
)
from .profile import profile_of
from .realtime import RealtimeClient

TAKE_PHOTO_TOOL: Final = "self.camera.take_photo"
"""The firmware's camera tool (`McpServer::AddCommonTools`): it uploads the photo to the vision
URL (`Esp32Camera::Explain`) and replies only once the upload has been answered."""

CONF_CAMERA: Final = "camera"
"""Profile key: False turns the device's camera off (no vision URL in its `initialize`)."""

VISION_TOKEN_LIFETIME: Final = 3600.0
"""Seconds a device's vision token stays valid at most (it ends with the connection anyway)."""

PARK_LIFETIME: Final = 60.0
"""Seconds a tool's picture waits for its runner before it is dropped."""


def image_input_allowed(entry: ConfigEntry[Any], subentry: ConfigSubentry | None = None) -> bool:
    """Whether the device's agent (else the first) allows image input, and the device's profile
    keeps its camera on.

    The beta (`realtime=v1`) dialect has no `input_image` content: never for it.
    """
    settings = agent_settings(entry, device_agent(entry, subentry))
    return settings_allow_images(entry, settings) and (
        profile_of(subentry).get(CONF_CAMERA) is not False
    )


def settings_allow_images(entry: ConfigEntry[Any], settings: Mapping[str, Any]) -> bool:
    """Whether an agent's settings allow image input on this entry's connection."""
    if entry.data.get(CONF_DIALECT) == DIALECT_BETA:
        return False
    return bool(settings.get(CONF_IMAGE_INPUT, DEFAULT_IMAGE_INPUT))


def max_side(entry: ConfigEntry[Any], subentry: ConfigSubentry | None = None) -> int:
    """The long side, in pixels, pictures are scaled down to for a device's agent."""
    return settings_max_side(agent_settings(entry, device_agent(entry, subentry)))


def settings_max_side(settings: Mapping[str, Any]) -> int:
    """The long side, in pixels, an agent's settings scale pictures down to."""
    value = settings.get(CONF_IMAGE_MAX_SIDE, DEFAULT_MAX_SIDE)
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return DEFAULT_MAX_SIDE
    return min(max(int(value), MIN_MAX_SIDE), MAX_MAX_SIDE)


def agent_image_side(entry: ConfigEntry[Any], settings: Mapping[str, Any]) -> int | None:
    """The snapshot size an agent with these settings looks at cameras with; None when images
    are off."""
    return settings_max_side(settings) if settings_allow_images(entry, settings) else None


async def async_scale(
    hass: HomeAssistant, data: bytes, side: int, *, source: SourceLimits = ANY_PICTURE
) -> ScaledImage:
    """Decode and scale a picture in the executor (raises `ImageError`)."""
    job = partial(scale_picture, data, side, source=source)
    return await hass.async_add_executor_job(job)


class UploadRefused(StrEnum):
    """Why a device's photo upload is not read."""

    NOT_ASKED = "no photo was asked for"
    BUSY = "another photo of this device is being uploaded"


@dataclass(frozen=True, slots=True)
class _Grant:
    mac: str
    expires: float


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class VisionHub:
    """Vision tokens of the connected devices, and how many pictures each entry sent."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        """Start with no tokens; `clock` is injectable to test expiry."""
        self.clock = clock
        self.lifetime = VISION_TOKEN_LIFETIME
        self._grants: dict[str, _Grant] = {}
        self._by_mac: dict[str, str] = {}
        self.images_sent: Counter[str] = Counter()
        """Pictures given to a model, by config entry ID."""
        self.device_images: Counter[str] = Counter()
        """Pictures a device camera uploaded, by MAC."""
        self._parked: dict[str, tuple[float, ScaledImage]] = {}
        self._uploading: set[str] = set()
        """MACs whose upload is being read or scaled right now."""
        self._answered: dict[str, set[int]] = {}
        """By MAC: the pending `take_photo` calls (MCP request ids) that already got a photo."""

    def issue(self, mac: str) -> str:
        """A fresh token for this device's connection; any earlier one stops working."""
        self.revoke(mac)
        token = secrets.token_urlsafe(32)
        digest = _digest(token)
        self._grants[digest] = _Grant(mac, self.clock() + self.lifetime)
        self._by_mac[mac] = digest
        return token

    def check(self, mac: str | None, token: str | None) -> bool:
        """Whether the token is the live one of this device."""
        if mac is None or token is None:
            return False
        grant = self._grants.get(_digest(token))
        if grant is None or not secrets.compare_digest(grant.mac, mac):
            return False
        if self.clock() >= grant.expires:
            self.revoke(mac, token)
            return False
        return True

    def revoke(self, mac: str, token: str | None = None) -> None:
        """Forget the device's token (its connection ended).

        With `token`, only while it is still the live one: a connection that was replaced
        ends after its successor got a token of its own, which stays valid.
        """
        digest = self._by_mac.get(mac)
        if digest is None or (token is not None and digest != _digest(token)):
            return
        del self._by_mac[mac]
        self._grants.pop(digest, None)
        self._answered.pop(mac, None)

    def claim_upload(self, mac: str, calls: Collection[int]) -> int | UploadRefused:
        """The pending `take_photo` call (its MCP request id) this device's upload answers.

        `calls` are the device's calls still waiting for their reply. Each takes one photo,
        and a device uploads one photo at a time (the firmware's tool runs on its main task,
        one call after the other): an upload beyond that is refused before it is read. The
        claim holds until `release_upload`.
        """
        if mac in self._uploading:
            return UploadRefused.BUSY
        answered = self._answered.get(mac, set()) & set(calls)  # ended calls are forgotten
        free = sorted(set(calls) - answered)
        if not free:
            if answered:
                self._answered[mac] = answered
            else:
                self._answered.pop(mac, None)
            return UploadRefused.NOT_ASKED
        self._answered[mac] = answered | {free[0]}
        self._uploading.add(mac)
        return free[0]

    def release_upload(self, mac: str) -> None:
        """The device's upload is over (answered or refused); its call stays answered."""
        self._uploading.discard(mac)

    def uploading(self, mac: str) -> bool:
        """Whether an upload of this device is being read or scaled."""
        return mac in self._uploading

    def park(self, call_id: str, image: ScaledImage) -> None:
        """Keep a tool's picture until its runner collects it (uncollected ones expire)."""
        now = self.clock()
        for stale in [k for k, (t, _) in self._parked.items() if now - t > PARK_LIFETIME]:
            del self._parked[stale]
        self._parked[call_id] = (now, image)

    def collect(self, call_id: str) -> ScaledImage | None:
        """The picture a tool call parked, if any (removed: it is sent once)."""
        parked = self._parked.pop(call_id, None)
        return parked[1] if parked is not None else None

    @property
    def parked(self) -> int:
        """Pictures waiting for their runner."""
        return len(self._parked)

    @property
    def live_tokens(self) -> int:
        """Tokens issued and not yet revoked (for tests and diagnostics)."""
        return len(self._grants)


async def async_send_parked(
    vision: VisionHub, client: RealtimeClient, call_ids: Iterable[str], entry_id: str
) -> None:
    """Add the pictures these tool calls parked to the conversation, before their outputs."""
    for call_id in call_ids:
        if (image := vision.collect(call_id)) is not None:
            await client.add_user_image(image.data_url)
            vision.images_sent[entry_id] += 1
