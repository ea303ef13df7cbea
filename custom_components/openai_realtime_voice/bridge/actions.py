"""What automations ask of a device on the Realtime path: speak, say, ask, converse.

Each action is a response the bridge creates itself. `speak`/`say` wait until the line was
heard; `ask` keeps server turn detection from answering, listens for the user's answer and
lets the model pick the option it chooses; `converse` adds instructions for the next answer
only. The `Actions` follow the session through `SessionHooks` (answers, played replies).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
import contextlib
from dataclasses import replace
import itertools
import json
from typing import Any, Final

from homeassistant.exceptions import HomeAssistantError

from ..const import DOMAIN, LOGGER
from ..realtime import (
    InputCommitted,
    InputTranscript,
    Modality,
    RealtimeClient,
    RealtimeError,
    RealtimeResponse,
    RealtimeSessionClosed,
    SessionConfig,
    SpeechStarted,
)
from .context import BridgeContext
from .realtime_engine import ANNOUNCE_KEY, SILENT_KEY

SESSION_OPEN_WAIT: Final = 15.0
"""Seconds an action waits for the session of a board that was just woken to open (the
service takes 0.3-0.8 s; its own connect timeout bounds a stalled one)."""


class BridgeBusyError(RealtimeError):
    """The device is already waiting for the answer to a question."""


class _AnswerListener:
    """Finds the answer to a question: the transcript of an utterance begun after it played.

    Utterances are known by their input item: one whose speech started while the question
    played (or before) is not the answer, nor is a late transcript of an earlier turn. In
    manual mode (no turn detection) an item committed after the question counts. A failed
    transcription answers "" (no answer).
    """

    def __init__(self, answer: asyncio.Future[str]) -> None:
        self.answer = answer
        self.question_played = False
        self._answers: set[str] = set()
        self._earlier: set[str] = set()

    async def follow(self, client: RealtimeClient) -> None:
        async for event in client.events():
            match event:
                case SpeechStarted(item_id=item_id):
                    (self._answers if self.question_played else self._earlier).add(item_id)
                case InputCommitted(item_id=item_id):
                    if self.question_played and item_id not in self._earlier:
                        self._answers.add(item_id)
                case InputTranscript(item_id=item_id, text=text):
                    if item_id in self._answers and not self.answer.done():
                        self.answer.set_result(text)


class Actions:
    """The automation actions of one device, and the answers and lines they wait for."""

    def __init__(self, ctx: BridgeContext) -> None:
        """Act through the router's Realtime session."""
        self._ctx = ctx
        self._announce_ids = itertools.count(1)
        self._announced: dict[str, asyncio.Future[None]] = {}
        self._asking: asyncio.Future[str] | None = None
        self._extra_instructions = False

    # --- session hooks ----------------------------------------------------------------------

    @property
    def asking(self) -> bool:
        """Whether a question waits for the user's answer."""
        return self._asking is not None

    def on_reply_played(self, response: RealtimeResponse) -> None:
        """An announced line has been heard (or cut): its action may return."""
        key = (response.metadata or {}).get(ANNOUNCE_KEY)
        if (future := self._announced.get(str(key))) is not None and not future.done():
            future.set_result(None)

    def on_reply_done(self, response: RealtimeResponse) -> None:
        """After the conversation's next answer, back to the session's own instructions."""
        if self._extra_instructions and ANNOUNCE_KEY not in (response.metadata or {}):
            self._extra_instructions = False
            self._ctx.spawn(self._ctx.realtime.apply_session(), "instructions")

    def on_session_end(self, reason: str) -> None:
        """A question whose session is gone gets no answer: fail it instead of waiting it out."""
        if self._asking is not None and not self._asking.done():
            self._asking.set_exception(RealtimeSessionClosed(reason))

    def close(self, reason: str) -> None:
        """The device left: nothing it was asked to say or ask can finish."""
        for future in self._announced.values():
            if not future.done():
                future.set_exception(RealtimeSessionClosed(reason))
        self.on_session_end(reason)

    # --- actions ------------------------------------------------------------------------------

    async def _require_session(self) -> tuple[RealtimeClient, SessionConfig]:
        """The open session; one still opening (an automation that waited for the board to
        connect runs at once) is waited for."""
        await self._ctx.until_ready()
        realtime = self._ctx.realtime
        try:
            async with asyncio.timeout(SESSION_OPEN_WAIT):
                await realtime.async_wait_session()
        except TimeoutError:
            raise RealtimeError("the Realtime session did not open in time") from None
        return realtime.require_session()

    async def async_speak(
        self,
        *,
        message: str | None = None,
        prompt: str | None = None,
        instructions: str | None = None,
        interrupt: bool = False,
        remember: bool = False,
    ) -> None:
        """Speak a message verbatim, or one the model words from a prompt; wait until heard.

        It queues behind a reply in progress unless `interrupt`; it stays out of the
        conversation (an out-of-band response) unless `remember`.
        """
        client, _ = await self._require_session()
        parts = [
            f"Say exactly this to the user, and nothing else: {message}"
            if message
            else str(prompt or "")
        ]
        if instructions:
            parts.append(instructions)
        key = str(next(self._announce_ids))
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._announced[key] = future
        try:
            if interrupt:
                await self._ctx.async_interrupt()
            await client.create_response(
                instructions="\n\n".join(parts),
                out_of_band=not remember,
                metadata={ANNOUNCE_KEY: key},
                # The words are in the instructions: no conversation billed as input again,
                # and no tool to call while wording them.
                input_items=[],
                tools=(),
                tool_choice="none",
            )
            await future
        finally:
            self._announced.pop(key, None)

    async def async_ask(
        self,
        question: str,
        *,
        options: Sequence[str] | None = None,
        instructions: str | None = None,
        answer_timeout: float = 15.0,
    ) -> dict[str, Any]:
        """Ask a question, listen for the answer and return its transcript (and matched option).

        While asking, server turn detection creates no response by itself: the answer is heard
        and transcribed, not answered. The question stays in the conversation.
        """
        realtime = self._ctx.realtime
        client, config = await self._require_session()
        if self._asking is not None:
            raise BridgeBusyError
        if config.transcription is None:
            # The answer is the transcript of the user's words: without transcription it
            # would never come (every question timed out).
            raise HomeAssistantError(
                translation_domain=DOMAIN, translation_key="ask_needs_transcription"
            )
        answer: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._asking = answer
        detection = config.turn_detection
        quiet = replace(detection, create_response=False) if detection is not None else None
        listener = _AnswerListener(answer)
        follow = self._ctx.spawn(listener.follow(client), "answer")  # subscribed at once
        try:
            await client.update_session(realtime.for_mode(replace(config, turn_detection=quiet)))
            await self.async_speak(message=question, instructions=instructions, remember=True)
            listener.question_played = True
            try:
                async with asyncio.timeout(answer_timeout):
                    transcript = await answer
            except TimeoutError:
                return {"answered": False}
            if not transcript:  # nothing said, or its transcription failed
                return {"answered": False}
        finally:
            follow.cancel()
            self._asking = None
            with contextlib.suppress(RealtimeError):  # a session that ended needs no restoring
                await client.update_session(realtime.for_mode(realtime.config or config))
        result: dict[str, Any] = {"answered": True, "transcript": transcript}
        if options:
            result.update(await _match(client, question, transcript, list(options)))
        return result

    async def async_converse(self, message: str | None, instructions: str | None) -> None:
        """Start a conversation: extra instructions for the next answer only, then listen.

        The opening line (the message, or one the model words) stays in the conversation; the
        device listens by itself once it has been played.
        """
        realtime = self._ctx.realtime
        client, config = await self._require_session()
        if instructions:
            await client.update_session(
                realtime.for_mode(
                    replace(config, instructions=f"{config.instructions}\n\n{instructions}")
                )
            )
            self._extra_instructions = True
        if message:
            await self.async_speak(message=message, remember=True)
        else:
            await self.async_speak(
                prompt="Open the conversation in one short sentence, as your instructions say.",
                remember=True,
            )


