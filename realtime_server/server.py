"""The test server: a scriptable Realtime service on 127.0.0.1 (see the package docstring).

`RealtimeServer` accepts WebSocket upgrades the way the service does (key, path, model,
refusals of `discipline`), keeps one `Session` per connection, validates what the client
sends and records it for the tests, and offers the test controls (script responses, drop or
close the connection, wait for events).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
import contextlib
import copy
import email.utils
from http import HTTPStatus
import itertools
import json
import logging
import socket
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from simulator.changes import Changes, Listener

from .discipline import ServiceDiscipline
from .protocol import (
    API_KEY,
    BETA_DISABLED,
    BETA_EVENT_NAMES,
    GA_ONLY_EVENTS,
    SESSION_LIFETIME,
    client_event_problems,
    input_images,
    server_event_problems,
)
from .refusals import refuse_beta_shape
from .scenario import Scenario
from .scripts import ScriptedResponse
from .session import Session

# The server's own handshake log would show the client's key; the client side is what the
# integration's tests check for leaks, so the stand-in service logs its wire at INFO only.
_WIRE_LOGGER = logging.getLogger("realtime_server.wire")
_WIRE_LOGGER.setLevel(logging.INFO)


class RealtimeServer:
    """Scriptable Realtime server on 127.0.0.1 (see the module docstring)."""

    def __init__(
        self,
        *,
        api_key: str = API_KEY,
        model: str = "gpt-realtime",
        beta: bool = False,
        port: int = 0,
        scenario: Scenario | None = None,
    ) -> None:
        """Configure; call `start()` to listen (on `port`, 0 picks a free one)."""
        self.api_key = api_key
        self.model = model
        self.beta = beta
        self.scenario = scenario
        self.reject_auth = False
        self.handshake_status: int | None = None
        self.stall = False
        # Seconds from the WebSocket upgrade to `session.created`: the real service takes
        # 0.3-0.8 s from connect to a configured session; 0 answers at once.
        self.accept_delay = 0.0
        self.on_connect_error: dict[str, Any] | None = None
        self.close_on_connect: tuple[int, str] | None = None
        self.user_transcript: str | None = None
        # Behaviours of the real service a test can switch on:
        self.transcript_after_response = False  # input transcripts follow the turn's response
        self.transcript_delay = 0.0  # ... by this many seconds after its response.done
        self.reject_responses: deque[tuple[str, str]] = deque()  # next response.create errors
        # Setup refusals as the service sends them (`setting_refusal`, `model_refusal`):
        self.known_models: set[str] | None = None  # other models fail their responses
        self.transcription_models: set[str] | None = None  # others are `invalid_value`
        # Input transcription `commit_transcript_delay` s after the commit (None: at once,
        # or after the response with `transcript_after_response`).
        self.commit_transcript_delay: float | None = None
        self.transcription_fails = False  # `.failed` instead of each input transcript
        # Seconds from response.created to the first output: the model's time (0: at once).
        self.response_delay = 0.0
        self.session_lifetime = SESSION_LIFETIME  # seconds until `expires_at`
        # Session discipline (issue 28 items 1-3, 9, 10 and issue 29 item 10), each modelled
        # the way the service (or a compatible server) sends it; see `ServiceDiscipline`.
        self.discipline = ServiceDiscipline()
        self.received: list[dict[str, Any]] = []
        self.violations: list[str] = []
        self.responses: deque[ScriptedResponse] = deque()
        self.response_params: list[dict[str, Any]] = []
        self.responses_done = 0
        self.connections = 0
        self.models: list[str] = []  # the `model` of each handshake, in order
        self.sessions: list[Session] = []
        self.hooks: dict[str, Callable[[dict[str, Any]], Awaitable[bool | None]]] = {}
        self._ids = itertools.count(1)
        self._server: Server | None = None
        self._port = port
        self._changed = asyncio.Condition()
        self.changes = Changes()
        """Notified after each connection, received event and its handling, finished response
        and closed connection (`async_add_listener`, for event-driven waits in tests)."""

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen on 127.0.0.1 (the same port again after `refuse_connections`)."""
        self._server = await serve(
            self._handler,
            "127.0.0.1",
            self._port,
            process_request=self._process_request,
            process_response=self._process_response,
            max_size=None,
            compression=None,
            logger=_WIRE_LOGGER,
        )
        self._port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening and close every connection."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for session in self.sessions:
            tasks = [r.task for r in session.running.values() if r.task is not None]
            tasks += session.tails
            session.cancel_tasks()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def refuse_connections(self) -> None:
        """Stop listening but keep `url`: new connections are refused."""
        await self.stop()

    @property
    def url(self) -> str:
        """The http:// base URL, e.g. http://127.0.0.1:PORT/v1."""
        return f"http://127.0.0.1:{self._port}/v1"

    @property
    def session(self) -> Session:
        """The most recent connection's state."""
        return self.sessions[-1]

    def new_id(self, prefix: str) -> str:
        """A fresh id such as `item_7`."""
        return f"{prefix}_{next(self._ids)}"

    # -- test controls -----------------------------------------------------------------------

    def script(self, *responses: ScriptedResponse) -> None:
        """Queue responses played by the next `response.create` (or VAD-created response)."""
        self.responses.extend(responses)

    async def send(
        self, event: dict[str, Any], *, ws: ServerConnection | None = None, validate: bool = True
    ) -> None:
        """Send a server event (validated against the SDK types) to a connection."""
        event = {"event_id": self.new_id("event"), **event}
        kind = event["type"]
        if self.beta:
            if kind in GA_ONLY_EVENTS:
                return
            event["type"] = BETA_EVENT_NAMES.get(kind, kind)
        if validate:
            problems = server_event_problems(event, beta=self.beta)
            if problems:
                self.violations.append(f"server sent invalid {kind}: {problems}")
        target = ws or self.session.ws
        with contextlib.suppress(ConnectionClosed):
            await target.send(json.dumps(event))

    async def drop(self) -> None:
        """Abort the current connection without a close frame (a network drop)."""
        transport = self.session.ws.transport
        transport.abort()

    async def close_connection(self, code: int, reason: str = "") -> None:
        """Close the current connection with a close frame."""
        await self.session.ws.close(code, reason)

    async def session_expired(self) -> None:
        """Send the `session_expired` error and close with 1001, like the 60-minute limit."""
        message = "Your session hit the maximum duration of 60 minutes."
        await self.session.error("session_expired", message, None)
        await self.close_connection(1001, message)

    async def wait_for(self, kind: str, count: int = 1) -> dict[str, Any]:
        """Wait until `count` client events of a type arrived; return the last one."""
        async with self._changed:
            await self._changed.wait_for(lambda: len(self.of_type(kind)) >= count)
        return self.of_type(kind)[count - 1]

    async def wait_connections(self, count: int) -> None:
        """Wait until `count` connections have been accepted."""
        async with self._changed:
            await self._changed.wait_for(lambda: self.connections >= count)

    def images(self) -> list[bytes]:
        """Every picture the client added to the conversation, in order."""
        return [
            image
            for event in self.of_type("conversation.item.create")
            for image in input_images(event["item"])
        ]

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        """Received client events of one type."""
        return [event for event in self.received if event["type"] == kind]

    def async_add_listener(self, update: Listener) -> Callable[[], None]:
        """Call `update` after each change `changes` is notified of; returns the remover."""
        return self.changes.async_add_listener(update)

    async def _notify(self) -> None:
        self.changes.notify()
        async with self._changed:
            self._changed.notify_all()

    # -- connection handling -----------------------------------------------------------------

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        self.discipline.handshakes.append(dict(request.headers.raw_items()))
        if (response := self.discipline.refuse_handshake(connection, request)) is not None:
            return response
        if self.handshake_status is not None:
            return connection.respond(HTTPStatus(self.handshake_status), "refused\n")
        if not request.path.split("?")[0].endswith("/realtime"):
            return connection.respond(HTTPStatus.NOT_FOUND, "not found\n")
        bearer = request.headers.get("Authorization")
        api_key = request.headers.get("api-key")
        ok = bearer == f"Bearer {self.api_key}" or api_key == self.api_key
        if self.reject_auth or not ok:
            return connection.respond(HTTPStatus.UNAUTHORIZED, "invalid api key\n")
        if "model=" not in request.path:
            return connection.respond(HTTPStatus.BAD_REQUEST, "model is required\n")
        return None

    def _process_response(
        self, connection: ServerConnection, request: Request, response: Response
    ) -> Response | None:
        # The `Date` of the upgrade is the service's clock, skewed like `expires_at`.
        if "Date" in response.headers:
            del response.headers["Date"]
            response.headers["Date"] = email.utils.formatdate(self.discipline.now(), usegmt=True)
        return None

    async def _handler(self, ws: ServerConnection) -> None:
        session = Session(self, ws)
        self.sessions.append(session)
        self.connections += 1
        await self._notify()
        if self.stall:
            await ws.wait_closed()
            return
        if self.close_on_connect is not None:
            await ws.close(*self.close_on_connect)
            return
        if self.on_connect_error is not None:
            await session.send({"type": "error", "error": self.on_connect_error})
            await ws.close(1000)
            return
        if (refusal := self._refusal(ws)) is not None:
            await session.fatal(*refusal)
            return
        if self.accept_delay:
            await asyncio.sleep(self.accept_delay)
        # "expires_at: Expiration timestamp for the session, in seconds since epoch" (SDK
        # RealtimeSessionCreateResponse); the service ends the session at that moment.
        if not self.beta:
            session.session["expires_at"] = self.discipline.expires_at(self.session_lifetime)
        self.discipline.opened.append(asyncio.get_running_loop().time())
        await session.send({"type": "session.created", "session": copy.deepcopy(session.session)})
        if (drop := self.discipline.drop_after_open) is not None:
            dropper = asyncio.create_task(self.discipline.drop_later(ws, drop))
            session.tails.add(dropper)
            dropper.add_done_callback(session.tails.discard)
        try:
            async with asyncio.timeout(self.session_lifetime) as lifetime:
                async for raw in ws:
                    await self._receive(session, raw)
        except ConnectionClosed:
            pass
        except TimeoutError:
            if not lifetime.expired():
                raise
            await session.expire()
        finally:
            session.cancel_tasks()
            self.changes.notify()

    def _refusal(self, ws: ServerConnection) -> tuple[str, str, int, str | None] | None:
        """Why the service ends a new connection at once: (code, message, close code, event)."""
        request = ws.request
        if request is None:  # pragma: no cover - a handler always has its request
            return None
        if not self.beta and request.headers.get("OpenAI-Beta"):
            # The beta interface is shut down: langwatch/scenario#604 saw the error, then close
            # 4000 `beta_api_shape_disabled` (realtime-protocol.md §1.2).
            return BETA_DISABLED
        model = request.path.partition("model=")[2].partition("&")[0]
        self.models.append(model)
        return None

    async def _receive(self, session: Session, raw: str | bytes) -> None:
        try:
            event = json.loads(raw)
        except ValueError:
            self.violations.append(f"client sent invalid JSON: {raw[:80]!r}")
            await session.error("invalid_json", "invalid JSON", None)
            return
        problems = client_event_problems(event, beta=self.beta)
        event_id = event.get("event_id") if isinstance(event, dict) else None
        if problems and not self.beta and not client_event_problems(event, beta=True):
            self.received.append(event)
            await refuse_beta_shape(session, event)
            self.changes.notify()
            return
        if problems:
            kind = event.get("type") if isinstance(event, dict) else None
            self.violations.append(f"client sent invalid {kind}: {problems}")
            await session.error("invalid_event", "; ".join(problems), event_id)
            return
        self.received.append(event)
        await self._notify()
        hook = self.hooks.get(event["type"])
        if hook is not None and await hook(event):
            self.changes.notify()
            return
        await session.handle(event)
        self.changes.notify()


def closed_port_url() -> str:
    """A base URL whose port nobody listens on (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"
