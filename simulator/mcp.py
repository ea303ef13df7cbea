"""The board's MCP server (`McpServer`, `main/mcp_server.cc`) and its built-in tools.

`McpServer::ParseMessage` with its quirks: numeric ids only, notifications ignored, errors
without `code`, `tools/list` pages of `page_size` tools up to `MCP_PAGE_BYTES` with the next
tool's name as cursor, user-only tools only with `withUserTools`. `tools/call` checks the
arguments in the WebSocket task and runs the tool on the main task; a tool that takes time (a
photo upload) holds the main task until it returns. `initialize` stores the server's vision
capability (URL and token) for the camera.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
import json
import logging
import math
from typing import Any

from custom_components.openai_realtime_voice.xiaozhi import McpMessage, encode_object

from .board import Board
from .errors import SimulatorError

_LOGGER = logging.getLogger(__name__)

MCP_PAGE_BYTES = 8000


@dataclass(slots=True)
class Tool:
    """One tool of the device's MCP server."""

    name: str
    description: str
    properties: dict[str, dict[str, Any]]
    handler: Callable[[dict[str, Any]], object]
    user_only: bool = False

    def to_json(self) -> dict[str, Any]:
        """The `tools/list` entry, as McpTool::to_json writes it."""
        schema: dict[str, Any] = {"type": "object", "properties": self.properties}
        required = [n for n, p in self.properties.items() if "default" not in p]
        if required:
            schema["required"] = required
        entry: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "inputSchema": schema,
        }
        if self.user_only:
            entry["annotations"] = {"audience": ["user"]}
        return entry


