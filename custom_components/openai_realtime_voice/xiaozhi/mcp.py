"""MCP (JSON-RPC 2.0) client for the tools a xiaozhi device serves over its channel.

Transport-agnostic: it hands payloads to an async `send` callable and is fed replies through
`handle_message`. It owns no tasks, only futures, so closing it leaves nothing running.

A device's tool list is untrusted input that ends up in a model's context: it is bounded
(`ToolLimits`: number of tools, name and description length, schema size), duplicates are
dropped, and what was cut is said in one log line per listing.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
import json
import logging
from typing import Any, Final

from .errors import McpClosedError, McpError, McpProtocolError, McpTimeoutError

_LOGGER = logging.getLogger(__name__)

PROTOCOL_VERSION = "2024-11-05"
DEFAULT_TIMEOUT = 10.0
DEFAULT_MAX_PAGES = 16

type SendPayload = Callable[[dict[str, Any]], Awaitable[None]]

ELLIPSIS: Final = "…"


@dataclass(frozen=True, slots=True)
class ToolLimits:
    """Bounds on a device's tool list (the firmware's own tools stay far below them)."""

    max_tools: int = 32
    """Tools kept; later ones are dropped."""
    max_name: int = 128
    """Characters of a tool name; a longer name drops the tool (it cannot be shortened)."""
    max_description: int = 1024
    """Characters of a description; a longer one is shortened."""
    max_schema_bytes: int = 4096
    """Bytes of an input schema as JSON; a larger one drops the tool."""


@dataclass(frozen=True, slots=True)
class McpServerInfo:
    """What the device answered to `initialize`."""

    name: str
    version: str
    protocol_version: str
    capabilities: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class McpTool:
    """One device tool; `user_only` tools are meant for the user, not the model."""

    name: str
    description: str
    input_schema: dict[str, Any]
    user_only: bool = False


@dataclass(frozen=True, slots=True)
class McpToolResult:
    """A `tools/call` result; the firmware turns every value into one text item."""

    content: list[dict[str, Any]]
    is_error: bool = False

    @property
    def text(self) -> str:
        """The text items joined, which is what a model should see."""
        return "\n".join(
            str(item.get("text", "")) for item in self.content if item.get("type") == "text"
        )


@dataclass(frozen=True, slots=True)
class McpNotification:
    """A device-initiated JSON-RPC notification (no `id`)."""

    method: str
    params: dict[str, Any]


def _error_from(error: object) -> McpError:
    """Build an `McpError` from a JSON-RPC error member; the firmware omits `code`."""
    if not isinstance(error, dict):
        return McpError("malformed error reply")
    message = error.get("message")
    code = error.get("code")
    return McpError(
        message if isinstance(message, str) else "error reply without message",
        code=code if isinstance(code, int) and not isinstance(code, bool) else None,
        data=error.get("data"),
    )


def _parse_tool(item: object) -> McpTool:
    """Parse one entry of a `tools/list` page."""
    if not isinstance(item, dict):
        raise McpProtocolError("tool entry is not an object")
    name = item.get("name")
    description = item.get("description", "")
    schema = item.get("inputSchema", {"type": "object", "properties": {}})
    annotations = item.get("annotations")
    if not isinstance(name, str) or not name:
        raise McpProtocolError("tool entry without a name")
    if not isinstance(description, str) or not isinstance(schema, dict):
        raise McpProtocolError(f"tool {name!r} has a bad description or inputSchema")
    audience = annotations.get("audience") if isinstance(annotations, dict) else None
    user_only = isinstance(audience, list) and "user" in audience and "assistant" not in audience
    return McpTool(name, description, schema, user_only)


class McpClient:
    """Send MCP requests to the device and match its replies by numeric id."""

    def __init__(
        self,
        send: SendPayload,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        max_pages: int = DEFAULT_MAX_PAGES,
        limits: ToolLimits | None = None,
        name: str = "MCP server",
    ) -> None:
        """Use `send` to transmit payloads; `timeout` applies to each request.

        `name` says whose tools a log line is about.
        """
        self._send = send
        self._timeout = timeout
        self._max_pages = max_pages
        self._limits = limits or ToolLimits()
        self._name = name
        self._next_id = 1
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._tool_calls: dict[int, tuple[str, dict[str, Any]]] = {}
        """The name and arguments of each `tools/call` waiting for its reply, by request id."""
        self._closed = False
        self.server_info: McpServerInfo | None = None

    @property
    def closed(self) -> bool:
        """Whether `close()` was called."""
        return self._closed

    @property
    def pending(self) -> int:
        """Requests still waiting for a reply."""
        return len(self._pending)

    def calls_in_flight(self, tool: str) -> dict[int, dict[str, Any]]:
        """The arguments of each call of `tool` still waiting for its reply, by request id."""
        return {i: args for i, (name, args) in self._tool_calls.items() if name == tool}

    async def request(
        self,
        method: str,
        params: Mapping[str, Any] | None = None,
        *,
        reply_timeout: float | None = None,
    ) -> dict[str, Any]:
        """Send one request and return its `result` object, or raise an `McpError`."""
        if self._closed:
            raise McpClosedError("MCP client is closed")
        request_id = self._next_id
        self._next_id += 1
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        payload: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            payload["params"] = dict(params)
        payload["id"] = request_id
        if method == "tools/call" and params is not None:
            arguments = params.get("arguments")
            self._tool_calls[request_id] = (
                str(params.get("name")),
                dict(arguments) if isinstance(arguments, Mapping) else {},
            )
        try:
            await self._send(payload)
            async with asyncio.timeout(self._timeout if reply_timeout is None else reply_timeout):
                return await future
        except TimeoutError as err:
            raise McpTimeoutError(f"no reply to {method} (id {request_id})") from err
        finally:
            self._pending.pop(request_id, None)
            self._tool_calls.pop(request_id, None)

    async def initialize(
        self,
        *,
        vision_url: str | None = None,
        vision_token: str | None = None,
        capabilities: Mapping[str, Any] | None = None,
    ) -> McpServerInfo:
        """Run `initialize`; a vision URL/token lets the device's camera tool upload photos."""
        caps: dict[str, Any] = dict(capabilities or {})
        if vision_url is not None:
            caps["vision"] = {"url": vision_url, "token": vision_token or ""}
        result = await self.request("initialize", {"capabilities": caps})
        info = result.get("serverInfo")
        info = info if isinstance(info, dict) else {}
        name, version = info.get("name"), info.get("version")
        protocol = result.get("protocolVersion")
        server_caps = result.get("capabilities")
        self.server_info = McpServerInfo(
            name if isinstance(name, str) else "",
            version if isinstance(version, str) else "",
            protocol if isinstance(protocol, str) else "",
            server_caps if isinstance(server_caps, dict) else {},
        )
        return self.server_info

    async def list_tools(self, *, with_user_tools: bool = False) -> list[McpTool]:
        """Fetch every `tools/list` page, following `nextCursor` up to the page limit.

        The list is bounded by the client's `ToolLimits`; what was cut is logged once.
        """
        tools: dict[str, McpTool] = {}
        cut: Counter[str] = Counter()
        cursor = ""
        seen: set[str] = set()
        for _ in range(self._max_pages):
            result = await self.request(
                "tools/list", {"cursor": cursor, "withUserTools": with_user_tools}
            )
            page = result.get("tools")
            if not isinstance(page, list):
                raise McpProtocolError("tools/list reply without a tools array")
            for item in page:
                self._keep(tools, _parse_tool(item), cut)
            next_cursor = result.get("nextCursor")
            if not isinstance(next_cursor, str) or not next_cursor:
                if cut:
                    _LOGGER.warning(
                        "%s: tool list cut to the limits: %s",
                        self._name,
                        ", ".join(f"{count} {reason}" for reason, count in cut.items()),
                    )
                return list(tools.values())
            if next_cursor in seen:
                raise McpProtocolError(f"tools/list cursor {next_cursor!r} repeats")
            seen.add(next_cursor)
            cursor = next_cursor
        raise McpProtocolError(f"tools/list did not end within {self._max_pages} pages")

    def _keep(self, tools: dict[str, McpTool], tool: McpTool, cut: Counter[str]) -> None:
        """Add a listed tool within the limits, or count why it was cut."""
        limits = self._limits
        if tool.name in tools:
            cut["duplicate tools dropped"] += 1
        elif len(tools) >= limits.max_tools:
            cut[f"tools over {limits.max_tools} dropped"] += 1
        elif len(tool.name) > limits.max_name:
            cut[f"tools with a name over {limits.max_name} characters dropped"] += 1
        elif len(json.dumps(tool.input_schema).encode()) > limits.max_schema_bytes:
            cut[f"tools with a schema over {limits.max_schema_bytes} bytes dropped"] += 1
        else:
            if len(tool.description) > limits.max_description:
                cut[f"descriptions over {limits.max_description} characters shortened"] += 1
                text = tool.description[: limits.max_description - len(ELLIPSIS)] + ELLIPSIS
                tool = replace(tool, description=text)
            tools[tool.name] = tool

    async def call_tool(
        self,
        name: str,
        arguments: Mapping[str, Any] | None = None,
        *,
        reply_timeout: float | None = None,
    ) -> McpToolResult:
        """Call one tool; an `error` reply raises `McpError`, `isError` results are returned."""
        result = await self.request(
            "tools/call",
            {"name": name, "arguments": dict(arguments or {})},
            reply_timeout=reply_timeout,
        )
        content = result.get("content")
        if not isinstance(content, list) or not all(isinstance(i, dict) for i in content):
            raise McpProtocolError(f"tools/call {name!r} reply without a content array")
        return McpToolResult(content, result.get("isError") is True)

    def handle_message(self, payload: object) -> McpNotification | None:
        """Feed one payload from the device; returns a notification, if that is what it was.

        Replies to unknown ids (e.g. after a timeout) are ignored. A payload that is not
        JSON-RPC 2.0 raises `McpProtocolError`.
        """
        if not isinstance(payload, dict) or payload.get("jsonrpc") != "2.0":
            raise McpProtocolError("payload is not a JSON-RPC 2.0 object")
        method = payload.get("method")
        if isinstance(method, str):
            if "id" in payload:
                raise McpProtocolError(f"device requests ({method}) are not supported")
            params = payload.get("params")
            return McpNotification(method, params if isinstance(params, dict) else {})
        request_id = payload.get("id")
        if isinstance(request_id, bool) or not isinstance(request_id, int):
            raise McpProtocolError("reply without a numeric id")
        future = self._pending.get(request_id)
        if future is None or future.done():
            _LOGGER.debug("Ignoring MCP reply to unknown or finished id %s", request_id)
            return None
        if "error" in payload:
            future.set_exception(_error_from(payload["error"]))
        elif isinstance(result := payload.get("result"), dict):
            future.set_result(result)
        else:
            future.set_exception(McpProtocolError("reply without a result object"))
        return None

    def close(self) -> None:
        """Fail every pending request with `McpClosedError`; later requests fail at once."""
        self._closed = True
        for future in self._pending.values():
            if not future.done():
                future.set_exception(McpClosedError("MCP client closed"))
        self._pending.clear()
        self._tool_calls.clear()
