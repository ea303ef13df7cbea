"""Home Assistant's WebSocket API, synchronously, for the development scripts.

One connection per `HomeAssistantSocket`; `command()` sends one command and returns its
result, raising `CommandError` with Home Assistant's message when it fails.
"""

from __future__ import annotations

import itertools
import json
from types import TracebackType
from typing import Any, Self

from websockets.sync.client import ClientConnection, connect

TIMEOUT = 30.0


class CommandError(Exception):
    """Home Assistant refused a command or the authentication."""


class HomeAssistantSocket:
    """An authenticated WebSocket API connection (a context manager)."""

    def __init__(self, base_url: str, token: str) -> None:
        """Connect on `__enter__` to `base_url` (http://host:port) with an access token."""
        self._url = base_url.replace("http", "ws", 1).rstrip("/") + "/api/websocket"
        self._token = token
        self._ids = itertools.count(1)
        self._ws: ClientConnection | None = None

    def __enter__(self) -> Self:
        """Connect and authenticate."""
        self._ws = connect(self._url, open_timeout=TIMEOUT, max_size=None)
        try:
            self._receive()  # auth_required
            self._ws.send(json.dumps({"type": "auth", "access_token": self._token}))
            reply = self._receive()
        except BaseException:
            self._ws.close()
            raise
        if reply.get("type") != "auth_ok":
            self._ws.close()
            raise CommandError(f"authentication failed: {reply.get('message', reply)}")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the connection."""
        if self._ws is not None:
            self._ws.close()

    def _receive(self) -> dict[str, Any]:
        assert self._ws is not None
        message: dict[str, Any] = json.loads(self._ws.recv(TIMEOUT))
        return message

    def command(self, kind: str, **data: Any) -> Any:
        """Run one command; its result."""
        assert self._ws is not None
        msg_id = next(self._ids)
        self._ws.send(json.dumps({"id": msg_id, "type": kind, **data}))
        while True:
            reply = self._receive()
            if reply.get("id") == msg_id and reply.get("type") == "result":
                break
        if not reply.get("success"):
            error = reply.get("error") or {}
            raise CommandError(f"{kind}: {error.get('message', reply)}")
        return reply.get("result")
