"""The board's WebSocket channel (`WebsocketProtocol`): handshake, hello, frames in and out.

`OpenAudioChannel` connects with the board's headers, sends the client hello and waits up to
10 s for the server hello; a hello without `transport` crashes the board. Incoming text is
logged and handed to the device (`on_incoming_json`), binary frames to its playback, and a
closed socket to `on_audio_channel_closed`, as the protocol's callbacks do in the firmware.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from custom_components.openai_realtime_voice.xiaozhi import (
    HelloError,
    ProtocolError,
    ServerHello,
    decode_object,
    encode_object,
    parse_server_hello,
)

from .board import Board
from .errors import DeviceCrashedError, HelloTimeoutError, SimulatorError

HELLO_TIMEOUT = 10.0


class Channel:
    """One board's audio channel, and every frame it sent and message it received."""

    def __init__(self, device: Board, hello_timeout: float) -> None:
        """Closed until `connect`."""
        self._device = device
        self.hello_timeout = hello_timeout
        self.server_hello: ServerHello | None = None
        self.session_id = ""
        self.crashed = False
        self.messages: list[dict[str, Any]] = []
        # For each received message: how many downlink packets had arrived before it.
        self.message_downlink: list[int] = []
        self.ignored_text: list[str] = []
        self.sent_frames: list[str | bytes] = []
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self._receiver: asyncio.Task[None] | None = None
        self._hello_event = asyncio.Event()
        self._closed_event = asyncio.Event()
        self._message_event = asyncio.Event()

    @property
    def is_open(self) -> bool:
        """Whether the WebSocket is connected and the hello exchange completed."""
        return (
            self.ws is not None
            and not self.ws.closed
            and not self._closed_event.is_set()
            and self.server_hello is not None
        )

    @property
    def closed(self) -> bool:
        """Whether the server closed the WebSocket (or it dropped)."""
        return self._closed_event.is_set()

    def _connect_headers(self, url: str) -> dict[str, str]:
        """The handshake's headers; esp-ml307 `WebSocket::Connect` writes `Host` without port."""
        headers = self._device.ws_headers()
        if not self._device.ws_host_with_port and "Host" not in headers:  # else a proxy set it
            host = urlsplit(url).hostname or ""
            headers["Host"] = f"[{host}]" if ":" in host else host
        return headers

    async def connect(self) -> None:
        """`WebsocketProtocol::OpenAudioChannel`: connect, hello, wait for the server hello."""
        url = self._device.nvs_websocket.get("url")
        if self._device.ota.uses_mqtt:
            raise SimulatorError("the OTA reply selected MQTT, which is not simulated")
        if not isinstance(url, str) or not url:
            raise SimulatorError("no websocket URL in NVS")
        session = await self._device.http()
        await self.drop()  # the previous WebSocket object is destroyed
        self.server_hello = None
        self._hello_event.clear()
        self._closed_event.clear()
        # autoclose=False: the board does not answer a close frame (esp-ml307 `OnTcpData`
        # only marks itself disconnected on opcode 0x8).
        self.ws = await session.ws_connect(
            url, headers=self._connect_headers(url), autoping=True, autoclose=False
        )
        self._receiver = asyncio.create_task(self._receive_loop(self.ws))
        hello = self._device.hello().to_dict()
        if self._device.glyph_push:
            hello["text_font"] = {"bundle": "noto-v1", "charset": "common", "size": 20, "bpp": 4}
        await self.send_text(encode_object(hello))
        try:
            async with asyncio.timeout(self.hello_timeout):
                await self._hello_event.wait()
        except TimeoutError as err:
            await self.drop()
            raise HelloTimeoutError("server timeout") from err
        if self.crashed:
            raise DeviceCrashedError("server hello without transport")

    async def drop(self) -> None:
        """Destroy the WebSocket object: `~WebSocket` drops the TCP connection, no close frame."""
        ws, self.ws = self.ws, None
        if self._receiver is not None:
            self._receiver.cancel()
            await asyncio.gather(self._receiver, return_exceptions=True)
            self._receiver = None
        if ws is not None and not ws.closed:
            # aiohttp has no public abort for a client WebSocket: close its connection.
            ws._response.close()  # noqa: SLF001
            await ws.close()  # only marks it closed now that the transport is gone

    async def wait_closed(self) -> None:
        """Wait until the server closes the WebSocket."""
        await self._closed_event.wait()

    async def wait_for_message(
        self, predicate: Callable[[dict[str, Any]], bool], start: int = 0
    ) -> dict[str, Any]:
        """Wait for a received JSON message (from index `start` on) matching `predicate`."""
        while True:
            for message in self.messages[start:]:
                if predicate(message):
                    return message
            start = len(self.messages)
            self._message_event.clear()
            if self._closed_event.is_set():
                raise SimulatorError("connection closed while waiting")
            await self._message_event.wait()

    async def send_text(self, text: str) -> None:
        """Send one text frame and keep a copy."""
        if self.ws is None:
            raise SimulatorError("audio channel is not open")
        self.sent_frames.append(text)
        await self.ws.send_str(text)

    async def send_bytes(self, data: bytes) -> None:
        """Send one binary frame and keep a copy."""
        if self.ws is None:
            raise SimulatorError("audio channel is not open")
        self.sent_frames.append(data)
        await self.ws.send_bytes(data)

    async def _receive_loop(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """Dispatch every incoming frame until the socket closes.

        A close frame ends the loop without an answer (the board never replies to one); the
        TCP connection stays until the WebSocket object is destroyed (next connect or close).
        """
        try:
            async for msg in ws:
                if msg.type is aiohttp.WSMsgType.TEXT:
                    await self._on_text(msg.data)
                elif msg.type is aiohttp.WSMsgType.BINARY:
                    self._device.playback.on_binary(msg.data)
                self._device.changes.notify()  # a message or downlink packet recorded
                if self.crashed:
                    break
        finally:
            self._device.on_audio_channel_closed()
            self._closed_event.set()
            self._message_event.set()
            self._device.changes.notify()
            if self.crashed:
                ws._response.close()  # noqa: SLF001 - the reboot drops the connection

    async def _on_text(self, text: str) -> None:
        """A text frame: the hello is the protocol layer's, the rest `OnIncomingJson`."""
        try:
            obj = decode_object(text)
        except ProtocolError:
            self.ignored_text.append(text)
            return
        if not isinstance(obj.get("type"), str):
            self.ignored_text.append(text)
            return
        self.messages.append(obj)
        self.message_downlink.append(len(self._device.playback.downlink))
        self._message_event.set()
        if obj["type"] == "hello":
            self._on_server_hello(obj)
            return
        if not await self._device.on_incoming_json(obj):
            self.ignored_text.append(text)

    def _on_server_hello(self, obj: dict[str, Any]) -> None:
        """ParseServerHello: transport must be "websocket"; a missing key crashes the device."""
        if "transport" not in obj:
            self.crashed = True
            self._hello_event.set()
            return
        try:
            hello = parse_server_hello(obj)
        except HelloError:
            return
        self.server_hello = hello
        self.session_id = hello.session_id
        self._device.playback.start(hello.sample_rate)
        self._hello_event.set()
