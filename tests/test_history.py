"""Replaying a chat log onto a fresh Realtime session."""

from __future__ import annotations

from homeassistant.components import conversation
from homeassistant.helpers import llm

from custom_components.openai_realtime_voice.history import async_replay
from custom_components.openai_realtime_voice.realtime import (
    Modality,
    RealtimeClient,
    RealtimeEndpoint,
    SessionConfig,
)
from custom_components.openai_realtime_voice.tools import ToolNames
from realtime_server import RealtimeServer


async def test_replay_skips_system_and_external_tools(realtime_server: RealtimeServer) -> None:
    """Messages and Home Assistant tool calls are replayed; provider-run tools are not."""
    client = RealtimeClient(
        RealtimeEndpoint(
            api_key=realtime_server.api_key, model="gpt-realtime", base_url=realtime_server.url
        ),
        SessionConfig(output_modality=Modality.TEXT, turn_detection=None),
    )
    await client.connect()
    content: list[conversation.Content] = [
        conversation.SystemContent(content="Be brief."),
        conversation.UserContent(content="Search the web, then dim the light"),
        conversation.AssistantContent(
            agent_id="conversation.x",
            tool_calls=[
                llm.ToolInput(id="ext1", tool_name="web_search", tool_args={}, external=True),
                llm.ToolInput(id="call1", tool_name="light.dim", tool_args={"level": 5}),
            ],
        ),
        conversation.ToolResultContent(
            agent_id="conversation.x",
            tool_call_id="ext1",
            tool_name="web_search",
            result=llm.ToolResult(data={"status": "completed"}),
        ),
        conversation.ToolResultContent(
            agent_id="conversation.x",
            tool_call_id="call1",
            tool_name="light.dim",
            result=llm.ToolResult(data={"ok": True}),
        ),
        conversation.AssistantContent(agent_id="conversation.x", content="Dimmed."),
    ]
    try:
        await async_replay(client, content, ToolNames())
        await realtime_server.wait_for("conversation.item.create", 4)
    finally:
        await client.close()
    items = [event["item"] for event in realtime_server.of_type("conversation.item.create")]
    assert [(item["type"], item.get("role")) for item in items] == [
        ("message", "user"),
        ("function_call", None),
        ("function_call_output", None),
        ("message", "assistant"),
    ]
    assert items[1]["name"] == "light_dim"
    assert items[1]["call_id"] == items[2]["call_id"] == "call1"
