"""The tools a device's Realtime session offers: Home Assistant LLM API tools and device MCP tools.

Both kinds become Realtime function tools with valid names (`ToolNames` maps them back). Device
tools live in their own name space (`device__…`) and a call is routed by the function name it
was offered under, so a device tool named like a Home Assistant tool can never take its calls.
Calls of one response run concurrently, each under a timeout; every outcome, including a
failure, becomes a `ToolResult` so the model always gets an answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
import json
from typing import Final

from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import llm
import probatio

from ..const import LOGGER
from ..realtime import FunctionCall, FunctionTool
from ..tools import ToolNames, format_tool
from ..xiaozhi import McpClient, McpError, McpTool

TOOL_TIMEOUT: Final = 10.0
"""Seconds one tool call may take before the model is told it timed out."""

DEVICE_PREFIX: Final = "device__"
"""The name space of device (MCP) tools among the session's function tools."""


@dataclass(frozen=True, slots=True)
class ToolRun:
    """One executed call: what the model asked for and what came back."""

    call: FunctionCall
    tool_input: llm.ToolInput
    result: llm.ToolResult


class BridgeTools:
    """Function tools for one device session and their execution."""

    def __init__(
        self,
        llm_api: llm.APIInstance | None,
        mcp_tools: Sequence[McpTool],
        mcp: McpClient | None,
        *,
        timeout: float = TOOL_TIMEOUT,
    ) -> None:
        """Offer the API's tools and the device's model-facing MCP tools."""
        self._api = llm_api
        self._mcp = mcp
        self._timeout = timeout
        self._names = ToolNames()
        functions: list[FunctionTool] = []
        if llm_api is not None:
            functions.extend(
                format_tool(tool, llm_api.custom_serializer, self._names.add(tool.name))
                for tool in llm_api.tools
            )
        # Device tools by the function name they are offered under.
        self._mcp_tools: dict[str, McpTool] = {}
        for tool in mcp_tools:
            if tool.user_only:
                continue
            name = self._names.add(DEVICE_PREFIX + tool.name)
            self._mcp_tools[name] = tool
            functions.append(
                FunctionTool(name=name, description=tool.description, parameters=tool.input_schema)
            )
        self.functions: tuple[FunctionTool, ...] = tuple(functions)

    async def run(self, calls: Sequence[FunctionCall]) -> list[ToolRun]:
        """Run the calls of one response concurrently; results keep the calls' order."""
        return list(await asyncio.gather(*(self._run_one(call) for call in calls)))

    async def _run_one(self, call: FunctionCall) -> ToolRun:
        device_tool = self._mcp_tools.get(call.name)
        if device_tool is not None:
            name = device_tool.name
        else:
            name = self._names.original(call.name) or call.name
        arguments = _arguments(call.arguments)
        tool_input = llm.ToolInput(tool_name=name, tool_args=arguments or {}, id=call.call_id)
        if arguments is None:
            return ToolRun(call, tool_input, _error("arguments are not a JSON object"))
        try:
            async with asyncio.timeout(self._timeout):
                result = await self._call(device_tool, tool_input)
        except TimeoutError:
            LOGGER.warning("Tool %s timed out after %.0f s", name, self._timeout)
            result = _error(f"timed out after {self._timeout:.0f} s")
        except (HomeAssistantError, probatio.Invalid, McpError) as err:
            LOGGER.debug("Tool %s failed: %s", name, err)
            result = _error(str(err) or type(err).__name__)
        except Exception:  # noqa: BLE001 - a broken tool must not end the conversation
            LOGGER.exception("Tool %s raised an unexpected error", name)
            result = _error("unexpected error")
        return ToolRun(call, tool_input, result)

    async def _call(self, device_tool: McpTool | None, tool_input: llm.ToolInput) -> llm.ToolResult:
        if device_tool is not None:
            if self._mcp is None:
                return _error("device is not connected")
            reply = await self._mcp.call_tool(device_tool.name, tool_input.tool_args)
            return llm.ToolResult(data={"result": reply.text}, error=reply.is_error)
        if self._api is None:
            return _error(f"unknown tool {tool_input.tool_name}")
        return await self._api.async_call_tool(tool_input)


def _arguments(raw: str) -> dict[str, object] | None:
    """The call's arguments as an object; None when they are not a JSON object."""
    try:
        value = json.loads(raw or "{}")
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _error(message: str) -> llm.ToolResult:
    return llm.ToolResult(data={"error": message}, error=True)
