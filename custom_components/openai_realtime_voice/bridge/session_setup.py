"""What a device's Realtime session is opened with: its prompt, tools and settings.

The prompt and Home Assistant's LLM API are rendered by the device conversation's chat log, as
for a typed Assist request, inside the entry's agent scope (its allowlist and image input); the
device's own MCP tools join them. Used by the Realtime engine each time it opens a session.
"""

from __future__ import annotations

from homeassistant.components import conversation
from homeassistant.helpers import llm

from ..const import CONF_LLM_HASS_API, CONF_PROMPT, DOMAIN
from ..endpoint import DeviceConnection, DeviceState
from ..profile import CONF_LANGUAGE
from ..realtime import Modality, SessionConfig
from ..services_api import agent_allowlist
from ..settings import session_config, transcription_language
from ..vision import agent_image_side
from .context import BridgeContext
from .turns import DeviceTurns


async def async_device_session_config(
    ctx: BridgeContext, turns: DeviceTurns, device: DeviceState, connection: DeviceConnection
) -> SessionConfig:
    """The audio session's settings with the rendered prompt and every offered tool."""
    instructions, api = await _async_llm_data(ctx, turns, device)
    tools = await turns.async_offer_tools(api, device.tools, connection.mcp)
    options = ctx.options()
    return session_config(
        options,
        instructions=instructions,
        tools=tools,
        modality=Modality.AUDIO,
        language=transcription_language(options.get(CONF_LANGUAGE) or ctx.hass.config.language),
    )


async def _async_llm_data(
    ctx: BridgeContext, turns: DeviceTurns, device: DeviceState
) -> tuple[str, llm.APIInstance | None]:
    """The system prompt and the HA LLM API for this device, rendered by a chat log."""
    options = ctx.options()
    context = llm.LLMContext(
        platform=DOMAIN,
        context=ctx.user_context(options),
        language=options.get(CONF_LANGUAGE) or ctx.hass.config.language,
        assistant=conversation.DOMAIN,
        device_id=ctx.device_id(),
    )
    scope = agent_allowlist(options, image_side=agent_image_side(ctx.entry, options))
    with turns.chat_log() as chat_log, scope:
        try:
            await chat_log.async_provide_llm_data(
                context, options.get(CONF_LLM_HASS_API), options.get(CONF_PROMPT)
            )
        except conversation.ConverseError:
            device.errors["llm_api"] += 1
            await chat_log.async_provide_llm_data(context, None, options.get(CONF_PROMPT))
        system = chat_log.content[0]
        prompt = system.content if isinstance(system, conversation.SystemContent) else ""
        return prompt, chat_log.llm_api
