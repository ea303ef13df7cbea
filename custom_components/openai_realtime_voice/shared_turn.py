"""One spoken turn shared by this integration's speech-to-text, agent and text-to-speech.

When an Assist pipeline uses all three, the user's audio goes into the Realtime session of
the pipeline's conversation, the model's spoken answer starts as soon as Home Assistant's VAD
ends the speech, the agent takes that answer over instead of asking again, and text-to-speech
streams the audio the model is already producing.

The three find the turn by conversation id: Home Assistant runs a whole pipeline (its
speech-to-text, its agent and the task that renders its speech) inside the pipeline's chat
session, so `chat_session.current_session` names the conversation in each of them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping
from dataclasses import replace
import time
from typing import Any, Final

from homeassistant.components import conversation
from homeassistant.core import CALLBACK_TYPE, Context, HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import chat_session, llm
from homeassistant.helpers.event import async_call_later

from .agent import AgentSession, AgentSessions
from .const import (
    CONF_LLM_HASS_API,
    CONF_PROMPT,
    DOMAIN,
    LOGGER,
)
from .history import async_replay
from .realtime import (
    AudioDelta,
    Modality,
    RealtimeClient,
    RealtimeError,
    RealtimeRequestError,
    RealtimeResponse,
)
from .services_api import agent_allowlist
from .settings import session_config, transcription_language
from .speech import TRANSCRIPT_TIMEOUT, async_send_speech, async_transcript, transcription
from .turn import tool_results
from .usage import EntryUsage, Pricing, pricing_for

UNCLAIMED_TIMEOUT: Final = 10.0
"""Seconds an answer started for a turn waits for the agent to take it before it is withdrawn."""
UNSPOKEN_TIMEOUT: Final = 30.0
"""Seconds a taken turn keeps its audio for a text-to-speech request that does not come."""


def current_conversation_id() -> str | None:
    """The conversation of the pipeline run this code runs in, if any."""
    session = chat_session.current_session.get()
    return session.conversation_id if session is not None else None


class SharedTurn:
    """A user's spoken turn and the model's spoken answer to it, across its responses."""

    def __init__(
        self,
        hass: HomeAssistant,
        conversation_id: str,
        session: AgentSession,
        client: RealtimeClient,
        usage: EntryUsage | None,
        *,
        agent_id: str,
        pricing: Pricing,
    ) -> None:
        """Start with the user's audio on its way; `async_answer` takes the answer over.

        The turn belongs to the conversation agent (subentry) `agent_id`: its session, and its
        responses priced as that agent's (`pricing`).
        """
        self.hass = hass
        self.conversation_id = conversation_id
        self.session = session
        self.client = client
        self.usage = usage
        self.agent_id = agent_id
        self.pricing = pricing
        self.transcript = ""
        self.extra_prompt: str | None = None
        """The extra system prompt the answer was started with."""
        self.user_item: str | None = None
        self.claimed = False
        self.spoken = False
        self.closed = False
        self.speech_ended = time.monotonic()
        """When the user's speech ended (its last loud audio arrived; the silence the voice
        detection waited for before the commit counted in): the turn's latency counts from here."""
        self.first_audio: float | None = None
        """When the first audio of the answer reached text-to-speech."""
        self._audio: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._responses: list[RealtimeResponse] = []
        self._views: list[RealtimeResponse] = []
        self._pumps: set[asyncio.Task[None]] = set()
        self._timer: CALLBACK_TYPE | None = None
        self.on_first_audio: Callable[[SharedTurn], None] = lambda _turn: None

    def committed(self, item_id: str) -> None:
        """The user's audio became the conversation item `item_id`."""
        self.user_item = item_id

    def follow(self, response: RealtimeResponse) -> RealtimeResponse:
        """Split a response of this turn: its audio goes to speech, the rest to the returned view.

        A response's events can be read once; the agent reads the view (text, transcript, tool
        calls), text-to-speech reads the audio.
        """
        view = RealtimeResponse(response.id, response.metadata)
        self._responses.append(response)
        self._views.append(view)
        pump = self.hass.async_create_background_task(
            self._pump(response, view), f"{DOMAIN} shared turn {response.id}"
        )
        self._pumps.add(pump)
        pump.add_done_callback(self._pumps.discard)
        return view

    async def _pump(self, response: RealtimeResponse, view: RealtimeResponse) -> None:
        async for event in response:
            if isinstance(event, AudioDelta):
                self._audio.put_nowait(event.pcm)
            else:
                view.push(event)
        view.finish(response.status or "failed", response.status_details, response.usage)
        view.error = response.error
        if self.usage is not None:
            self.usage.record(response.usage, self.pricing)

    @callback
    def async_arm(self, timeout: float, expire: CALLBACK_TYPE) -> None:
        """(Re)start the timer that ends a turn nobody takes further."""
        if self._timer is not None:
            self._timer()
        self._timer = async_call_later(self.hass, timeout, lambda _now: expire())

    async def async_answer(self, chat_log: conversation.ChatLog, agent_id: str) -> None:
        """Stream the answer into the chat log, run its tools there, and follow up with audio.

        The user's message is in the Realtime conversation already (as audio): nothing is sent
        for it. Every response of the turn speaks into the same text-to-speech stream.
        """
        session = self.session
        tool_loop = session.tool_loop
        tool_loop.agent_id = agent_id
        tool_loop.offer(chat_log.llm_api)  # the agent's tool context (device, satellite)
        tool_loop.start_turn()
        view = self._views[0]
        try:
            while True:
                added = await tool_loop.async_add_streamed(chat_log, view)
                session.sent = len(chat_log.content)
                if view.status != "completed":
                    error = view.error
                    if error is not None and not isinstance(error, RealtimeRequestError):
                        raise error  # quota, auth: mapped by the conversation agent
                    raise HomeAssistantError(
                        translation_domain=DOMAIN,
                        translation_key="response_failed",
                        translation_placeholders={"status": str(view.status)},
                    )
                if not chat_log.unresponded_tool_results:
                    return
                view = self.follow(await tool_loop.async_answer(self.client, tool_results(added)))
        finally:
            self._audio.put_nowait(None)

    async def audio(self) -> AsyncIterator[bytes]:
        """The answer's audio (PCM16 24 kHz) across every response of the turn, as it comes."""
        while (pcm := await self._audio.get()) is not None:
            if self.first_audio is None:
                self.first_audio = time.monotonic()
                self.on_first_audio(self)
            yield pcm

    async def async_withdraw(self) -> None:
        """Take back an answer nobody will hear: cancel it and remove its items.

        The conversation then holds neither the user's audio nor the answer, as if the turn
        had not reached the model (Home Assistant answered it another way).
        """
        self._audio.put_nowait(None)
        client = self.client
        try:
            for response in self._responses:
                if not response.done:
                    await client.cancel(0, response=response)
            for response in self._responses:
                async with asyncio.timeout(client.options.response_timeout):
                    await response.wait()
                items = [call.item_id for call in response.function_calls]
                if response.audio_item_id is not None:
                    items.insert(0, response.audio_item_id)
                for item_id in items:
                    await client.delete_item(item_id, response_id=response.id)
            if self.user_item is not None:
                await client.delete_item(self.user_item)
        except (RealtimeError, TimeoutError) as err:
            # The session cannot be trusted with this conversation any more.
            LOGGER.debug("Could not withdraw an unclaimed answer: %s", err)
            await client.close()

    async def async_close(self) -> None:
        """Stop following the turn's responses."""
        self.closed = True
        if self._timer is not None:
            self._timer()
            self._timer = None
        self._audio.put_nowait(None)
        for pump in list(self._pumps):
            pump.cancel()


