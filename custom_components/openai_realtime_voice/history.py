"""Restore a Home Assistant chat log's history on a fresh Realtime session."""

from __future__ import annotations

from collections.abc import Iterable

from homeassistant.components import conversation
from homeassistant.helpers.json import json_dumps

from .realtime import RealtimeClient
from .tools import ToolNames, tool_output


async def async_replay(
    client: RealtimeClient, content: Iterable[conversation.Content], names: ToolNames
) -> None:
    """Add the chat log's messages, tool calls and tool results as conversation items.

    System content is left out: it is the session's instructions. Calls of external tools
    (run by the provider, not by Home Assistant) and their results are left out too.
    """
    external: set[str] = set()
    for entry in content:
        if isinstance(entry, conversation.UserContent):
            await client.add_user_text(entry.content)
        elif isinstance(entry, conversation.AssistantContent):
            if entry.content:
                await client.add_assistant_text(entry.content)
            for call in entry.tool_calls or ():
                if call.external:
                    external.add(call.id)
                    continue
                await client.add_function_call(
                    call.id, names.add(call.tool_name), json_dumps(call.tool_args)
                )
        elif (
            isinstance(entry, conversation.ToolResultContent) and entry.tool_call_id not in external
        ):
            await client.add_function_output(entry.tool_call_id, tool_output(entry.result))
