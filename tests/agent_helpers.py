"""Shared helpers for the tests of the conversation agent: its entity id, a typed request."""

from __future__ import annotations

from homeassistant.components import conversation
from homeassistant.core import Context, HomeAssistant

AGENT = "conversation.openai_realtime"


# Home Assistant 2026.10 names Assist tools after the integration providing them.
TURN_ON = "intent__HassTurnOn"


async def ask_agent(
    hass: HomeAssistant, text: str, conversation_id: str | None = None
) -> conversation.ConversationResult:
    """Ask the agent `text` as a typed Assist request, in a new or a given conversation."""
    return await conversation.async_converse(
        hass, text, conversation_id, Context(), language="en", agent_id=AGENT
    )
