"""The tool loop: Realtime responses in a Home Assistant chat log, for typed and spoken turns.

A response is mapped to chat log content here, once, for the Assist agent (text streamed as it
arrives) and for devices (a reply that already played). The chat log runs the tool calls
through its `llm_api` (`TurnTools`: Home Assistant's LLM API plus any other API, such as a
device's own tools), so they are recorded as ordinary tool calls with their results. The
outputs go back to the Realtime session, which asks for the next response: at most
`MAX_TOOL_ROUNDS` times in a turn.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
import json
from typing import Any, Final, override

from homeassistant.components import conversation
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import llm
import probatio

from .const import DOMAIN, LOGGER
from .endpoint import DATA_HUB
from .realtime import (
    FunctionCall,
    FunctionTool,
    RealtimeClient,
    RealtimeResponse,
    TextDelta,
    TranscriptDelta,
)
from .services_api.intents import intent_refusal
from .tools import ToolNames, format_tool, tool_output
from .vision import async_send_parked

MAX_TOOL_ROUNDS: Final = 10
"""Times one turn's tool outputs are answered with a new response (typed and spoken turns)."""

TOOL_TIMEOUT: Final = 10.0
"""Seconds one tool call may take before the model is told it timed out."""


class ToolRoundsExceededError(HomeAssistantError):
    """The model kept calling tools: the turn ended after `MAX_TOOL_ROUNDS` rounds."""

    def __init__(self) -> None:
        """The translated error the Assist agent shows."""
        super().__init__(translation_domain=DOMAIN, translation_key="too_many_tool_calls")


class JsonSchemaTool(llm.Tool):
    """A tool whose parameters are a JSON schema already (an MCP tool), offered as it is."""

    schema: dict[str, Any]


def _error(kind: str, text: str) -> llm.ToolResult:
    """An error result shaped like the ones the chat log makes of a tool's exception."""
    return llm.ToolResult(data={"error": kind, "error_text": text}, error=True)


@dataclass
class TurnTools(llm.APIInstance):
    """The tools a turn offers, each call under a timeout; every outcome is a `ToolResult`.

    The chat log turns `HomeAssistantError` and `probatio.Invalid` into error results itself;
    a timeout, any other failure and arguments that are not a JSON object become one here,
    so a broken tool never ends the conversation.
    """

    timeout: float = TOOL_TIMEOUT
    refused: set[str] | None = None
    """Ids of calls whose arguments were not a JSON object: answered without running."""
    running: set[asyncio.Task[Any]] = field(default_factory=set)
    """The calls in progress (the chat log runs each in a task of its own)."""

    @override
    async def async_call_tool(self, tool_input: llm.ToolInput) -> llm.ToolResult:
        """Call the tool under the timeout; a timeout or a crash is an error result."""
        if self.refused is not None and tool_input.id in self.refused:
            self.refused.discard(tool_input.id)
            return _error("InvalidArguments", "arguments are not a JSON object")
        tool = next((tool for tool in self.tools if tool.name == tool_input.tool_name), None)
        if tool is not None and (
            refused := intent_refusal(self.api.hass, tool, tool_input, self.llm_context)
        ):
            return refused  # Assist would run a scene or script that needs the user's yes
        if (task := asyncio.current_task()) is not None:  # pragma: no branch - always in a task
            self.running.add(task)
        try:
            async with asyncio.timeout(self.timeout):
                return await super().async_call_tool(tool_input)
        except TimeoutError:
            LOGGER.warning("Tool %s timed out after %g s", tool_input.tool_name, self.timeout)
            return _error("TimeoutError", f"timed out after {self.timeout:g} s")
        except HomeAssistantError, probatio.Invalid:
            raise  # the chat log records these as the tool's error
        except Exception:  # noqa: BLE001 - a broken tool must not end the conversation
            LOGGER.exception("Tool %s raised an unexpected error", tool_input.tool_name)
            return _error("UnexpectedError", "unexpected error")
        finally:
            self.running.discard(task)