async def _match(
    client: RealtimeClient, question: str, transcript: str, options: list[str]
) -> dict[str, Any]:
    """Let the model pick the option an answer chooses, with its confidence."""
    response = await client.create_response(
        instructions=(
            f"The user was asked {json.dumps(question)} and answered "
            f"{json.dumps(transcript)}. Which of these options does the answer choose: "
            f"{json.dumps(options)}? Reply with JSON only, no other text: "
            '{"option": <one of the options exactly, or null>, "confidence": <0 to 1>}.'
        ),
        modality=Modality.TEXT,
        out_of_band=True,
        metadata={SILENT_KEY: "match"},
        input_items=[],  # the question and the answer are in the instructions
        tools=(),
        tool_choice="none",
    )
    await response.wait()
    try:
        verdict = json.loads(response.text.strip().removeprefix("```json").strip("`\n "))
        option = verdict.get("option")
        confidence = float(verdict.get("confidence"))
    except ValueError, TypeError, AttributeError:
        LOGGER.debug("The model's option match was not JSON: %r", response.text[:200])
        lowered = transcript.lower()
        found = [o for o in options if o.lower() in lowered]
        return {"option": found[0] if len(found) == 1 else None, "confidence": None}
    if option not in options:
        option = None
    return {"option": option, "confidence": max(0.0, min(confidence, 1.0))}


__all__ = ["Actions", "BridgeBusyError"]
