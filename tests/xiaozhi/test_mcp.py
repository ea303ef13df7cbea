"""The MCP client, driven by feeding replies through `handle_message`."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from custom_components.openai_realtime_voice.xiaozhi import (
    McpClient,
    McpClosedError,
    McpError,
    McpNotification,
    McpProtocolError,
    McpTimeoutError,
    McpTool,
    ToolLimits,
)


class Device:
    """Collects requests; answers them through a reply function if one is given."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.client = McpClient(self.send, timeout=1.0, max_pages=3)
        self.answer: Any = None

    async def send(self, payload: dict[str, Any]) -> None:
        self.sent.append(payload)
        if self.answer is not None:
            reply = self.answer(payload)
            if reply is not None:
                asyncio.get_running_loop().call_soon(self.client.handle_message, reply)


def ok(payload: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": payload["id"], "result": result}


async def test_initialize_sends_vision_and_numeric_ids() -> None:
    """initialize carries the vision capability; ids are numbers counting from 1."""
    device = Device()
    device.answer = lambda p: ok(
        p,
        {
            "protocolVersion": "2024-11-05",
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "board", "version": "2.4.2"},
        },
    )
    info = await device.client.initialize(vision_url="http://v/explain", vision_token="t")
    assert device.sent == [
        {
            "jsonrpc": "2.0",
            "method": "initialize",
            "params": {"capabilities": {"vision": {"url": "http://v/explain", "token": "t"}}},
            "id": 1,
        }
    ]
    assert (info.name, info.version, info.protocol_version) == ("board", "2.4.2", "2024-11-05")
    assert device.client.server_info == info
    device.answer = lambda p: ok(p, {"serverInfo": "x"})
    info = await device.client.initialize()
    assert info.name == ""
    assert device.sent[-1]["id"] == 2


async def test_list_tools_follows_cursor() -> None:
    """Pages are fetched until nextCursor is absent; user-only tools are flagged."""
    pages = {
        "": {
            "tools": [{"name": "a", "description": "A", "inputSchema": {"type": "object"}}],
            "nextCursor": "b",
        },
        "b": {"tools": [{"name": "b", "annotations": {"audience": ["user"]}}], "nextCursor": ""},
    }
    device = Device()
    device.answer = lambda p: ok(p, pages[p["params"]["cursor"]])
    tools = await device.client.list_tools(with_user_tools=True)
    assert tools == [
        McpTool("a", "A", {"type": "object"}),
        McpTool("b", "", {"type": "object", "properties": {}}, user_only=True),
    ]
    assert [p["params"] for p in device.sent] == [
        {"cursor": "", "withUserTools": True},
        {"cursor": "b", "withUserTools": True},
    ]


async def test_list_tools_is_bounded(caplog: pytest.LogCaptureFixture) -> None:
    """Too many tools, long names and descriptions, big schemas, duplicates: cut, logged once."""
    big_schema = {"type": "object", "properties": {f"p{i}": {"type": "string"} for i in range(400)}}
    page = [
        {"name": "self.first", "description": "x" * 29000},
        {"name": "self.first", "description": "again"},
        {"name": "n" * 129},
        {"name": "self.big", "inputSchema": big_schema},
        *({"name": f"self.tool_{i}", "description": "fine"} for i in range(40)),
    ]
    device = Device()
    device.answer = lambda p: ok(p, {"tools": page})
    with caplog.at_level(logging.WARNING):
        tools = await device.client.list_tools()
    limits = ToolLimits()
    assert len(tools) == limits.max_tools
    assert tools[0].name == "self.first"
    assert len(tools[0].description) == limits.max_description
    assert tools[0].description.endswith("…")
    assert [tool.name for tool in tools[1:]] == [f"self.tool_{i}" for i in range(31)]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    message = warnings[0].getMessage()
    assert message.startswith("MCP server: tool list cut")
    for part in (
        "1 duplicate tools dropped",
        "1 tools with a name over 128 characters dropped",
        "1 tools with a schema over 4096 bytes dropped",
        "9 tools over 32 dropped",
        "1 descriptions over 1024 characters shortened",
    ):
        assert part in message


async def test_list_tools_within_limits_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    """A list like the firmware's passes untouched and quietly."""
    page = [{"name": f"self.tool_{i}", "description": "d" * 1024} for i in range(32)]
    device = Device()
    device.answer = lambda p: ok(p, {"tools": page})
    with caplog.at_level(logging.WARNING):
        tools = await device.client.list_tools()
    assert [tool.description for tool in tools] == ["d" * 1024] * 32
    assert not caplog.records


