"""The device conversation's chat log: the user turns the model heard, its replies, tool results.

A reply's tools run inside the chat log (the tool loop, `turn.py`, as for typed Assist
requests) at once, after the user turns the reply heard were recorded there (the count the
services API's confirmations rely on); a turn still being transcribed is recorded as
UNTRANSCRIBED and its words replace that entry when they arrive. Home Assistant's tools and
the device's own (`DeviceToolsAPI`) run as the device's user and are recorded as ordinary
tool calls with their results.
Spoken turns get their text when transcribed; transcription runs alongside the reply, so a
reply without tools may be written once its turns' transcripts arrive.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Sequence
import contextlib
from dataclasses import dataclass
from typing import Final

from homeassistant.components import conversation
from homeassistant.core import HomeAssistant
from homeassistant.helpers import chat_session, llm

from ..const import DOMAIN
from ..home import DeviceHome
from ..realtime import FunctionTool, RealtimeClient, RealtimeResponse
from ..realtime.tracker import UNTRANSCRIBED
from ..services_api import SPOKEN_DIALOGUE
from ..turn import ToolLoop, ToolRoundsExceededError, no_user_context
from ..xiaozhi import McpClient, McpTool
from .tools import DeviceToolsAPI

MAX_PLACEHOLDERS: Final = 8
"""Recorded turns whose late transcript is still put in their place."""


KEPT_MOMENTS: Final = 16
"""Speech starts, played replies and recorded turn starts remembered for confirmations."""


@dataclass(slots=True)
class _UserTurn:
    """A user turn the model heard that is not in the chat log yet.

    Spoken turns are known by their input item and get their text when it is transcribed (""
    when the transcript is empty); typed turns (`listen detect`) come with their text.
    `started` is when the user began it (loop time).
    """

    item_id: str | None
    started: float
    text: str | None = None


@dataclass(slots=True)
class _Placeholder:
    """A spoken turn recorded before its transcript (its tools ran): the entry to replace.

    The chat log only keeps a change when content is added, so `text` goes in with the next
    reply written (which waits for it, as a reply waits for its own turns' transcripts).
    """

    item_id: str
    content: conversation.UserContent
    text: str | None = None


class DeviceTurns:
    """One device connection's conversation as Home Assistant's chat log records it."""

    def __init__(self, hass: HomeAssistant, home: DeviceHome) -> None:
        """Start with no turn heard; the chat session is created on first use."""
        self.hass = hass
        self.home = home
        self.device = home.state
        self.conversation_id: str | None = None
        self.transcribing = False
        """Whether the session transcribes the user's audio (set with each session)."""
        self.heard = 0
        """User turns the model heard on this connection."""
        self._recorded = 0  # of which in the chat log
        self._unrecorded: list[_UserTurn] = []
        # Turns recorded as UNTRANSCRIBED whose transcript may still come.
        self._placeholders: list[_Placeholder] = []
        # A reply without tools waiting for its user turns' transcripts: (turns heard, reply).
        self._untranscribed: tuple[int, RealtimeResponse] | None = None
        self.tool_loop = ToolLoop(hass, DOMAIN)
        """Maps replies to chat log content, runs their tools, counts a turn's tool rounds."""
        self._round_heard = 0  # user turns heard when the current round of tools started
        # For confirmations (`SpokenDialogue`): when each spoken turn began, by input item;
        # (start, end) of the replies that played to their end; starts of recorded turns.
        self._speech_starts: dict[str, float] = {}
        self._playing_since: float | None = None
        self._played: deque[tuple[float, float]] = deque(maxlen=KEPT_MOMENTS)
        self._answers: deque[float] = deque(maxlen=KEPT_MOMENTS)

    async def async_offer_tools(
        self, api: llm.APIInstance | None, mcp_tools: Sequence[McpTool], mcp: McpClient | None
    ) -> tuple[FunctionTool, ...]:
        """Offer Home Assistant's tools and the device's model-facing MCP tools; as functions."""
        device_api = DeviceToolsAPI(self.hass, self.device.mac, mcp_tools, mcp)
        if not device_api.tools:
            return self.tool_loop.offer(api)
        context = api.llm_context if api is not None else no_user_context()
        return self.tool_loop.offer(api, await device_api.async_get_api_instance(context))

    async def async_reply_done(
        self, response: RealtimeResponse, heard: int, *, on_tools: Callable[[], None]
    ) -> list[conversation.ToolResultContent]:
        """Record a reply that played; run its tools (calling `on_tools` first), return results.

        A new user turn (or a reply without tools) starts the tool loop's round count anew.
        """
        self.tool_loop.agent_id = self._agent_id()
        content = self.tool_loop.played_content(response)
        if content is None or not content.tool_calls:
            self.tool_loop.start_turn()
            self._record_when_transcribed(heard, response)
            return []
        if heard != self._round_heard:
            self._round_heard = heard
            self.tool_loop.start_turn()
        self.flush()
        # The tools run now: a turn still being transcribed is recorded as UNTRANSCRIBED (it
        # counts as the user's turn for confirmations) and gets its words when they arrive.
        with self.chat_log() as chat_log:
            self._apply_transcripts(chat_log)
            self._record_user_turns(chat_log, heard)
            on_tools()
            spoken = SPOKEN_DIALOGUE.set(self)
            try:
                results = await self.tool_loop.async_add_played(chat_log, content)
            finally:
                SPOKEN_DIALOGUE.reset(spoken)
        self.device.errors["tool"] += sum(result.result.error for result in results)
        return results

    async def async_answer_tools(
        self,
        client: RealtimeClient,
        results: Sequence[conversation.ToolResultContent],
        entry_id: str,
    ) -> RealtimeResponse | None:
        """Send a reply's tool outputs; the follow-up response, None when the turn ends here.

        Raises `RealtimeError` when the session refuses them.
        """
        self.tool_loop.entry_id = entry_id
        try:
            return await self.tool_loop.async_answer(client, results)
        except ToolRoundsExceededError:
            return None  # logged; the device listens again

    def _agent_id(self) -> str:
        face = self.home.face
        return face.entity_id if face is not None else DOMAIN

    @contextlib.contextmanager
    def chat_log(self) -> Iterator[conversation.ChatLog]:
        """The device conversation's chat session and chat log, current while open."""
        with (
            chat_session.async_get_chat_session(self.hass, self.conversation_id) as session,
            conversation.async_get_chat_log(self.hass, session) as chat_log,
        ):
            self.conversation_id = session.conversation_id
            yield chat_log

    def heard_turn(self, item_id: str | None, text: str | None = None) -> None:
        """The model heard a user turn (spoken: its input item; typed: its text).

        The responses created from now on count it. It started when its speech started (see
        `speech_started`), else now (a typed turn, a manual turn without server VAD).
        """
        self.heard += 1
        started = self._speech_starts.pop(item_id, None) if item_id is not None else None
        self._unrecorded.append(_UserTurn(item_id, started or self.hass.loop.time(), text))

    # --- the dialogue's timing, for confirmations (`SpokenDialogue`) -----------------------------

    def speech_started(self, item_id: str, when: float) -> None:
        """The user began the turn of this input item at `when` (loop time)."""
        self._speech_starts[item_id] = when
        while len(self._speech_starts) > KEPT_MOMENTS:
            del self._speech_starts[next(iter(self._speech_starts))]

    def reply_playing(self) -> None:
        """A reply starts playing on the device."""
        self._playing_since = self.hass.loop.time()

    def reply_played(self) -> None:
        """The reply playing has been heard to its end (not cut)."""
        if self._playing_since is not None:
            self._played.append((self._playing_since, self.hass.loop.time()))
            self._playing_since = None

    def mark(self) -> float:
        """Now, on the loop's clock."""
        return self.hass.loop.time()

    def answered_after(self, mark: float) -> bool:
        """Whether a recorded user turn started after a reply begun after `mark` played whole."""
        ends = [end for start, end in self._played if start > mark]
        return bool(ends) and any(started > ends[0] for started in self._answers)

    def _heard_turns(self, heard: int) -> list[_UserTurn]:
        """The user turns a response heard that are not in the chat log yet."""
        return self._unrecorded[: heard - self._recorded]

    def heard_text(self, heard: int) -> str | None:
        """The text of the last unrecorded user turn a response heard, if any."""
        turns = self._heard_turns(heard)
        return turns[-1].text if turns else None

    def add_transcript(self, item_id: str, text: str) -> None:
        """The user's words of one audio item; a reply waiting for them is recorded now."""
        for turn in self._unrecorded:
            if turn.item_id == item_id:
                turn.text = text
                break
        else:
            self._fill_placeholder(item_id, text)
        if (
            (late := self._untranscribed) is not None
            and all(turn.text is not None for turn in self._heard_turns(late[0]))
            and not self._awaiting_placeholders()
        ):
            self.flush()

    def _fill_placeholder(self, item_id: str, text: str) -> None:
        """Keep the late transcript of a turn recorded as UNTRANSCRIBED for the next write."""
        for placeholder in self._placeholders:
            if placeholder.item_id == item_id:
                placeholder.text = text
                return

    def _awaiting_placeholders(self) -> bool:
        return any(placeholder.text is None for placeholder in self._placeholders)

    def _apply_transcripts(self, chat_log: conversation.ChatLog) -> None:
        """Put the late transcripts that arrived in place of their UNTRANSCRIBED entries."""
        for placeholder in [p for p in self._placeholders if p.text is not None]:
            self._placeholders.remove(placeholder)
            if not placeholder.text:
                continue  # nothing was said: the marker stays
            for index, content in enumerate(chat_log.content):
                if content is placeholder.content:
                    chat_log.content[index] = conversation.UserContent(content=placeholder.text)
                    break

    def _record_user_turns(self, chat_log: conversation.ChatLog, heard: int) -> None:
        """Add the user turns a response heard to the chat log (before its tools run).

        Only turns committed before the response started count: a turn that arrives while it
        plays is the next response's. A turn without a transcript is recorded as UNTRANSCRIBED
        (a turn all the same; a transcript arriving later stays out of the log).
        """
        turns = self._heard_turns(heard)
        del self._unrecorded[: len(turns)]
        self._recorded += len(turns)
        for turn in turns:
            self._answers.append(turn.started)
            content = conversation.UserContent(content=turn.text or UNTRANSCRIBED)
            chat_log.async_add_user_content(content)
            if turn.text is None and turn.item_id is not None and self.transcribing:
                self._placeholders.append(_Placeholder(turn.item_id, content))
                del self._placeholders[:-MAX_PLACEHOLDERS]

    def _record_when_transcribed(self, heard: int, response: RealtimeResponse) -> None:
        """Record a reply without tools once the transcripts of its user turns are known.

        Transcription runs alongside the reply and may finish after it: such a reply waits for
        them (matched by item id), or is written without them when the next reply is recorded
        or the session ends.
        """
        self.flush()
        if self.transcribing and (
            any(turn.text is None for turn in self._heard_turns(heard))
            or self._awaiting_placeholders()
        ):
            self._untranscribed = (heard, response)
            return
        self._write_turn(heard, response)

    def cancel(self) -> None:
        """The connection ends: stop the reply's tool calls still running."""
        self.tool_loop.cancel()

    def flush(self) -> None:
        """Write the reply waiting for transcripts now; the ones still missing stay markers."""
        if (late := self._untranscribed) is not None:
            self._untranscribed = None
            self._write_turn(*late)
            self._placeholders.clear()

    def _write_turn(self, heard: int, response: RealtimeResponse) -> None:
        """Add a reply without tools, and the user turns it heard, to the chat log."""
        self.tool_loop.agent_id = self._agent_id()
        content = self.tool_loop.played_content(response)
        with self.chat_log() as chat_log:
            self._apply_transcripts(chat_log)
            self._record_user_turns(chat_log, heard)
            if content is not None:
                chat_log.async_add_assistant_content_without_tools(content)
