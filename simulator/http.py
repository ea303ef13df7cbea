"""JSON over HTTP with the standard library, for scripts that drive a Home Assistant instance."""

from __future__ import annotations

import json
from typing import Any
import urllib.error
import urllib.parse
import urllib.request


class HttpError(OSError):
    """A request was answered with an error status; keeps the status and the body."""

    def __init__(self, status: int, body: str) -> None:
        """Keep the status and the start of the body for messages."""
        super().__init__(f"HTTP {status}: {body[:300]}")
        self.status = status
        self.body = body


def http(
    method: str,
    url: str,
    *,
    token: str | None = None,
    body: Any = None,
    form: dict[str, str] | None = None,
    timeout: float = 30.0,
) -> Any:
    """Send a JSON body (or a form) and return the decoded JSON reply, or its text if not JSON."""
    headers: dict[str, str] = {}
    data = None
    if form is not None:
        data = urllib.parse.urlencode(form).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    elif body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=data, headers=headers, method=method)  # noqa: S310 - our instance
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:  # noqa: S310 - as above
            text: str = resp.read().decode()
    except urllib.error.HTTPError as err:
        raise HttpError(err.code, err.read().decode(errors="replace")) from err
    try:
        return json.loads(text)
    except ValueError:
        return text
