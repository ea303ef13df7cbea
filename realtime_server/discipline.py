"""How the Realtime service ends, refuses or tags sessions: the test server's discipline options.

`RealtimeServer.discipline` (server.py) holds these switches. Each models a
behaviour of the service, or of a compatible server, that the client must survive without a
session storm, a false repair or a leaked key (issue 28 items 1-3, 9, 10; issue 29 item 10):

- `clock_skew`: the service's clock minus this host's. `-3660` is a host clock 61 minutes
  fast: `expires_at` and the upgrade's `Date` header come from the service's clock.
- `relative_expires_at`: a server that sends the seconds left instead of an epoch time.
- `drop_after_open`: every session is closed with 1011 this long after `session.created`.
- `handshake_429`: the upgrade is refused with HTTP 429 and one of the two bodies OpenAI sends
  for it (`rate_limit_exceeded` or `insufficient_quota`), with `retry-after` when given.
- `echo_metadata`: False drops `metadata` from response.created/response.done (LocalAI).
- `transcription_usage`: the `usage` of each input transcription (billed separately).
- `redirect_to`: the upgrade is answered with a 302 to that URL (an `http://` base URL that
  moved); `handshakes` records the headers of every upgrade request the server saw.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from http import HTTPStatus
import json
import time
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

# The bodies OpenAI sends with HTTP 429 (its error-code guide; the API's JSON error shape
# `{"error": {"message", "type", "param", "code"}}`). The same status means two things: an
# account out of credit (`insufficient_quota`, e.g. simonw/llm#494, NextChat#3664) and a
# key over its per-minute limits ("Rate limit reached for ... on requests per min", type
# `requests`: mmz-001/knowledge_gpt#5; code `rate_limit_exceeded`: JECT-Study/PICK-O-Server#868).
# Azure adds `retry-after`; the openai SDK honours it (`_parse_retry_after_header`).
QUOTA_BODY: dict[str, Any] = {
    "error": {
        "message": "You exceeded your current quota, please check your plan and billing details.",
        "type": "insufficient_quota",
        "param": None,
        "code": "insufficient_quota",
    }
}
RATE_LIMIT_BODY: dict[str, Any] = {
    "error": {
        "message": "Rate limit reached for gpt-realtime on requests per min (RPM): Limit 100, "
        "Used 100, Requested 1. Please try again in 2s.",
        "type": "requests",
        "param": None,
        "code": "rate_limit_exceeded",
    }
}
# "Duration of the input audio in seconds" (SDK UsageTranscriptTextUsageDuration, whisper-1);
# the gpt-4o transcribe models report tokens instead (UsageTranscriptTextUsageTokens).
DURATION_USAGE: dict[str, Any] = {"type": "duration", "seconds": 1.0}
TOKEN_USAGE: dict[str, Any] = {
    "type": "tokens",
    "input_tokens": 27,
    "output_tokens": 9,
    "total_tokens": 36,
    "input_token_details": {"text_tokens": 2, "audio_tokens": 25},
}


@dataclass
class ServiceDiscipline:
    """The switches above; the defaults are the well-behaved service."""

    clock_skew: float = 0.0
    relative_expires_at: bool = False
    drop_after_open: float | None = None
    handshake_429: dict[str, Any] | None = None
    retry_after: str | None = None
    echo_metadata: bool = True
    transcription_usage: dict[str, Any] = field(default_factory=lambda: dict(DURATION_USAGE))
    redirect_to: str | None = None
    handshakes: list[dict[str, str]] = field(default_factory=list)
    opened: list[float] = field(default_factory=list)  # loop time of each session.created

    def now(self) -> float:
        """The service's clock."""
        return time.time() + self.clock_skew

    def expires_at(self, lifetime: float) -> int:
        """session.created's `expires_at`: "Expiration timestamp for the session, in seconds
        since epoch" (SDK RealtimeSessionCreateResponse), on the service's clock."""
        if self.relative_expires_at:
            return int(lifetime)
        return int(self.now() + lifetime)

    def metadata(self, params: dict[str, Any]) -> Any:
        """The service echoes a response.create's `metadata` in its response.created and
        response.done (realtime-protocol.md §3.1); LocalAI's realtime.go does not."""
        return params.get("metadata") if self.echo_metadata else None

    def rate_limited(self, retry_after: str | None = "2") -> None:
        """Refuse upgrades with 429 `rate_limit_exceeded` (and `retry-after` when given)."""
        self.handshake_429 = RATE_LIMIT_BODY
        self.retry_after = retry_after

    def out_of_quota(self) -> None:
        """Refuse upgrades with 429 `insufficient_quota`."""
        self.handshake_429 = QUOTA_BODY
        self.retry_after = None

    def refuse_handshake(self, connection: ServerConnection, request: Request) -> Response | None:
        """The HTTP answer that replaces the upgrade, if one does."""
        if self.redirect_to is not None and not _is_at(self.redirect_to, request):
            response = connection.respond(HTTPStatus.FOUND, "moved\n")
            response.headers["Location"] = self.redirect_to
            return response
        if self.handshake_429 is None:
            return None
        response = connection.respond(HTTPStatus.TOO_MANY_REQUESTS, "")
        body = json.dumps(self.handshake_429).encode()
        del response.headers["Content-Type"]
        del response.headers["Content-Length"]
        response.headers["Content-Type"] = "application/json"
        response.headers["Content-Length"] = str(len(body))
        if self.retry_after is not None:
            response.headers["retry-after"] = self.retry_after
        response.body = body
        return response

    async def drop_later(self, ws: ServerConnection, delay: float) -> None:
        """Close an open session with 1011 (internal error) after `delay` seconds."""
        await asyncio.sleep(delay)
        with contextlib.suppress(ConnectionClosed):  # the client may have left first
            await ws.close(1011, "internal error")


def _is_at(url: str, request: Request) -> bool:
    """Whether a request already reached `url` (its host, port and path)."""
    target = urlsplit(url)
    path = f"{target.path}?{target.query}" if target.query else target.path
    return (target.netloc, path) == (request.headers.get("Host"), request.path)
