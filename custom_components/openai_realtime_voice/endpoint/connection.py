"""One live xiaozhi device WebSocket: drives the sans-I/O `DeviceSession` over aiohttp.

A transport only: it parses frames with `xiaozhi/`, hands each typed `DeviceEvent` to its
listeners, sends audio and messages, and calls device tools through `mcp`. What serves the
device (the speech bridge) is plugged in from above as a `DeviceLink` when the connection runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
import json
import logging
from typing import Any, Final, Protocol

from aiohttp import WSCloseCode, WSMsgType, web
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback

from ..const import LOGGER
from ..rate_limit import TokenBucket
from ..xiaozhi import (
    AbortRequested,
    AudioReceived,
    DeviceEvent,
    DeviceSession,
    HelloReceived,
    McpClient,
    McpError,
    McpReceived,
    ProtocolError,
    encode_object,
)
from .hub import DATA_HUB, DeviceState, UplinkBudget

HELLO_TIMEOUT: Final = 10.0
"""Seconds a device has to send its hello after the upgrade."""

IDLE_TIMEOUT: Final = 120.0
"""Seconds without any frame either way before the connection is closed (as the firmware)."""

MCP_TIMEOUT: Final = 10.0
"""Seconds to wait for each MCP reply from the device."""

MAX_LOGGED_ERRORS: Final = 5
"""Bad frames logged as warnings per connection; the rest go to debug."""

MAX_TEXT_FRAME: Final = 32 * 1024
"""Largest text frame parsed; larger ones are refused before they are scanned. A board's
largest text is an MCP message: a `tools/list` page of at most 8000 bytes
(`McpServer::GetToolsList`) or a tool result, in a short envelope
(`Protocol::SendMcpMessage`); hello, listen and abort are under 1 KiB."""

FRAMES_PER_SECOND: Final = 50.0
FRAME_BURST: Final = 300.0
"""Frames a device may send: Opus at 60 ms is 17 a second; the buffered wake-word audio
(`ContinueWakeWordInvoke`) and the MCP pages after the hello come in a burst."""

BYTES_PER_SECOND: Final = 32 * 1024.0
BYTE_BURST: Final = 256 * 1024.0
"""Bytes a device may send: Opus uplink is about 2-4 KB a second; the burst holds a full
tool listing (16 pages of 8 KB) with the wake-word audio."""

BUDGET_WARNING_INTERVAL: Final = 600.0
"""A device going over its budget is logged as a warning once in this many seconds."""

CLOSE_TIMEOUT: Final = 1.0
"""Seconds to wait for the device to answer our close frame. The firmware never answers one
(esp-ml307 `WebSocket::OnTcpData` only marks itself disconnected), so the connection is
dropped after this instead of aiohttp's 10 s."""

VOLUME_TOOL: Final = "self.audio_speaker.set_volume"
STATUS_TOOL: Final = "self.get_device_status"

type EventListener = Callable[[DeviceEvent], None]


class DeviceLink(Protocol):
    """What serves a connected device (the speech bridge): it follows the connection's events
    from its creation and is stopped when the connection ends."""

    async def async_stop(self) -> None:
        """Release everything; the connection has ended (or is ending)."""


type LinkFactory = Callable[["DeviceConnection"], DeviceLink | None]
"""Builds and starts the link for a new connection (None: nothing serves the device)."""


