"""A small xiaozhi server on 127.0.0.1 built from the `xiaozhi` package, for end-to-end tests.

It serves the OTA check, `/activate` and the device WebSocket, drives a `DeviceSession` and an
`McpClient` per connection, and lets tests script the server side (speak, send frames).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestServer
import opuslib_next

from custom_components.openai_realtime_voice.xiaozhi import (
    AudioReceived,
    DeviceEvent,
    DeviceSession,
    HelloReceived,
    McpClient,
    McpNotification,
    McpReceived,
    ProtocolError,
    encode_object,
)

OTA_PATH = "/xiaozhi/ota/"
WS_PATH = "/xiaozhi/v1/"


class ServerConnection:
    """The server side of one device WebSocket."""

    def __init__(
        self, ws: web.WebSocketResponse, session: DeviceSession, headers: dict[str, str]
    ) -> None:
        """Wrap the socket and its protocol state."""
        self.ws = ws
        self.session = session
        self.headers = headers
        self.events: asyncio.Queue[DeviceEvent] = asyncio.Queue()
        self.errors: list[ProtocolError] = []
        self.notifications: list[McpNotification] = []
        self.audio: list[AudioReceived] = []
        self.mcp = McpClient(self._send_mcp, timeout=5.0)
        self.closed = asyncio.Event()

    async def flush(self) -> None:
        """Transmit every frame the session queued."""
        for frame in self.session.data_to_send():
            if isinstance(frame, str):
                await self.ws.send_str(frame)
            else:
                await self.ws.send_bytes(frame)

    async def _send_mcp(self, payload: dict[str, Any]) -> None:
        self.session.send_mcp(payload)
        await self.flush()

    async def next_event[T](self, kind: type[T]) -> T:
        """Return the next event of `kind`, skipping others."""
        while True:
            event = await self.events.get()
            if isinstance(event, kind):
                return event

    async def speak(
        self, pcm24k: bytes, *, text: str | None = None, interval: float = 0.0, stop: bool = True
    ) -> int:
        """Send tts start, an optional sentence, 60 ms Opus packets at 24 kHz and tts stop."""
        encoder = opuslib_next.Encoder(24000, 1, opuslib_next.APPLICATION_AUDIO)
        frame = 1440 * 2
        self.session.send_tts_start()
        if text is not None:
            self.session.send_sentence(text)
        await self.flush()
        count = 0
        for start in range(0, len(pcm24k), frame):
            chunk = pcm24k[start : start + frame].ljust(frame, b"\0")
            self.session.send_audio(encoder.encode(chunk, 1440), timestamp=count * 60)
            await self.flush()
            count += 1
            if interval:
                await asyncio.sleep(interval)
        if stop:
            self.session.send_tts_stop()
            await self.flush()
        return count


class XiaozhiTestServer:
    """OTA + activation + WebSocket endpoints with hooks for misbehaving on purpose."""

    def __init__(
        self,
        *,
        token: str = "",
        version: int = 1,
        activation_code: str | None = None,
        activate_after: int = 1,
        hello_hook: Callable[[dict[str, Any]], dict[str, Any] | None] | None = None,
    ) -> None:
        """`hello_hook` may rewrite the server hello (or return None to send none)."""
        self.token = token
        self.version = version
        self.activation_code = activation_code
        self.activate_after = activate_after
        self.hello_hook = hello_hook
        self.ota_extra: dict[str, Any] = {}
        self.ota_failures = 0  # boot checks still to answer with 503
        self.ota_times: list[float] = []  # when each boot check arrived (loop time)
        self.after_hello: list[str | bytes] = []  # frames sent in one go after the hello
        self.ota_requests: list[tuple[dict[str, str], Any]] = []
        self.activate_requests: list[tuple[dict[str, str], Any]] = []
        self.connections: asyncio.Queue[ServerConnection] = asyncio.Queue()
        self.rejected_handshakes = 0
        app = web.Application()
        app.router.add_post(OTA_PATH, self._ota)
        app.router.add_post(OTA_PATH + "activate", self._activate)
        app.router.add_get(WS_PATH, self._websocket)
        self._server = TestServer(app, host="127.0.0.1")

    async def __aenter__(self) -> XiaozhiTestServer:
        """Start listening on an ephemeral port."""
        await self._server.start_server()
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Stop the server (closing open WebSockets)."""
        await self._server.close()

    @property
    def ota_url(self) -> str:
        """Where the device should send its version check."""
        return str(self._server.make_url(OTA_PATH))

    @property
    def ws_url(self) -> str:
        """The WebSocket URL handed out in the OTA reply."""
        return str(self._server.make_url(WS_PATH)).replace("http://", "ws://")

    async def _ota(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.ota_requests.append((dict(request.headers), body))
        self.ota_times.append(asyncio.get_running_loop().time())
        if self.ota_failures:
            self.ota_failures -= 1
            return web.Response(status=503)
        reply: dict[str, Any] = {
            "websocket": {"url": self.ws_url, "token": self.token, "version": self.version},
            "server_time": {"timestamp": 1767225600000, "timezone_offset": 480},
            "firmware": {"version": body["application"]["version"], "url": ""},
        }
        if self.activation_code is not None:
            reply["activation"] = {
                "code": self.activation_code,
                "message": "Enter the code in Home Assistant",
                "challenge": "challenge-123",
                "timeout_ms": 30000,
            }
        reply.update(self.ota_extra)
        return web.json_response(reply)

    async def _activate(self, request: web.Request) -> web.Response:
        self.activate_requests.append((dict(request.headers), await request.json()))
        if len(self.activate_requests) >= self.activate_after:
            self.activation_code = None
            return web.Response(text="success")
        return web.Response(status=202)

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        if self.token and request.headers.get("Authorization") != f"Bearer {self.token}":
            self.rejected_handshakes += 1
            raise web.HTTPUnauthorized
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        session = DeviceSession(protocol_version=int(request.headers["Protocol-Version"]))
        conn = ServerConnection(ws, session, dict(request.headers))
        self.connections.put_nowait(conn)
        try:
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    await self._on_text(conn, msg.data)
                elif msg.type is WSMsgType.BINARY:
                    try:
                        event = session.receive_binary(msg.data)
                    except ProtocolError as err:
                        conn.errors.append(err)
                        continue
                    conn.audio.append(event)
                    conn.events.put_nowait(event)
        finally:
            conn.mcp.close()
            conn.closed.set()
        return ws

    async def _on_text(self, conn: ServerConnection, text: str) -> None:
        try:
            event = conn.session.receive_text(text)
        except ProtocolError as err:
            conn.errors.append(err)
            return
        if isinstance(event, HelloReceived) and self.hello_hook is not None:
            conn.session.data_to_send()
            hello = self.hello_hook(conn.session.server_hello.to_dict())
            if hello is not None:
                await conn.ws.send_str(encode_object(hello))
        if isinstance(event, HelloReceived) and self.after_hello:
            await conn.flush()  # the hello
            for frame in self.after_hello:
                if isinstance(frame, str):
                    await conn.ws.send_str(frame)
                else:
                    await conn.ws.send_bytes(frame)
        if isinstance(event, McpReceived):
            try:
                notification = conn.mcp.handle_message(event.payload)
            except ProtocolError as err:
                conn.errors.append(err)
            else:
                if notification is not None:
                    conn.notifications.append(notification)
        conn.events.put_nowait(event)
        await conn.flush()
