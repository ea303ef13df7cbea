"""Realtime sessions behind an Assist conversation agent: one per conversation, pooled."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, Final

from homeassistant.components import conversation
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers.event import async_call_later

from .const import DOMAIN, LOGGER
from .history import async_replay
from .realtime import (
    Modality,
    RealtimeClient,
    RealtimeEndpoint,
    RealtimeError,
    RealtimeRateLimitError,
    RealtimeRequestError,
    RealtimeResponse,
    SessionConfig,
)
from .settings import session_config
from .turn import ToolLoop, tool_results
from .usage import EntryUsage, pricing_for

RATE_LIMIT_RETRIES: Final = 3
"""Times a response the service failed for `rate_limit_exceeded` is asked for again."""
MAX_SESSIONS: Final = 8
IDLE_TIMEOUT: Final = 300.0


class AgentSession:
    """One Realtime text session carrying one Home Assistant conversation."""

    def __init__(
        self,
        hass: HomeAssistant,
        endpoint: RealtimeEndpoint,
        conversation_id: str,
        usage: EntryUsage | None = None,
        entry_id: str = "",
    ) -> None:
        """Prepare; the session connects on its first message."""
        self.hass = hass
        self.endpoint = endpoint
        self.conversation_id = conversation_id
        self.usage = usage
        self.lock = asyncio.Lock()
        self.tool_loop = ToolLoop(hass, DOMAIN, entry_id)
        self._client: RealtimeClient | None = None
        self._sent = 0  # chat log entries already in the Realtime conversation

    @property
    def client(self) -> RealtimeClient | None:
        """The live client, if connected."""
        return self._client

    async def async_process(
        self, chat_log: conversation.ChatLog, agent_id: str, options: Mapping[str, Any]
    ) -> None:
        """Send the new chat log content, stream the answer in and run tools until done.

        The tool loop runs the tools in the chat log; past its round limit the turn ends
        with `ToolRoundsExceededError`.
        """
        system = chat_log.content[0]
        pricing = pricing_for(options)  # the agent's model and prices
        tool_loop = self.tool_loop
        tool_loop.agent_id = agent_id
        config = session_config(
            options,
            instructions=system.content if isinstance(system, conversation.SystemContent) else "",
            tools=tool_loop.offer(chat_log.llm_api),
            modality=Modality.TEXT,
        )
        client = await self.async_open(config)

        # Everything the Realtime conversation has not seen: the history on a fresh session,
        # usually just the new user message.
        await async_replay(client, chat_log.content[self._sent :], tool_loop.names)
        self._sent = len(chat_log.content)

        tool_loop.start_turn()
        response = await client.create_response()
        # The client's own backoff (base, cap, jitter), for a bounded number of retries.
        rate_limits = client.options.retry_policy(RATE_LIMIT_RETRIES)
        while True:
            added = await tool_loop.async_add_streamed(chat_log, response)
            self._sent = len(chat_log.content)
            self._trace(chat_log, response)
            if self.usage is not None:
                self.usage.record(response.usage, pricing)
            if response.status != "completed":
                error = response.error
                retry = isinstance(error, RealtimeRateLimitError) and not added
                if retry and await rate_limits.wait():
                    response = await client.create_response()
                    continue
                if error is not None and not isinstance(error, RealtimeRequestError):
                    raise error  # quota, auth, rate limit: mapped by the conversation agent
                raise HomeAssistantError(
                    translation_domain=DOMAIN,
                    translation_key="response_failed",
                    translation_placeholders={"status": str(response.status)},
                )
            if not chat_log.unresponded_tool_results:
                return
            response = await tool_loop.async_answer(client, tool_results(added))

    async def async_open(self, config: SessionConfig) -> RealtimeClient:
        """The session's client with `config` applied: connected now, or updated."""
        client = self._client
        if client is None or not client.connected:
            if client is not None:
                await client.close()
            client = self._client = RealtimeClient(self.endpoint, config)
            self._sent = 1  # the system prompt travels as instructions
            await client.connect()
        else:
            await client.update_session(config)
        return client

    @property
    def sent(self) -> int:
        """How many chat log entries the Realtime conversation already holds."""
        return self._sent

    @sent.setter
    def sent(self, count: int) -> None:
        self._sent = count

    @staticmethod
    def _trace(chat_log: conversation.ChatLog, response: RealtimeResponse) -> None:
        if usage := response.usage:
            chat_log.async_trace(
                {
                    "stats": {
                        "input_tokens": usage.get("input_tokens"),
                        "output_tokens": usage.get("output_tokens"),
                    }
                }
            )

    async def async_close(self) -> None:
        """Stop the tool calls still running and close the Realtime session."""
        self.tool_loop.cancel()
        if (client := self._client) is not None:
            self._client = None
            await client.close()


