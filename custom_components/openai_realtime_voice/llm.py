"""LLM tools platform: `look_at_camera` in Home Assistant's Assist API, for our own agents.

Home Assistant asks every integration's `llm` platform for tools whenever an Assist API instance
is built. This integration's agents (the Assist agent and the devices) put a snapshot straight
into their Realtime session, so only they are offered the tool, and only when their entry allows
image input: `services_api.agent_camera_side` tells, from the scope the agent opened around
`ChatLog.async_provide_llm_data`. Any other agent or HA's MCP server gets nothing from here.
"""

from __future__ import annotations

from typing import Final

from homeassistant.components.llm import LLMTools
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import llm

from .const import DOMAIN
from .services_api import agent_camera_side
from .services_api.camera import LOOK_AT_CAMERA_TOOL, LookAtCameraTool

ASSIST_CAMERA_TOOL: Final = f"{DOMAIN}__{LOOK_AT_CAMERA_TOOL}"


@callback
def async_get_tools(
    hass: HomeAssistant, llm_context: llm.LLMContext, api_id: str
) -> LLMTools | None:
    """Offer `look_at_camera` to this integration's agents in the Assist API."""
    if api_id != llm.LLM_API_ASSIST or llm_context.platform != DOMAIN:
        return None
    if (side := agent_camera_side()) is None:
        return None
    return LLMTools(tools=[LookAtCameraTool(side, name=ASSIST_CAMERA_TOOL)])
