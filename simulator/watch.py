"""What Home Assistant did during a simulator run: its tool calls with their results.

The device only sees its own MCP tools being called; Home Assistant's tools (Assist intents,
services) run inside Home Assistant. The integration records every turn of a device in Home
Assistant's chat log (the satellite is the agent), which the WebSocket API streams to an admin
(`conversation/chat_log/subscribe_index`, `conversation/chat_log/subscribe`). This module
follows those logs and keeps each tool result with its call.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
import itertools
from typing import Any

import aiohttp

from .outcome import describe_result

SUBSCRIBE_ATTEMPTS = 50
SUBSCRIBE_RETRY_S = 0.1
HEARTBEAT_S = 30.0
"""Ping Home Assistant this often: a connection that stops answering ends the watch. Silence
itself is normal (nothing happens while a person approves the pairing code), so receiving
has no timeout."""
REPLY_TIMEOUT_S = 10.0


class HomeAssistantAuthError(Exception):
    """Home Assistant refused the token (401 or auth_invalid)."""


@dataclass(slots=True)
class ToolCall:
    """One tool Home Assistant ran for a device turn, and what it returned."""

    agent_id: str
    name: str
    arguments: dict[str, Any]
    ok: bool
    outcome: str
    call_id: str = ""

    def to_json(self) -> dict[str, Any]:
        """For the JSON report."""
        return {
            "agent_id": self.agent_id,
            "name": self.name,
            "arguments": self.arguments,
            "ok": self.ok,
            "outcome": self.outcome,
        }


@dataclass
class ChatLogWatch:
    """Follows every chat log of a Home Assistant and collects tool calls with results."""

    base_url: str
    token: str
    calls: list[ToolCall] = field(default_factory=list)
    _pending: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    # Calls whose result arrived before their arguments (see `_on_updated`), by call id.
    _unresolved: dict[str, ToolCall] = field(default_factory=dict)
    _subscribed: set[str] = field(default_factory=set)
    _created: set[str] = field(default_factory=set)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _session: aiohttp.ClientSession | None = None
    _ws: aiohttp.ClientWebSocketResponse | None = None
    _task: asyncio.Task[None] | None = None
    _results: dict[int, asyncio.Future[Any]] = field(default_factory=dict)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def start(self) -> None:
        """Connect, authenticate and subscribe; raises HomeAssistantAuthError or OSError."""
        self._session = aiohttp.ClientSession()
        url = self.base_url.replace("http", "ws", 1).rstrip("/") + "/api/websocket"
        try:
            self._ws = await self._session.ws_connect(
                url,
                timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=REPLY_TIMEOUT_S),
                heartbeat=HEARTBEAT_S,
            )
            await self._ws.receive_json(timeout=REPLY_TIMEOUT_S)  # auth_required
            await self._ws.send_json({"type": "auth", "access_token": self.token})
            reply = await self._ws.receive_json(timeout=REPLY_TIMEOUT_S)
            if reply.get("type") == "auth_ok":
                await self._send({"type": "conversation/chat_log/subscribe_index"})
        except BaseException:
            await self.close()
            raise
        if reply.get("type") != "auth_ok":
            await self.close()
            raise HomeAssistantAuthError(str(reply.get("message") or reply.get("type")))
        self._task = asyncio.create_task(self._receive())

    async def close(self) -> None:
        """Stop following."""
        for task in self._tasks:
            task.cancel()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._ws is not None:
            await self._ws.close()
        if self._session is not None:
            await self._session.close()

    async def _send(self, message: dict[str, Any]) -> int:
        assert self._ws is not None
        msg_id = next(self._ids)
        await self._ws.send_json({"id": msg_id, **message})
        return msg_id

    def _follow(self, conversation_id: str) -> None:
        """Subscribe to one chat log (in a task: the answer comes through the receiver)."""
        if conversation_id in self._subscribed:
            return
        self._subscribed.add(conversation_id)
        task = asyncio.create_task(self._subscribe(conversation_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _subscribe(self, conversation_id: str) -> None:
        """Home Assistant announces a new log before it stores it (while the agent prepares
        its prompt): a subscription that comes too early is refused, so try again shortly.
        """
        for _ in range(SUBSCRIBE_ATTEMPTS):
            try:
                await self.command(
                    "conversation/chat_log/subscribe", conversation_id=conversation_id
                )
            except OSError:
                await asyncio.sleep(SUBSCRIBE_RETRY_S)
            else:
                return
        self._subscribed.discard(conversation_id)

    async def command(self, kind: str, **data: Any) -> Any:
        """Run one WebSocket command on the same connection; its result (OSError if refused)."""
        assert self._ws is not None
        if self._task is not None and self._task.done():
            raise OSError("Home Assistant closed its WebSocket connection")
        msg_id = next(self._ids)
        future = self._results[msg_id] = asyncio.get_running_loop().create_future()
        await self._ws.send_json({"id": msg_id, "type": kind, **data})
        try:
            async with asyncio.timeout(REPLY_TIMEOUT_S):
                reply = await future
        except TimeoutError:
            raise OSError(f"{kind}: Home Assistant did not answer") from None
        finally:
            self._results.pop(msg_id, None)
        if not reply.get("success"):
            raise OSError(f"{kind}: {(reply.get('error') or {}).get('message', reply)}")
        return reply.get("result")

    async def satellite_of(self, mac: str) -> str | None:
        """The Assist satellite entity of the paired device with this MAC address."""
        devices = await self.command("config/device_registry/list")
        device_id = next(
            (
                d["id"]
                for d in devices
                if ["openai_realtime_voice", mac] in d.get("identifiers", [])
            ),
            None,
        )
        if device_id is None:
            return None
        entities = await self.command("config/entity_registry/list")
        return next(
            (
                str(e["entity_id"])
                for e in entities
                if e.get("device_id") == device_id
                and e["entity_id"].startswith("assist_satellite.")
            ),
            None,
        )

    async def latency_of(self, mac: str) -> float | None:
        """The device's *Response latency* sensor (ms); None before its first reply."""
        entities = await self.command("config/entity_registry/list")
        entity_id = next(
            (
                str(e["entity_id"])
                for e in entities
                if e.get("platform") == "openai_realtime_voice"
                and e.get("unique_id") == f"{mac}_latency"
            ),
            None,
        )
        state = (await self.states()).get(entity_id or "")
        try:
            return float(state) if state is not None else None
        except ValueError:  # unknown, unavailable
            return None

    async def states(self) -> dict[str, str]:
        """Every entity's state."""
        return {s["entity_id"]: s["state"] for s in await self.command("get_states")}

    async def _receive(self) -> None:
        assert self._ws is not None
        try:
            async for message in self._ws:
                if message.type is not aiohttp.WSMsgType.TEXT:
                    break
                data = message.json()
                for item in data if isinstance(data, list) else [data]:
                    if item.get("type") == "event":
                        self._on_event(item.get("event") or {})
                    elif (future := self._results.pop(item.get("id"), None)) and not future.done():
                        future.set_result(item)
        finally:
            # Commands still waiting get an answer at once instead of their timeout.
            for future in self._results.values():
                if not future.done():
                    future.set_exception(OSError("Home Assistant closed its WebSocket connection"))
            self._results.clear()

    def _on_event(self, event: dict[str, Any]) -> None:
        """Index and chat log events.

        Home Assistant creates a device's chat log when it records a turn and adds the turn's
        content at once, before a subscription can follow: a log created while we watch is
        read from its subscription's initial state; for logs that existed before, only
        content added later counts. A log opened without content is deleted again, and its
        conversation id may come back: forget it on deletion.
        """
        kind, data = event.get("event_type"), event.get("data")
        conversation_id = str(event.get("conversation_id"))
        if kind == "initial_state" and isinstance(data, list):  # the index: existing logs
            for chat_log in data:
                self._follow(str(chat_log.get("conversation_id")))
        elif kind == "initial_state" and isinstance(data, dict):  # one log, as it is now
            if (created := str(data.get("conversation_id"))) in self._created:
                self._created.discard(created)
                for content in data.get("content") or []:
                    self._on_content(content)
        elif kind == "created":
            self._created.add(conversation_id)
            self._follow(conversation_id)
        elif kind == "deleted":
            self._subscribed.discard(conversation_id)
        elif kind == "content_added" and isinstance(data, dict):
            self._on_content(data.get("content") or {})
        elif kind == "updated" and isinstance(data, dict):
            self._on_updated(data.get("chat_log") or {})

    def _on_updated(self, chat_log: dict[str, Any]) -> None:
        """A log as it is after a turn: the arguments of calls only their results announced.

        `ChatLog.async_add_assistant_content` (the message whose tool calls Home Assistant
        runs) adds the message without a `content_added` event; the results have one.
        """
        for content in chat_log.get("content") or []:
            for call in content.get("tool_calls") or []:
                if (found := self._unresolved.pop(str(call.get("id")), None)) is not None:
                    found.arguments = call.get("tool_args") or {}

    def _on_content(self, content: dict[str, Any]) -> None:
        agent_id = str(content.get("agent_id", ""))
        if content.get("role") == "assistant":
            for call in content.get("tool_calls") or []:
                self._pending[str(call.get("id"))] = (
                    str(call.get("tool_name")),
                    call.get("tool_args") or {},
                )
        elif content.get("role") == "tool_result":
            call_id = str(content.get("tool_call_id"))
            pending = self._pending.pop(call_id, None)
            name, arguments = pending or (str(content.get("tool_name")), {})
            ok, outcome = describe_result(content.get("result") or {})
            call = ToolCall(agent_id, name, arguments, ok, outcome, call_id)
            self.calls.append(call)
            if pending is None:
                self._unresolved[call_id] = call
