"""Media ids in a call's data that reach Home Assistant's own content, vetted before the call.

Two forms of id reach what Home Assistant serves:

- `media-source://<source>/<id>`: the camera and image sources name an entity, which must be
  exposed; sources that serve camera recordings by their own ids are refused.
- URLs: a path (`/api/camera_proxy/camera.porch`) or an absolute URL to Home Assistant itself.
  Player integrations (cast, sonos, dlna_dmr, kodi, esphome...) pass the id through
  `media_player.async_process_play_media_url`, which signs any such path for 24 hours, as the
  calling user or Home Assistant's read-only content user, and the signed URL goes to the
  player in clear. Camera and image proxies are refused whatever the host (which names reach
  Home Assistant cannot be known for sure; an exposed camera plays through its media-source
  id), and so is every other authenticated API path on Home Assistant's own host: signed, they
  read states, history and logs. Paths Home Assistant serves without authentication (it does not
  sign them) and everything outside `/api/` and `/auth/` (`/local/`, `/media/`) pass.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import suppress
from ipaddress import ip_address
import posixpath
import re
from typing import Any, Final

from homeassistant.core import HomeAssistant
from homeassistant.helpers.network import is_hass_url
import yarl

from . import policy

MEDIA_SOURCE_SCHEME: Final = "media-source://"
_WEB_SCHEMES: Final = frozenset({"http", "https", "ws", "wss"})
_PROXY: Final = re.compile(r"(^|/)(camera|image)_proxy(_stream)?(/|$)")
_API_PREFIXES: Final = ("/api/", "/auth/")
# Paths Home Assistant serves without authentication, which it never signs (PATHS_WITHOUT_AUTH
# of homeassistant.components.media_player.browse_media).
_UNSIGNED_PREFIXES: Final = (
    "/api/tts_proxy/",
    "/api/esphome/ffmpeg_proxy/",
    "/api/assist_satellite/static/",
)


class MediaRefusedError(Exception):
    """A media id we refuse; the message is written for the model."""


def media_entities(
    hass: HomeAssistant, value: Any, check_named: Callable[[list[str]], None]
) -> list[str]:
    """The entities the media ids in a value name, each passed to `check_named`.

    Raises MediaRefusedError for camera recordings and for paths Home Assistant would sign.
    """
    found: list[str] = []
    for text in _strings(value):
        uri = text.strip()
        if uri.lower().startswith(MEDIA_SOURCE_SCHEME):
            if (entity_id := _media_source_entity(uri)) is not None:
                check_named([entity_id])
                found.append(entity_id)
        else:
            _check_url(hass, uri)
    return found


def _media_source_entity(uri: str) -> str | None:
    """The entity a media-source id names (camera, image), else None; refuse recordings."""
    source, _, identifier = uri[len(MEDIA_SOURCE_SCHEME) :].partition("/")
    source = source.lower()
    if source in policy.RECORDING_MEDIA_SOURCES:
        raise MediaRefusedError(f"Media from {source} (camera recordings) cannot be played.")
    if source in policy.ENTITY_MEDIA_SOURCES:
        return identifier.strip("/").strip().lower()
    return None


def _check_url(hass: HomeAssistant, text: str) -> None:
    """Refuse a URL or path that reaches a camera or image proxy, or HA's authenticated API."""
    try:
        url = yarl.URL(text)
    except ValueError, TypeError:
        return  # Home Assistant cannot parse it either: it signs nothing
    relative = not url.is_absolute()
    if relative and not text.startswith("/"):
        return  # not a path (a plain name, an id of the player's own)
    if not relative and url.scheme and url.scheme.lower() not in _WEB_SCHEMES:
        return
    # The decoded path is what Home Assistant signs and routes; collapse `//`, `.` and `..`.
    path = posixpath.normpath("/" + url.path.lower()).replace("//", "/")
    if _PROXY.search(path):
        raise MediaRefusedError(
            "Camera and image proxy URLs cannot be played. An exposed camera plays through "
            "media-source://camera/<entity_id>."
        )
    if (
        path.startswith(_API_PREFIXES)
        and not path.startswith(_UNSIGNED_PREFIXES)
        and (relative or _is_own_host(hass, url))
    ):
        raise MediaRefusedError(
            "Home Assistant's own API paths cannot be played on a media player."
        )


def _is_own_host(hass: HomeAssistant, url: yarl.URL) -> bool:
    """Whether an absolute URL points at this Home Assistant (any port, any scheme)."""
    host = (url.host or "").lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    with suppress(ValueError):
        address = ip_address(host)
        if address.is_loopback or address.is_unspecified:
            return True
    own = {
        (yarl.URL(base).host or "").lower()
        for base in (hass.config.internal_url, hass.config.external_url)
        if base
    }
    if hass.config.api is not None:
        own.add(str(hass.config.api.local_ip).lower())
    if host in own:
        return True
    with suppress(ValueError):
        return is_hass_url(hass, str(url.with_scheme(url.scheme.lower()) if url.scheme else url))
    return False


def _strings(value: Any) -> list[str]:
    """Every string in a value, nested lists and mappings included (keys too)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping):
        return [text for key, item in value.items() for text in (*_strings(key), *_strings(item))]
    if isinstance(value, (list, tuple)):
        return [text for item in value for text in _strings(item)]
    return []
