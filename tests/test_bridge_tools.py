"""`DeviceToolsAPI`: a device's own MCP tools, offered to its session as `device__<name>`."""

from __future__ import annotations

from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import llm
import pytest

from custom_components.openai_realtime_voice.bridge import DEVICE_PREFIX, DeviceToolsAPI
from custom_components.openai_realtime_voice.turn import no_user_context
from custom_components.openai_realtime_voice.xiaozhi import McpTool

LIGHT = McpTool("self.light.set", "Turn the board's light on or off", {"type": "object"})
REBOOT = McpTool("self.reboot", "Reboot the system", {}, user_only=True)


async def test_model_facing_tools_are_offered_with_the_prefix(hass: HomeAssistant) -> None:
    """User-only tools (reboot, upgrade) are never offered; the rest keep their schema."""
    api = DeviceToolsAPI(hass, "aa:bb:cc:dd:ee:01", [LIGHT, REBOOT], None)
    assert api.id == "openai_realtime_voice_device_aa:bb:cc:dd:ee:01"
    instance = await api.async_get_api_instance(no_user_context())
    assert [tool.name for tool in instance.tools] == [f"{DEVICE_PREFIX}self.light.set"]
    assert instance.tools[0].description == LIGHT.description


async def test_a_tool_of_a_disconnected_device_fails_clearly(hass: HomeAssistant) -> None:
    """Without the device's MCP client the call is a clear error, not a crash."""
    api = DeviceToolsAPI(hass, "aa:bb:cc:dd:ee:01", [LIGHT], None)
    (tool,) = api.tools
    call = llm.ToolInput(tool_name=tool.name, tool_args={"on": True})
    with pytest.raises(HomeAssistantError, match="device is not connected"):
        await tool.async_call(hass, call, no_user_context())