class McpServer:
    """The device's MCP server: its tools and the settings they change."""

    def __init__(self, device: Board, page_size: int) -> None:
        """The firmware's tools for this board; `page_size` tools per `tools/list` page."""
        self._device = device
        self.page_size = page_size
        self.volume = 70
        self.brightness = 75
        self.theme = "light"
        self.vision: dict[str, Any] | None = None
        self.mute = False
        self.upgrade_requests: list[str] = []
        self.tools = self._build_tools()

    async def send_notification(self, method: str, params: dict[str, Any]) -> None:
        """A device-initiated MCP notification (no id)."""
        await self.send({"jsonrpc": "2.0", "method": method, "params": params})

    def _build_tools(self) -> list[Tool]:
        """The firmware's common tools, screen tools when present, then user-only tools."""
        percent = {"type": "integer", "minimum": 0, "maximum": 100}
        tools = [
            Tool(
                "self.get_device_status",
                "Provides the real-time information of the device, including the current status "
                "of the audio speaker, screen, battery, network, etc.",
                {},
                lambda _: json.dumps(self.device_status()),
            ),
            Tool(
                "self.audio_speaker.set_volume",
                "Set the volume of the audio speaker.",
                {"volume": percent},
                self._set_volume,
            ),
        ]
        if self._device.has_screen:
            tools += [
                Tool(
                    "self.screen.set_brightness",
                    "Set the brightness of the screen.",
                    {"brightness": percent},
                    self._set_brightness,
                ),
                Tool(
                    "self.screen.set_theme",
                    "Set the theme of the screen. The theme can be `light` or `dark`.",
                    {"theme": {"type": "string"}},
                    self._set_theme,
                ),
            ]
        tools += [
            Tool(
                "self.get_system_info",
                "Get the system information",
                {},
                lambda _: json.dumps(self._device.ota.system_info()),
                user_only=True,
            ),
            Tool("self.reboot", "Reboot the system", {}, self._reboot, user_only=True),
            Tool(
                "self.upgrade_firmware",
                "Upgrade firmware from a specific URL.",
                {"url": {"type": "string", "description": "firmware binary URL"}},
                self._upgrade,
                user_only=True,
            ),
        ]
        if self._device.has_screen:
            tools.append(
                Tool(
                    "self.screen.get_info",
                    "Information about the screen, including width, height, etc.",
                    {},
                    lambda _: json.dumps({"width": 240, "height": 240, "monochrome": False}),
                    user_only=True,
                )
            )
        return tools

    def device_status(self) -> dict[str, Any]:
        """GetDeviceStatusJson: what `self.get_device_status` returns."""
        status: dict[str, Any] = {"audio_speaker": {"volume": self.volume}}
        if self._device.has_screen:
            status["screen"] = {"brightness": self.brightness, "theme": self.theme}
        status["battery"] = {"level": 87, "charging": False}
        status["network"] = {"type": "wifi", "ssid": "sim-wifi", "signal": "strong"}
        status["chip"] = {"temperature": 41.5}
        return status

    def _set_volume(self, args: dict[str, Any]) -> object:
        self.volume = args["volume"]
        return True

    def _set_brightness(self, args: dict[str, Any]) -> object:
        self.brightness = args["brightness"]
        return True

    def _set_theme(self, args: dict[str, Any]) -> object:
        if args["theme"] not in ("light", "dark"):
            raise SimulatorError(f"Invalid theme: {args['theme']}")
        self.theme = args["theme"]
        return True

    def _reboot(self, _: dict[str, Any]) -> object:
        self._device.reboot_requested = True
        return True

    def _upgrade(self, args: dict[str, Any]) -> object:
        self.upgrade_requests.append(args["url"])
        return True

    async def send(self, payload: dict[str, Any]) -> None:
        await self._device.channel.send_text(
            encode_object(McpMessage(payload, session_id=self._device.session_id).to_dict())
        )

    async def _reply_error(self, request_id: int | float, message: str) -> None:
        """ReplyError: the firmware's error object has no `code`."""
        await self.send({"jsonrpc": "2.0", "id": request_id, "error": {"message": message}})

    async def on_message(self, payload: dict[str, Any]) -> None:
        """McpServer::ParseMessage with its quirks (numeric ids only, notifications ignored)."""
        if self.mute or payload.get("jsonrpc") != "2.0":
            return
        method = payload.get("method")
        if not isinstance(method, str):
            return
        if method.startswith("notifications"):
            return
        request_id = payload.get("id")
        if isinstance(request_id, bool) or not isinstance(request_id, (int, float)):
            return
        params = payload.get("params")
        params = params if isinstance(params, dict) else {}
        if method == "initialize":
            capabilities = params.get("capabilities")
            if isinstance(capabilities, dict) and isinstance(capabilities.get("vision"), dict):
                self.vision = capabilities["vision"]
            result: dict[str, Any] = {
                "protocolVersion": "2024-11-05",
                "capabilities": {"tools": {}},
                "serverInfo": {
                    "name": self._device.board_name,
                    "version": self._device.firmware_version,
                },
            }
        elif method == "tools/list":
            result = self._tools_page(params)
        elif method == "tools/call":
            # DoToolCall checks the arguments in the WebSocket task, then runs the tool on
            # the main task (`Schedule`).
            checked = self._check_tool_call(params)
            if isinstance(checked, str):
                await self._reply_error(request_id, checked)
            else:
                await self._device.main_task.run(partial(self._run_tool, request_id, *checked))
            return
        else:
            await self._reply_error(request_id, f"Method not implemented: {method}")
            return
        await self.send({"jsonrpc": "2.0", "id": request_id, "result": result})

    def _tools_page(self, params: dict[str, Any]) -> dict[str, Any]:
        """One `tools/list` page starting at the tool named by `cursor`."""
        cursor = params.get("cursor") if isinstance(params.get("cursor"), str) else ""
        with_user = params.get("withUserTools") is True
        visible = [t for t in self.tools if with_user or not t.user_only]
        start = 0
        if cursor:
            names = [t.name for t in visible]
            start = names.index(cursor) if cursor in names else len(visible)
        page: list[dict[str, Any]] = []
        size = 0
        index = start
        while index < len(visible) and len(page) < self.page_size:
            entry = visible[index].to_json()
            size += len(json.dumps(entry))
            if page and size > MCP_PAGE_BYTES:
                break
            page.append(entry)
            index += 1
        result: dict[str, Any] = {"tools": page}
        if index < len(visible):
            result["nextCursor"] = visible[index].name
        return result

    def _check_tool_call(self, params: dict[str, Any]) -> tuple[Tool, dict[str, Any]] | str:
        """The tool and its arguments; a string is the error message to reply with."""
        name = params.get("name")
        arguments = params.get("arguments")
        arguments = arguments if isinstance(arguments, dict) else {}
        tool = next((t for t in self.tools if t.name == name), None)
        if tool is None:
            return f"Unknown tool: {name}"
        values: dict[str, Any] = {}
        for prop_name, prop in tool.properties.items():
            value = arguments.get(prop_name, prop.get("default"))
            kind = prop.get("type")
            valid = (
                (kind == "integer" and isinstance(value, int) and not isinstance(value, bool))
                or (kind == "string" and isinstance(value, str))
                or (kind == "boolean" and isinstance(value, bool))
            )
            if not valid:
                return f"Missing valid argument: {prop_name}"
            if kind == "integer" and not prop.get("minimum", -math.inf) <= value <= prop.get(
                "maximum", math.inf
            ):
                return f"Value is out of range: {prop_name}"
            values[prop_name] = value
        return tool, values

    async def _run_tool(self, request_id: int | float, tool: Tool, values: dict[str, Any]) -> None:
        """The scheduled `Call` on the main task; a tool that takes time (a photo upload)
        holds the main task, so the board's state changes wait until it returns."""
        try:
            value = tool.handler(values)
        except SimulatorError as err:
            await self._reply_error(request_id, str(err))
            return
        if asyncio.iscoroutine(value):
            self._device.main_task.hold()
            self._device.spawn(self._finish_tool(request_id, value))
            return
        await self._reply_tool(request_id, value)

    async def _finish_tool(self, request_id: int | float, pending: Any) -> None:
        try:
            try:
                value = await pending
            except SimulatorError as err:
                await self._reply_error(request_id, str(err))
                return
            await self._reply_tool(request_id, value)
        except SimulatorError, ConnectionError:
            _LOGGER.debug("Tool reply %s not sent: the channel closed", request_id)
        finally:
            await self._device.main_task.release()

    async def _reply_tool(self, request_id: int | float, value: object) -> None:
        text = value if isinstance(value, str) else json.dumps(value)
        result = {"content": [{"type": "text", "text": text}], "isError": False}
        await self.send({"jsonrpc": "2.0", "id": request_id, "result": result})