def no_user_context() -> llm.LLMContext:
    """The context of tools called where no Home Assistant LLM API (and no user) is set."""
    return llm.LLMContext(
        platform=DOMAIN, context=None, language=None, assistant=conversation.DOMAIN, device_id=None
    )


class _NoAPI(llm.API):
    """The API of a turn that offers no tools (a call still gets an answer).

    The tool loop builds its instance itself (`ToolLoop._turn_tools`), sharing its state.
    """

    @override
    async def async_get_api_instance(
        self, llm_context: llm.LLMContext
    ) -> llm.APIInstance:  # pragma: no cover - never asked: the tool loop builds the instance
        return llm.APIInstance(api=self, api_prompt="", llm_context=llm_context, tools=[])


class ToolLoop:
    """One Realtime conversation's turns in its Home Assistant chat log.

    Used by the Assist agent (`agent.py`) and by the speech bridge (`bridge/turns.py`) alike:
    it names the offered tools, maps responses to chat log content, sends tool outputs back
    and counts the rounds of a turn.
    """

    def __init__(
        self,
        hass: HomeAssistant,
        agent_id: str,
        entry_id: str = "",
        *,
        timeout: float = TOOL_TIMEOUT,
    ) -> None:
        """Start with no tools offered and no round taken."""
        self.hass = hass
        self.agent_id = agent_id
        self.entry_id = entry_id
        self.names = ToolNames()
        self.max_rounds = MAX_TOOL_ROUNDS  # read here: tests lower it per tool loop or module
        self.timeout = timeout
        self.rounds = 0
        self.tools: TurnTools | None = None
        self._refused: set[str] = set()
        self._running: set[asyncio.Task[Any]] = set()

    def offer(
        self, api: llm.APIInstance | None, *more: llm.APIInstance
    ) -> tuple[FunctionTool, ...]:
        """Offer the tools of these APIs (names kept: combine only name-spaced APIs).

        Returns them as Realtime function tools with valid names; `tools` runs the calls.
        """
        apis = [instance for instance in (api, *more) if instance is not None]
        if not apis:
            self.tools = None
            return ()
        first = apis[0]
        self.tools = self._turn_tools(
            first.api,
            first.api_prompt,
            first.llm_context,
            [tool for instance in apis for tool in instance.tools],
            first.custom_serializer,
        )
        return tuple(self._function(tool) for tool in self.tools.tools)

    def _turn_tools(
        self,
        api: llm.API,
        api_prompt: str,
        llm_context: llm.LLMContext,
        tools: list[llm.Tool],
        custom_serializer: Callable[[Any], Any] | None = None,
    ) -> TurnTools:
        """The tools of a turn, sharing this loop's timeout, refusals and running calls."""
        return TurnTools(
            api=api,
            api_prompt=api_prompt,
            llm_context=llm_context,
            tools=tools,
            custom_serializer=custom_serializer,
            timeout=self.timeout,
            refused=self._refused,
            running=self._running,
        )

    def _function(self, tool: llm.Tool) -> FunctionTool:
        name = self.names.add(tool.name)
        if isinstance(tool, JsonSchemaTool):
            return FunctionTool(
                name=name, description=tool.description or "", parameters=tool.schema
            )
        assert self.tools is not None
        return format_tool(tool, self.tools.custom_serializer, name)

    def cancel(self) -> None:
        """The conversation ends: stop the tool calls still running (they answer no one)."""
        for task in self._running:
            task.cancel()

    def start_turn(self) -> None:
        """A new turn: its tool rounds count from zero."""
        self.rounds = 0

    def _use_tools(self, chat_log: conversation.ChatLog) -> None:
        """Let the chat log run this loop's tools (an empty API when none are offered)."""
        if self.tools is None:
            no_api = _NoAPI(hass=self.hass, id=f"{DOMAIN}_none", name="No tools")
            self.tools = self._turn_tools(no_api, "", no_user_context(), [])
        chat_log.llm_api = self.tools

    # --- responses to chat log content ------------------------------------------------------

    def tool_input(self, call: FunctionCall) -> llm.ToolInput:
        """A model's function call as the chat log's tool call (run by Home Assistant)."""
        try:
            arguments = json.loads(call.arguments or "{}")
        except ValueError:
            arguments = None
        if not isinstance(arguments, dict):
            LOGGER.warning(
                "The model called %s with arguments that are not a JSON object", call.name
            )
            self._refused.add(call.call_id)
            arguments = {}
        return llm.ToolInput(
            id=call.call_id,
            tool_name=self.names.original(call.name) or call.name,
            tool_args=arguments,
        )

    async def _deltas(
        self, events: AsyncIterable[object]
    ) -> AsyncGenerator[conversation.AssistantContentDeltaDict]:
        """Map a response's events to chat log deltas (text as it streams, then tool calls)."""
        yield {"role": "assistant"}
        async for event in events:
            if isinstance(event, (TextDelta, TranscriptDelta)):
                yield {"content": event.text}
            elif isinstance(event, FunctionCall):
                yield {"tool_calls": [self.tool_input(event)]}

    async def async_add_streamed(
        self, chat_log: conversation.ChatLog, response: RealtimeResponse
    ) -> list[conversation.AssistantContent | conversation.ToolResultContent]:
        """Stream a response into the chat log as it arrives; its tools run meanwhile."""
        self._use_tools(chat_log)
        return [
            content
            async for content in chat_log.async_add_delta_content_stream(
                self.agent_id, self._deltas(response)
            )
        ]

    def played_content(self, response: RealtimeResponse) -> conversation.AssistantContent | None:
        """A response that already played (its events are consumed) as one chat log entry."""
        calls = response.function_calls if response.status == "completed" else []
        text = response.reply
        if not text and not calls:
            return None
        return conversation.AssistantContent(
            agent_id=self.agent_id,
            content=text or None,
            tool_calls=[self.tool_input(call) for call in calls] or None,
        )

    async def async_add_played(
        self, chat_log: conversation.ChatLog, content: conversation.AssistantContent
    ) -> list[conversation.ToolResultContent]:
        """Add a played response with tool calls to the chat log and run them there."""
        self._use_tools(chat_log)
        return [result async for result in chat_log.async_add_assistant_content(content)]

    # --- tool outputs back to the session ---------------------------------------------------

    async def async_answer(
        self, client: RealtimeClient, results: Iterable[conversation.ToolResultContent]
    ) -> RealtimeResponse:
        """Send tool outputs (their pictures first) and ask for the next response.

        Past `max_rounds` in this turn the outputs are still added (every call has an answer
        in the conversation) but no response is asked for: `ToolRoundsExceededError`.
        """
        outputs = {result.tool_call_id: tool_output(result.result) for result in results}
        # Pictures tools took (a camera snapshot) go in right before their outputs.
        if (hub := self.hass.data.get(DATA_HUB)) is not None:
            await async_send_parked(hub.vision, client, outputs, self.entry_id)
        if self.rounds >= self.max_rounds:
            LOGGER.warning(
                "%s: the model called tools in %d responses in a row; the turn ends without "
                "another response (tool outputs are answered at most %d times a turn)",
                self.agent_id,
                self.rounds + 1,
                self.max_rounds,
            )
            for call_id, output in outputs.items():
                await client.add_function_output(call_id, output)
            raise ToolRoundsExceededError
        self.rounds += 1
        return await client.submit_tool_outputs(outputs)


def tool_results(
    content: Sequence[conversation.AssistantContent | conversation.ToolResultContent],
) -> list[conversation.ToolResultContent]:
    """The tool results among chat log content."""
    return [entry for entry in content if isinstance(entry, conversation.ToolResultContent)]