class SharedTurns:
    """The pending spoken turns of an entry, by conversation id."""

    def __init__(self, hass: HomeAssistant) -> None:
        """Start with none."""
        self.hass = hass
        self._turns: dict[str, SharedTurn] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._listeners: list[CALLBACK_TYPE] = []
        self.last_latency_ms: float | None = None
        """The last turn's latency: from the end of the user's speech in the stream Home
        Assistant handed over (the voice detection's silence window counted in, as a device's
        response latency) to the first answer audio handed back to it."""

    @callback
    def async_add_listener(self, update: CALLBACK_TYPE) -> CALLBACK_TYPE:
        """Call `update` when a turn's latency is known; returns the remover."""
        self._listeners.append(update)
        return lambda: self._listeners.remove(update)

    @callback
    def _first_audio(self, turn: SharedTurn) -> None:
        assert turn.first_audio is not None
        self.last_latency_ms = (turn.first_audio - turn.speech_ended) * 1000
        for update in list(self._listeners):
            update()

    def get(self, conversation_id: str | None) -> SharedTurn | None:
        """The pending turn of a conversation."""
        return self._turns.get(conversation_id or "")

    @callback
    def async_add(self, turn: SharedTurn) -> None:
        """A turn's answer started: the agent has `UNCLAIMED_TIMEOUT` s to take it."""
        if (old := self._turns.get(turn.conversation_id)) is not None:
            self.async_end(old, withdraw=not old.claimed)
        self._turns[turn.conversation_id] = turn
        turn.on_first_audio = self._first_audio
        turn.async_arm(UNCLAIMED_TIMEOUT, lambda: self._expire(turn))

    @callback
    def async_claim(
        self, conversation_id: str, agent_id: str, text: str, extra_prompt: str | None
    ) -> SharedTurn | None:
        """Agent `agent_id` takes the turn whose transcript it was given; None: answer it anew.

        A run with an extra prompt the answer was started without (`start_conversation` tells
        the agent what it asked), or by another agent than the one the answer was started for,
        is answered anew: see `async_release`.
        """
        turn = self._turns.get(conversation_id)
        if (
            turn is None
            or turn.claimed
            or turn.agent_id != agent_id
            or turn.transcript != text
            or turn.extra_prompt != extra_prompt
        ):
            return None
        turn.claimed = True
        turn.async_arm(UNSPOKEN_TIMEOUT, lambda: self._expire(turn))
        return turn

    async def async_release(self, conversation_id: str) -> None:
        """The agent answers anew: take back a pending answer first (it is not in its way)."""
        turn = self._turns.get(conversation_id)
        if turn is None or turn.claimed:
            return
        del self._turns[conversation_id]
        LOGGER.debug("Withdrawing the answer of %s: the agent answers anew", conversation_id)
        await turn.async_withdraw()
        await turn.async_close()

    @callback
    def async_take_speech(self, conversation_id: str | None) -> SharedTurn | None:
        """Text-to-speech of a conversation: the taken turn whose audio it streams, if any.

        A turn the agent did not take was answered by Home Assistant another way (a local
        intent, a sentence trigger): its answer is withdrawn and the text is spoken instead.
        """
        turn = self._turns.get(conversation_id or "")
        if turn is None or turn.spoken:
            return None
        if not turn.claimed:
            LOGGER.debug("Withdrawing the answer of %s: Home Assistant answered", conversation_id)
            self.async_end(turn, withdraw=True)
            return None
        turn.spoken = True
        return turn

    @callback
    def async_done(self, turn: SharedTurn) -> None:
        """A turn's audio was streamed to the end."""
        if self._turns.get(turn.conversation_id) is turn:
            self.async_end(turn, withdraw=False)

    @callback
    def _expire(self, turn: SharedTurn) -> None:
        if self._turns.get(turn.conversation_id) is not turn:
            return
        if not turn.claimed:
            LOGGER.debug("Withdrawing the unclaimed answer of %s", turn.conversation_id)
        self.async_end(turn, withdraw=not turn.claimed)

    @callback
    def async_end(self, turn: SharedTurn, *, withdraw: bool) -> None:
        """Forget a turn and stop following it (in the background); `withdraw` its answer."""
        if self._turns.get(turn.conversation_id) is turn:
            del self._turns[turn.conversation_id]

        async def _finish() -> None:
            if withdraw:
                await turn.async_withdraw()
            await turn.async_close()

        task = self.hass.async_create_background_task(
            _finish(), f"{DOMAIN} end turn {turn.conversation_id}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def async_close(self) -> None:
        """Unload: end every turn and wait for it."""
        for turn in list(self._turns.values()):
            self.async_end(turn, withdraw=False)
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


async def async_hear(
    hass: HomeAssistant,
    sessions: AgentSessions,
    turns: SharedTurns,
    options: Mapping[str, Any],
    *,
    agent_id: str,
    image_side: int | None,
    conversation_id: str,
    language: str | None,
    stream: AsyncIterable[bytes],
) -> str:
    """Put a pipeline's speech into its conversation's session and start the spoken answer.

    `sessions` and `options` are those of the pipeline's agent (subentry `agent_id`), with
    the speech-to-text's transcription model: the answer is in that agent's model and voice,
    priced as its responses. Returns the transcript of the speech (what the pipeline gives the
    agent); the answer is pending in `turns` for the agent to take. Raises `RealtimeError` when
    the session fails.
    """
    session, is_new = sessions.async_acquire(conversation_id)
    if is_new and (chat := chat_session.current_session.get()) is not None:
        chat.async_on_cleanup(lambda: sessions.async_discard(conversation_id))
    async with session.lock:
        chat_log, instructions = await _async_prompt(hass, options, image_side, language)
        config = session_config(
            options,
            instructions=instructions,
            tools=session.tool_loop.offer(chat_log.llm_api),
            modality=Modality.AUDIO,
            language=transcription_language(language),
        )
        # Home Assistant's VAD ends the turn (manual turns); the answer is audio.
        client = await session.async_open(
            replace(config, turn_detection=None, transcription=transcription(options, language))
        )
        await async_replay(client, chat_log.content[session.sent :], session.tool_loop.names)
        session.sent = len(chat_log.content)
        pricing = pricing_for(options)
        turn = SharedTurn(
            hass,
            conversation_id,
            session,
            client,
            sessions.usage,
            agent_id=agent_id,
            pricing=pricing,
        )
        turn.extra_prompt = chat_log.extra_system_prompt
        heard = hass.async_create_background_task(
            async_transcript(client, sessions.usage, pricing, turn.committed),
            f"{DOMAIN} transcript {conversation_id}",
        )
        try:
            turn.speech_ended = await async_send_speech(client, stream)
            await client.commit_audio()
            turn.follow(await client.create_response())
            turns.async_add(turn)
            async with asyncio.timeout(TRANSCRIPT_TIMEOUT):
                turn.user_item, turn.transcript = await heard
        except BaseException:
            turns.async_end(turn, withdraw=True)  # no transcript: the pipeline ends here
            raise
        finally:
            heard.cancel()
    if not turn.transcript:
        turns.async_end(turn, withdraw=True)  # nothing to answer: the pipeline ends here
    return turn.transcript


async def _async_prompt(
    hass: HomeAssistant,
    options: Mapping[str, Any],
    image_side: int | None,
    language: str | None,
) -> tuple[conversation.ChatLog, str]:
    """The conversation's chat log with the agent's prompt and tools, as the agent sets them
    (within its services allowlist, with `look_at_camera` when it takes images).

    The log is only read: nothing is added to it here, so Home Assistant does not keep it.
    """
    chat = chat_session.current_session.get()
    assert chat is not None
    llm_context = llm.LLMContext(
        platform=DOMAIN,
        context=Context(),
        language=language,
        assistant=conversation.DOMAIN,
        device_id=None,
    )
    with (
        conversation.async_get_chat_log(hass, chat) as chat_log,
        agent_allowlist(options, image_side=image_side),
    ):
        await chat_log.async_provide_llm_data(
            llm_context, options.get(CONF_LLM_HASS_API), options.get(CONF_PROMPT)
        )
    system = chat_log.content[0]
    instructions = system.content if isinstance(system, conversation.SystemContent) else ""
    return chat_log, instructions


__all__ = ["SharedTurn", "SharedTurns", "async_hear", "current_conversation_id"]
