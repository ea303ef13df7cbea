"""Open a Realtime WebSocket and turn handshake and close failures into typed errors."""

from __future__ import annotations

import logging
from typing import Final

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from .endpoint import RealtimeEndpoint, redact_url
from .errors import (
    RealtimeAuthError,
    RealtimeConnectionError,
    RealtimeError,
    RealtimeQuotaError,
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


async def async_open(
    endpoint: RealtimeEndpoint, *, open_timeout: float, ping_interval: float | None = PING_INTERVAL
) -> ClientConnection:
    """Connect with auth headers, a bounded message size and keepalive pings; raise typed errors."""
    url = endpoint.url()
    _LOGGER.debug("Connecting to %s", redact_url(url))
    try:
        return await connect(
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
            raise RealtimeQuotaError("server is rate limiting connections (HTTP 429)") from None
        raise RealtimeConnectionError(f"handshake failed with HTTP {status}") from None
    except (InvalidURI, InvalidHandshake) as err:
        message = redact(str(err).replace(url, redact_url(url)), endpoint.api_key)
        raise RealtimeConnectionError(f"handshake failed: {message}") from None
    except TimeoutError:
        raise RealtimeConnectionError(f"no handshake within {open_timeout:g} s") from None
    except OSError as err:
        raise RealtimeConnectionError(f"cannot connect: {err.strerror or err}") from None


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
