"""A device's own (MCP) tools as a Home Assistant LLM API, offered beside Home Assistant's.

Device tools live in their own name space (`device__…`), so a device tool named like a Home
Assistant tool can never take its calls. Tools meant for the user (`user_only`) are not
offered. The MCP client already bounds what a device may declare (tool count, description
length, schema size).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, override

from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import llm

from ..const import DOMAIN
from ..turn import JsonSchemaTool
from ..xiaozhi import McpClient, McpError, McpTool

DEVICE_PREFIX: Final = "device__"
"""The name space of device (MCP) tools among the session's tools."""


class DeviceTool(JsonSchemaTool):
    """One model-facing MCP tool of a device, called over its connection."""

    integration = DOMAIN

    def __init__(self, tool: McpTool, mcp: McpClient | None) -> None:
        """Offer `tool` as `device__<name>` with the schema the device declared."""
        self.name = DEVICE_PREFIX + tool.name
        self.description = tool.description
        self.schema = tool.input_schema
        self.mcp_name = tool.name
        self._mcp = mcp

    @override
    async def async_call(
        self, hass: HomeAssistant, tool_input: llm.ToolInput, llm_context: llm.LLMContext
    ) -> llm.ToolResult:
        """Call the tool on the device; an MCP error reply is the tool's error."""
        if self._mcp is None:
            raise HomeAssistantError("device is not connected")
        try:
            reply = await self._mcp.call_tool(self.mcp_name, tool_input.tool_args)
        except McpError as err:
            raise HomeAssistantError(str(err) or type(err).__name__) from err
        return llm.ToolResult(data={"result": reply.text}, error=reply.is_error)


class DeviceToolsAPI(llm.API):
    """The tools of one connected device (not registered: offered to its own session only)."""

    def __init__(
        self, hass: HomeAssistant, mac: str, tools: Sequence[McpTool], mcp: McpClient | None
    ) -> None:
        """The device's model-facing tools, called through `mcp`."""
        super().__init__(hass=hass, id=f"{DOMAIN}_device_{mac}", name="Device")
        self.tools: list[llm.Tool] = [DeviceTool(tool, mcp) for tool in tools if not tool.user_only]

    @override
    async def async_get_api_instance(self, llm_context: llm.LLMContext) -> llm.APIInstance:
        """The device's tools for one session."""
        return llm.APIInstance(
            api=self, api_prompt="", llm_context=llm_context, tools=list(self.tools)
        )