@pytest.mark.parametrize(
    "pages",
    [
        {"": {"tools": {}}},
        {"": {"tools": [1]}},
        {"": {"tools": [{"name": ""}]}},
        {"": {"tools": [{"name": "x", "inputSchema": []}]}},
        {"": {"tools": [], "nextCursor": "a"}, "a": {"tools": [], "nextCursor": "a"}},
        {
            "": {"tools": [], "nextCursor": "a"},
            "a": {"tools": [], "nextCursor": "b"},
            "b": {"tools": [], "nextCursor": "c"},
        },
    ],
)
async def test_list_tools_bad_pages(pages: dict[str, Any]) -> None:
    """Malformed pages, repeating cursors and endless paging raise McpProtocolError."""
    device = Device()
    device.answer = lambda p: ok(p, pages[p["params"]["cursor"]])
    with pytest.raises(McpProtocolError):
        await device.client.list_tools()


async def test_call_tool_results_and_errors() -> None:
    """Results are typed; error replies (with or without code) raise McpError."""
    device = Device()
    device.answer = lambda p: ok(
        p, {"content": [{"type": "text", "text": "true"}, {"type": "image"}], "isError": False}
    )
    result = await device.client.call_tool("self.audio_speaker.set_volume", {"volume": 5})
    assert result.text == "true"
    assert not result.is_error
    assert device.sent[0]["params"] == {
        "name": "self.audio_speaker.set_volume",
        "arguments": {"volume": 5},
    }
    device.answer = lambda p: {
        "jsonrpc": "2.0",
        "id": p["id"],
        "error": {"message": "Unknown tool"},
    }
    with pytest.raises(McpError) as err:
        await device.client.call_tool("x")
    assert (err.value.message, err.value.code) == ("Unknown tool", None)
    device.answer = lambda p: {
        "jsonrpc": "2.0",
        "id": p["id"],
        "error": {"code": -32601, "message": "nope", "data": 1},
    }
    with pytest.raises(McpError) as err:
        await device.client.call_tool("x")
    assert (err.value.code, err.value.data) == (-32601, 1)
    for error in ["bad", {"code": True}]:
        device.answer = lambda p, e=error: {"jsonrpc": "2.0", "id": p["id"], "error": e}
        with pytest.raises(McpError):
            await device.client.call_tool("x")
    for bad_result in [None, {"content": "x"}, {"content": [1]}]:
        device.answer = lambda p, r=bad_result: {"jsonrpc": "2.0", "id": p["id"], "result": r}
        with pytest.raises(McpProtocolError):
            await device.client.call_tool("x")


async def test_timeout_then_late_reply_is_ignored() -> None:
    """A timed-out call raises; its late reply is dropped without effect."""
    device = Device()
    with pytest.raises(McpTimeoutError):
        await device.client.call_tool("slow", reply_timeout=0.01)
    assert device.client.pending == 0
    late = {"jsonrpc": "2.0", "id": 1, "result": {"content": []}}
    assert device.client.handle_message(late) is None


async def test_close_fails_pending_and_later_calls() -> None:
    """close() fails in-flight requests and refuses new ones."""
    device = Device()
    call = asyncio.ensure_future(device.client.call_tool("x"))
    await asyncio.sleep(0)
    assert device.client.pending == 1
    device.client.close()
    with pytest.raises(McpClosedError):
        await call
    assert device.client.closed
    with pytest.raises(McpClosedError):
        await device.client.request("tools/list")


async def test_calls_in_flight_by_tool() -> None:
    """Each tool call waiting for its reply is known by id with its arguments, until it ends."""
    device = Device()
    photo = asyncio.ensure_future(device.client.call_tool("cam", {"question": "what?"}))
    volume = asyncio.ensure_future(device.client.call_tool("vol", {"volume": 3}))
    await asyncio.sleep(0)
    assert device.client.calls_in_flight("cam") == {1: {"question": "what?"}}
    assert device.client.calls_in_flight("vol") == {2: {"volume": 3}}
    device.client.handle_message(ok(device.sent[0], {"content": []}))
    await photo
    assert device.client.calls_in_flight("cam") == {}
    device.client.close()
    with pytest.raises(McpClosedError):
        await volume
    assert device.client.calls_in_flight("vol") == {}


async def test_send_failure_cleans_up() -> None:
    """A transport error propagates and leaves nothing pending."""

    async def broken(payload: dict[str, Any]) -> None:
        raise ConnectionResetError

    client = McpClient(broken)
    with pytest.raises(ConnectionResetError):
        await client.request("initialize")
    assert client.pending == 0


def test_handle_message_notifications_and_garbage() -> None:
    """Notifications are returned; non-JSON-RPC payloads raise McpProtocolError."""
    client = McpClient(Device().send)
    note = {"jsonrpc": "2.0", "method": "notifications/state_changed", "params": {"a": 1}}
    assert client.handle_message(note) == McpNotification("notifications/state_changed", {"a": 1})
    assert client.handle_message({"jsonrpc": "2.0", "method": "n"}) == McpNotification("n", {})
    for bad in [
        [],
        {"jsonrpc": "1.0", "id": 1},
        {"jsonrpc": "2.0", "id": "1", "result": {}},
        {"jsonrpc": "2.0", "id": True, "result": {}},
        {"jsonrpc": "2.0", "method": "tools/list", "id": 3},
    ]:
        with pytest.raises(McpProtocolError):
            client.handle_message(bad)
