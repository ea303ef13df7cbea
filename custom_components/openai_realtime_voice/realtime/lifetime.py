"""How long a session may live: the service's `expires_at`, checked against what is known.

The service gives `expires_at` in session.created as an epoch time on its own clock. A host
clock that is off by an hour, or a server that sends the seconds left instead, turns a naive
`expires_at - time.time()` into "expired already" and every new session into an immediate
renewal. So the seconds left are read against the service's clock (the upgrade's `Date`
header) and must fit the known session limit; anything else is ignored and the known limit
is used. Session age itself is measured on the monotonic clock from the session's creation.
"""

from __future__ import annotations

from collections.abc import Mapping
from email.utils import parsedate_to_datetime
import logging
import time
from typing import Final

__all__ = ["AZURE_SESSION_LIMIT", "OPENAI_SESSION_LIMIT", "expires_in", "service_time"]

_LOGGER = logging.getLogger(__name__)

# "Realtime sessions can now last up to 60 minutes" (realtime-protocol.md §3.3); Azure: 30.
OPENAI_SESSION_LIMIT: Final = 60 * 60.0
AZURE_SESSION_LIMIT: Final = 30 * 60.0
# The service's `expires_at` is its creation time plus the limit; the `Date` header it is read
# against has whole seconds, and the upgrade and session.created are a moment apart.
_TOLERANCE: Final = 60.0


def service_time(headers: Mapping[str, str] | None) -> float | None:
    """The service's clock (epoch seconds) from an HTTP `Date` header, if it sent a valid one."""
    value = headers.get("Date") if headers is not None else None
    if not value:
        return None
    try:
        return parsedate_to_datetime(value).timestamp()
    except TypeError, ValueError, IndexError, OverflowError:
        return None


def expires_in(expires_at: float | None, limit: float, service_now: float | None) -> float | None:
    """Seconds the new session has left per the service, or None when that is not plausible.

    `expires_at` is read against `service_now` (this host's clock when the service sent no
    `Date`). A value no bigger than the limit itself is taken as seconds left (a server that
    sends a duration; no epoch time is that small). A time in the past or beyond the known
    `limit` says more about a clock than about the session, and is ignored.
    """
    if expires_at is None:
        return None
    if 0 < expires_at <= limit + _TOLERANCE:
        return min(expires_at, limit)
    now = service_now if service_now is not None else time.time()
    left = expires_at - now
    if 0 < left <= limit + _TOLERANCE:
        return min(left, limit)
    _LOGGER.debug(
        "Ignoring expires_at %.0f: %+.0f s away on %s clock, outside the %.0f s session limit",
        expires_at,
        left,
        "the service's" if service_now is not None else "this host's",
        limit,
    )
    return None
