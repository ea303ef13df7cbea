"""Open a Realtime WebSocket and turn handshake and close failures into typed errors."""

from __future__ import annotations

import contextlib
from email.utils import parsedate_to_datetime
import json
import logging
import math
import time
from typing import Any, Final

from websockets.asyncio.client import ClientConnection, connect
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI
from websockets.http11 import Response
from websockets.uri import parse_uri

from .endpoint import RealtimeEndpoint, redact_url
from .errors import (
    QUOTA_ERROR_CODES,
    RealtimeAuthError,
    RealtimeConnectionError,
    RealtimeError,
    RealtimeInvalidEndpointError,
    RealtimeQuotaError,
    RealtimeRateLimitError,
    RealtimeSessionClosed,
    error_for_code,
    redact,
)

__all__ = [
    "MAX_MESSAGE_BYTES",
    "RETRYABLE_CLOSE_CODES",
    "async_open",
    "closed_error",
    "error_for_close",
    "retry_after",
    "too_many_requests",
]

_LOGGER = logging.getLogger(__name__)

_SECRET_HEADERS: Final = frozenset({"authorization", "api-key"})


class _WireLogFilter(logging.Filter):
    """Keep the websockets library's debug log free of credentials and payload dumps.

    The library logs every handshake header (including `Authorization`) and a prefix of every
    frame; headers carrying secrets and the request line's query values are redacted, and
    frame dumps (base64 audio) are dropped.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if not isinstance(args, tuple) or not args:
            return True
        if record.msg in ("> %s", "< %s"):
            return False
        if record.msg == "> GET %s HTTP/1.1":
            record.args = (redact_url(str(args[0])),)
        if len(args) == 2 and str(args[0]).lower() in _SECRET_HEADERS:
            record.args = (args[0], "<redacted>")
        return True


_WIRE_LOGGER = logging.getLogger(f"{__name__.rpartition('.')[0]}.wire")
_WIRE_LOGGER.addFilter(_WireLogFilter())

# Close codes after which a new session may succeed (the openai SDK's recoverable set).
RETRYABLE_CLOSE_CODES: Final = frozenset({1000, 1001, 1005, 1006, 1011, 1012, 1013, 1014, 1015})
CLOSE_BETA_SHAPE_DISABLED: Final = 4000
PING_INTERVAL: Final = 20.0
# The largest server message accepted. Audio deltas are a few KiB and a full session.updated
# with long instructions and many tools stays well below 1 MiB; a bigger message closes the
# connection (1009) instead of buffering whatever the other end sends.
MAX_MESSAGE_BYTES: Final = 4 * 1024 * 1024
RETRY_AFTER_MAX: Final = 60.0  # the longest `retry-after` honoured (seconds)


class _CrossOriginRedirectError(InvalidHandshake):
    """The server redirected the upgrade to another origin (scheme, host or port)."""

    def __init__(self, location: str) -> None:
        super().__init__(location)
        self.location = location


class _SameOriginConnect(connect):
    """websockets' `connect`, following redirects only within the base URL's origin.

    The library sends the same headers (the API key) to wherever a redirect points, across
    hosts too for `ws://`; a redirect to another origin is refused before anything is sent.
    """

    def process_redirect(self, exc: Exception) -> Exception | str:
        target = super().process_redirect(exc)
        if isinstance(target, str) and _origin(target) != _origin(self.uri):
            return _CrossOriginRedirectError(target)
        return target


def _origin(uri: str) -> tuple[bool, str, int]:
    parsed = parse_uri(uri)
    return parsed.secure, parsed.host.lower(), parsed.port


async def async_open(
    endpoint: RealtimeEndpoint, *, open_timeout: float, ping_interval: float | None = PING_INTERVAL
) -> ClientConnection:
    """Connect with auth headers, a bounded message size and keepalive pings; raise typed errors."""
    url = endpoint.url()
    _LOGGER.debug("Connecting to %s", redact_url(url))
    try:
        return await _SameOriginConnect(
            url,
            additional_headers=endpoint.headers(),
            max_size=MAX_MESSAGE_BYTES,
            open_timeout=open_timeout,
            ping_interval=ping_interval,
            ping_timeout=ping_interval,
            close_timeout=2,
            compression=None,
            logger=_WIRE_LOGGER,
        )
    except InvalidStatus as err:
        status = err.response.status_code
        if status in (401, 403):
            raise RealtimeAuthError(f"server rejected the API key (HTTP {status})") from None
        if status == 429:
            raise too_many_requests(err.response, endpoint.api_key) from None
        raise RealtimeConnectionError(f"handshake failed with HTTP {status}") from None
    except _CrossOriginRedirectError as err:
        raise RealtimeInvalidEndpointError(
            f"the server redirected to another origin ({redact_url(err.location)}); the API "
            "key is only sent to the base URL's host: use that address as the base URL"
        ) from None
    except (InvalidURI, InvalidHandshake) as err:
        message = redact(str(err).replace(url, redact_url(url)), endpoint.api_key)
        raise RealtimeConnectionError(f"handshake failed: {message}") from None
    except TimeoutError:
        raise RealtimeConnectionError(f"no handshake within {open_timeout:g} s") from None
    except OSError as err:
        raise RealtimeConnectionError(f"cannot connect: {err.strerror or err}") from None


def too_many_requests(response: Response, api_key: str) -> RealtimeError:
    """What an HTTP 429 refusing the upgrade means: out of quota, or rate limited.

    OpenAI sends 429 for both, told apart by the body's `error.code` (or `type`):
    `insufficient_quota` is an account out of credit, `rate_limit_exceeded` a key over its
    per-minute limits (Azure: 429 with `retry-after`). A 429 without such a body is what
    RFC 6585 defines it as, too many requests: retried after a backoff.
    """
    error: dict[str, Any] = {}
    with contextlib.suppress(ValueError):
        body = json.loads(response.body or b"")
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            error = body["error"]
    code = next(
        (v for v in (error.get("code"), error.get("type")) if v in QUOTA_ERROR_CODES),
        error.get("code"),
    )
    message = redact(str(error.get("message") or "too many requests")[:300], api_key)
    if code in QUOTA_ERROR_CODES:
        return RealtimeQuotaError(f"{code}: {message} (HTTP 429)")
    wait = retry_after(response.headers)
    label = code if isinstance(code, str) and code else "HTTP 429"
    after = f"; retry after {wait:g} s" if wait is not None else ""
    return RealtimeRateLimitError(f"{label}: {message}{after}", retry_after=wait)


def retry_after(headers: Headers) -> float | None:
    """The wait a 429 asks for (`retry-after-ms`, `retry-after` seconds or date), bounded.

    Like the openai SDK's `_parse_retry_after_header`; waits beyond `RETRY_AFTER_MAX` are cut
    to it (the SDK ignores those beyond two minutes): a voice session is not down longer.
    """
    wait: float | None = None
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        with contextlib.suppress(ValueError):
            wait = float(headers.get(name, "")) * scale
            break
    if wait is None and (date := headers.get("retry-after")):
        with contextlib.suppress(TypeError, ValueError, IndexError, OverflowError):
            wait = parsedate_to_datetime(date).timestamp() - time.time()
    if wait is None or not math.isfinite(wait) or wait <= 0:
        return None
    return min(wait, RETRY_AFTER_MAX)


def error_for_close(code: int | None, reason: str) -> RealtimeError:
    """Map a WebSocket close frame to the typed error it implies."""
    for word in reason.replace(":", " ").split():
        if (fatal := error_for_code(word, reason)) is not None:
            if isinstance(fatal, RealtimeSessionClosed):
                fatal.code = code
            return fatal
    if code == CLOSE_BETA_SHAPE_DISABLED:
        return RealtimeSessionClosed(
            f"server refused the protocol shape ({code} {reason})", code=code, reason=reason
        )
    if code is None or code in RETRYABLE_CLOSE_CODES or 1000 <= code < 4000:
        return RealtimeConnectionError(f"connection closed ({code} {reason})".rstrip())
    return RealtimeSessionClosed(f"connection closed ({code} {reason})", code=code, reason=reason)


def closed_error(err: ConnectionClosed) -> RealtimeError:
    """Map a websockets ConnectionClosed to a typed error (no close frame means a network drop)."""
    frame = err.rcvd
    if frame is None:
        return RealtimeConnectionError("connection dropped")
    return error_for_close(frame.code, frame.reason)