class DeviceConnection:
    """A device's open audio channel: events in, audio and messages out, MCP tools.

    Audio the device sends is counted (and dropped) until a listener consumes it.
    """

    def __init__(
        self,
        hass: HomeAssistant,
        ws: web.WebSocketResponse,
        state: DeviceState,
        *,
        protocol_version: int | None = None,
        vision: tuple[str, str] | None = None,
        link_factory: LinkFactory | None = None,
    ) -> None:
        """Wrap a prepared WebSocket of an authenticated device.

        `vision` (URL, token) goes to the device in MCP `initialize`, for its camera;
        `link_factory` plugs in what serves the device once `run()` starts.
        """
        self.hass = hass
        self.mac = state.mac
        self.state = state
        self.session = DeviceSession(
            protocol_version=protocol_version, max_text_size=MAX_TEXT_FRAME
        )
        self.mcp = McpClient(self._send_mcp, timeout=MCP_TIMEOUT, name=f"Device {self.mac}")
        self.audio_packets_received = 0
        self.ignored_frames = 0
        self.close_reason: str | None = None
        self._ws = ws
        self._vision = vision
        self._link_factory = link_factory
        self._listeners: list[EventListener] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loop = asyncio.get_running_loop()
        self._last_activity = self._loop.time()
        self._closed = asyncio.Event()
        if state.uplink is None:
            clock = self._loop.time
            state.uplink = UplinkBudget(
                TokenBucket(FRAMES_PER_SECOND, FRAME_BURST, clock=clock),
                TokenBucket(BYTES_PER_SECOND, BYTE_BURST, clock=clock),
            )
        self._uplink = state.uplink

    # --- public interface -------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """Whether the connection has ended."""
        return self._closed.is_set()

    @callback
    def async_add_listener(self, listener: EventListener) -> CALLBACK_TYPE:
        """Receive every event (listen, abort, audio, wake word, MCP); returns the remover."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    async def send_json(self, message: dict[str, Any]) -> None:
        """Send one JSON message as is (prefer the session's typed `send_*` plus `flush`)."""
        await self._send_frames([encode_object(message)])

    async def flush(self) -> None:
        """Transmit whatever the session queued (after e.g. `session.send_tts_start()`)."""
        await self._send_frames(self.session.data_to_send())

    async def send_audio(self, opus_packet: bytes) -> bool:
        """Send one downlink Opus packet; False if the device is not Speaking or gone."""
        if self.closed or not self.session.speaking:
            return False
        self.session.send_audio(opus_packet)
        await self.flush()
        return True

    async def async_close(self, reason: str) -> None:
        """Close the socket with a reason (shown in the device log) and wait for the end."""
        if self.close_reason is None:
            self.close_reason = reason
        if not self._ws.closed:
            await self._send_close(WSCloseCode.POLICY_VIOLATION, reason)
        await self._closed.wait()

    @callback
    def close_soon(self, reason: str) -> None:
        """Close the socket (the device goes idle) from a task the closing itself cancels."""
        self._start(self._close(reason, WSCloseCode.OK), "close")

    # --- the receive loop -------------------------------------------------------------------

    async def run(self) -> None:
        """Serve the device until it leaves, misbehaves, idles out or is replaced."""
        link = self._link_factory(self) if self._link_factory is not None else None
        try:
            await self._receive_loop()
        finally:
            try:
                if link is not None:
                    await link.async_stop()
            finally:
                await self._shutdown()

    async def _receive_loop(self) -> None:
        while not self._ws.closed:
            timeout = HELLO_TIMEOUT if not self.session.hello_done else IDLE_TIMEOUT
            remaining = self._last_activity + timeout - self._loop.time()
            try:
                if remaining <= 0:
                    raise TimeoutError  # noqa: TRY301 - one exit path for both timeouts
                msg = await self._ws.receive(timeout=remaining)
            except TimeoutError:
                if self._loop.time() < self._last_activity + timeout:
                    continue  # audio was sent meanwhile: the deadline moved
                why = "no hello" if not self.session.hello_done else "idle"
                LOGGER.debug("Closing device %s: %s", self.mac, why)
                await self._close(why, WSCloseCode.OK if self.session.hello_done else None)
                return
            if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                if not self._within_budget(len(msg.data)):
                    await self._close("over its data budget", None)
                    return
                await self._on_frame(msg.data, text=msg.type is WSMsgType.TEXT)
            elif msg.type is WSMsgType.ERROR:
                LOGGER.debug("Device %s connection error: %s", self.mac, msg.data)
                self.close_reason = self.close_reason or "connection error"
                return
            else:  # CLOSE / CLOSING / CLOSED
                return

    def _within_budget(self, size: int) -> bool:
        """Spend one frame of `size` bytes from the device's budget; False when over it."""
        uplink = self._uplink
        frames_ok = uplink.frames.spend(1)
        if uplink.data.spend(size) and frames_ok:
            return True
        now = self._loop.time()
        level = logging.DEBUG
        if uplink.warned is None or now - uplink.warned >= BUDGET_WARNING_INTERVAL:
            uplink.warned = now
            level = logging.WARNING
        LOGGER.log(
            level,
            "Closing device %s: it is over its data budget (%d frames or %d KiB a second, "
            "bursts of %d frames or %d KiB); a stock board never sends this much",
            self.mac,
            FRAMES_PER_SECOND,
            BYTES_PER_SECOND // 1024,
            FRAME_BURST,
            BYTE_BURST // 1024,
        )
        return False

    async def _on_frame(self, data: bytes, *, text: bool) -> None:
        """Feed one frame to the session, act on its event and send the session's output."""
        self._last_activity = self._loop.time()
        try:
            event = self.session.receive_text(data) if text else self.session.receive_binary(data)
        except ProtocolError as err:
            if not self.session.hello_done:
                LOGGER.warning("Closing device %s: %s", self.mac, err)
                await self._close(f"protocol error: {err}"[:120], None)
                return
            self._log_ignored(err)
            return
        await self.flush()
        await self._dispatch(event)

    async def _dispatch(self, event: DeviceEvent) -> None:
        match event:
            case HelloReceived(hello=hello):
                LOGGER.debug("Device %s said hello (protocol v%s)", self.mac, hello.version)
                if hello.features.mcp:
                    self._start(self._async_discover_tools(), "tools")
                else:
                    # Firmware before 1.8 has no MCP: too old to serve (its volume, status).
                    self.hass.data[DATA_HUB].async_report_firmware(self.mac, mcp=False)
            case AudioReceived():
                self.audio_packets_received += 1
            case AbortRequested() if self.session.speaking:
                self.session.send_tts_stop()
                await self.flush()
            case McpReceived(payload=payload):
                try:
                    self.mcp.handle_message(payload)
                except ProtocolError as err:
                    self._log_ignored(err)
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:  # noqa: BLE001 - one listener's bug must not end the session
                LOGGER.exception("Error handling %s from device %s", type(event).__name__, self.mac)

    def _log_ignored(self, err: ProtocolError) -> None:
        """Log a bad frame without a traceback, then only at debug level."""
        self.ignored_frames += 1
        if self.ignored_frames <= MAX_LOGGED_ERRORS:
            LOGGER.warning("Ignoring a bad frame from device %s: %s", self.mac, err)
        else:
            LOGGER.debug("Ignoring a bad frame from device %s: %s", self.mac, err)

    # --- output -----------------------------------------------------------------------------

    async def _send_frames(self, frames: list[str | bytes]) -> None:
        """Send frames until the socket is gone; a device that vanished is not an error.

        The firmware drops TCP without a close frame when it ends the channel (esp-ml307
        `~WebSocket`), so a frame can meet a closing transport before `closed` says so.
        """
        for frame in frames:
            if self._ws.closed:
                return
            try:
                if isinstance(frame, str):
                    await self._ws.send_str(frame)
                else:
                    await self._ws.send_bytes(frame)
                    self._last_activity = self._loop.time()
            except ConnectionResetError as err:
                LOGGER.debug("Device %s is gone, frames not sent: %s", self.mac, err)
                return

    async def _send_mcp(self, payload: dict[str, Any]) -> None:
        """The McpClient's transport: wrap the payload in the `mcp` envelope."""
        if self.closed or self._ws.closed:
            raise McpError("device disconnected")
        self.session.send_mcp(payload)
        await self.flush()

    # --- tools --------------------------------------------------------------------------------

    def _start(self, coro: Any, name: str) -> None:
        """Run a task owned by this connection (cancelled when it closes)."""
        task = self.hass.async_create_background_task(coro, f"xiaozhi {self.mac} {name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _async_discover_tools(self) -> None:
        """Initialize MCP, list the device's tools and read its volume."""
        try:
            vision_url, vision_token = self._vision or (None, None)
            info = await self.mcp.initialize(vision_url=vision_url, vision_token=vision_token)
            # `McpServer::ParseMessage` answers with the running firmware's version: the
            # authenticated place to learn it (the OTA request could come from anyone).
            self.hass.data[DATA_HUB].async_report_firmware(self.mac, info.version or None)
            self.state.tools = await self.mcp.list_tools()
            LOGGER.debug("Device %s has %d tools", self.mac, len(self.state.tools))
            await self.async_refresh_status()
        except McpError as err:
            LOGGER.debug("Device %s MCP discovery failed: %s", self.mac, err)
        self.state.async_notify()

    async def async_refresh_status(self) -> None:
        """Read the speaker volume through `self.get_device_status`, when listed."""
        if not self.state.has_tool(STATUS_TOOL):
            return
        result = await self.mcp.call_tool(STATUS_TOOL)
        self.state.volume = parse_volume(result.text)

    async def async_set_volume(self, volume: int) -> None:
        """Set the speaker volume through the device's MCP tool (raises `McpError`)."""
        result = await self.mcp.call_tool(VOLUME_TOOL, {"volume": volume})
        if result.is_error:
            raise McpError(result.text or "set_volume failed")
        self.state.volume = volume
        self.state.async_notify()

    # --- closing --------------------------------------------------------------------------------

    async def _close(self, reason: str, code: WSCloseCode | None) -> None:
        self.close_reason = self.close_reason or reason
        # Closing an already closed socket is a no-op in aiohttp (only a concurrent
        # `async_close` racing a receive timeout can get here with the socket closed).
        await self._send_close(code or WSCloseCode.POLICY_VIOLATION, reason)

    async def _send_close(self, code: WSCloseCode, reason: str) -> None:
        """Send a close frame; drop the connection if the device does not answer it."""
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await self._ws.close(code=code, message=reason.encode()[:120])
        except TimeoutError:
            LOGGER.debug("Device %s did not answer the close frame", self.mac)

    async def _shutdown(self) -> None:
        """Stop every owned task, fail pending MCP requests and release the socket."""
        self.mcp.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if not self._ws.closed:
            await self._ws.close()
        self._listeners.clear()
        self._closed.set()


def parse_volume(status_text: str) -> int | None:
    """The speaker volume from `self.get_device_status` JSON text, if present and sane."""
    try:
        status = json.loads(status_text)
    except ValueError:
        return None
    speaker = status.get("audio_speaker") if isinstance(status, dict) else None
    volume = speaker.get("volume") if isinstance(speaker, dict) else None
    if isinstance(volume, int) and not isinstance(volume, bool) and 0 <= volume <= 100:
        return volume
    return None