class AgentSessions:
    """A bounded pool of agent sessions keyed by conversation id.

    The least recently used session is closed when the pool is full; a session also closes when
    Home Assistant ends its chat session or after it was idle for a while.
    """

    def __init__(
        self,
        hass: HomeAssistant,
        endpoint_factory: Callable[[], RealtimeEndpoint],
        *,
        max_sessions: int = MAX_SESSIONS,
        idle_timeout: float = IDLE_TIMEOUT,
        usage: EntryUsage | None = None,
        entry_id: str = "",
    ) -> None:
        """Create an empty pool; every session's responses are recorded in `usage`."""
        self.hass = hass
        self.entry_id = entry_id
        self.usage = usage
        self._endpoint_factory = endpoint_factory
        self._max = max_sessions
        self._idle_timeout = idle_timeout
        self._sessions: OrderedDict[str, AgentSession] = OrderedDict()
        self._idle_timers: dict[str, CALLBACK_TYPE] = {}
        self._closing: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        """The number of open sessions."""
        return len(self._sessions)

    def get(self, conversation_id: str) -> AgentSession | None:
        """The pooled session of a conversation, if any."""
        return self._sessions.get(conversation_id)

    @callback
    def async_acquire(self, conversation_id: str) -> tuple[AgentSession, bool]:
        """The session of a conversation (most recently used now) and whether it is new."""
        if (session := self._sessions.get(conversation_id)) is not None:
            self._sessions.move_to_end(conversation_id)
            self._touch(conversation_id)
            return session, False
        while len(self._sessions) >= self._max:
            oldest = next(iter(self._sessions))
            LOGGER.debug("Closing the least recently used Realtime session %s", oldest)
            self.async_discard(oldest)
        session = AgentSession(
            self.hass, self._endpoint_factory(), conversation_id, self.usage, self.entry_id
        )
        self._sessions[conversation_id] = session
        self._touch(conversation_id)
        return session, True

    @callback
    def _touch(self, conversation_id: str) -> None:
        if (cancel := self._idle_timers.pop(conversation_id, None)) is not None:
            cancel()

        @callback
        def _expire(_now: Any) -> None:
            self._idle_timers.pop(conversation_id, None)
            LOGGER.debug("Closing idle Realtime session %s", conversation_id)
            self.async_discard(conversation_id)

        self._idle_timers[conversation_id] = async_call_later(
            self.hass, self._idle_timeout, _expire
        )

    @callback
    def async_discard(self, conversation_id: str) -> None:
        """Close and forget a conversation's session (in the background)."""
        if (cancel := self._idle_timers.pop(conversation_id, None)) is not None:
            cancel()
        if (session := self._sessions.pop(conversation_id, None)) is None:
            return
        task = self.hass.async_create_background_task(
            session.async_close(), f"{DOMAIN} close session {conversation_id}"
        )
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def async_close(self) -> None:
        """Close every session (on unload) and wait until they are closed."""
        for conversation_id in list(self._sessions):
            self.async_discard(conversation_id)
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)


__all__ = ["AgentSession", "AgentSessions", "RealtimeError"]
