"""The one place the satellite leans on Home Assistant's satellite internals.

A xiaozhi board on the Realtime path runs no Assist pipeline: the Realtime session hears the
user, answers and speaks. Home Assistant's `AssistSatelliteEntity` (2026.x, read from
`homeassistant/components/assist_satellite/entity.py`) offers integrations two public hooks,
`async_announce` and `async_start_conversation`, both called only after it has resolved the
text to TTS media through the entity's pipeline. It offers no public hook for:

1. **The entity's state outside a pipeline run, and none once it is being removed.** `state`
   is final and `_set_state` is its only writer (pipeline events and the base class's own
   announce flows call it). The Realtime conversation's phase (listening, processing,
   responding) is mirrored through it; and an Assist pipeline run that ends with the entity (it is
   disabled mid-run) still sends the base class its last events, whose state must not be
   written for an entity Home Assistant is removing.
2. **An action's words before they become TTS media.** The `announce`, `start_conversation`
   and `ask_question` actions call `async_internal_announce`,
   `async_internal_start_conversation` and `async_internal_ask_question`; the base class then
   needs a TTS engine, refuses the built-in agent, keeps the extra prompt for a pipeline run
   and takes the answer from a pipeline's STT stage. On the Realtime path the session speaks,
   converses and listens itself, so the entity must get the words first.
3. **Matching an answer to the question's answers.** `_question_response_to_answer` is Home
   Assistant's matcher (hassil, wildcard slots); the Realtime path's transcript goes through it
   so that answers read as on any satellite.

`SatelliteShim` holds these three and nothing else; the entity above it overrides none of
Home Assistant's private names. `tests/test_satellite_shim.py` checks the names and
signatures this relies on, and fails when a Home Assistant release changes them.
"""

from __future__ import annotations

from typing import Any, override

from homeassistant.components.assist_satellite import (
    AssistSatelliteAnswer,
    AssistSatelliteEntity,
)
from homeassistant.components.assist_satellite.const import PREANNOUNCE_URL
from homeassistant.components.assist_satellite.entity import AssistSatelliteState
from homeassistant.core import callback


class SatelliteShim(AssistSatelliteEntity):
    """Home Assistant's satellite, with hooks for actions the Realtime session serves itself."""

    # --- 1. the state -----------------------------------------------------------------------

    @callback
    def shim_set_state(self, state: AssistSatelliteState) -> None:
        """Show `state` (Home Assistant has no public setter outside a pipeline run)."""
        self._set_state(state)

    def state_shown(self) -> bool:
        """Whether the entity's state is written now; False while it is being removed."""
        return True

    @callback
    @override
    def _set_state(self, state: AssistSatelliteState) -> None:
        """Home Assistant's only writer of the state, skipped while the entity goes away."""
        if self.state_shown():
            super()._set_state(state)

    # --- 2. the actions' words ----------------------------------------------------------------

    async def async_realtime_announce(self, message: str, media_id: str | None) -> bool:
        """Serve an announcement before Home Assistant resolves it; False: leave it to HA."""
        return False

    async def async_realtime_start_conversation(
        self, start_message: str | None, start_media_id: str | None, extra_system_prompt: str | None
    ) -> bool:
        """Serve a started conversation before Home Assistant does; False: leave it to HA."""
        return False

    async def async_realtime_ask_question(
        self, question: str | None, question_media_id: str | None
    ) -> str | None:
        """Ask on the Realtime path: the answer's transcript; None: leave it to HA."""
        return None

    @override
    async def async_internal_announce(
        self,
        message: str | None = None,
        media_id: str | None = None,
        preannounce: bool = True,
        preannounce_media_id: str = PREANNOUNCE_URL,
    ) -> None:
        """The `announce` action: ours first, else Home Assistant's flow."""
        if not await self.async_realtime_announce(message or "", media_id):
            await super().async_internal_announce(
                message, media_id, preannounce, preannounce_media_id
            )

    @override
    async def async_internal_start_conversation(
        self,
        start_message: str | None = None,
        start_media_id: str | None = None,
        extra_system_prompt: str | None = None,
        preannounce: bool = True,
        preannounce_media_id: str = PREANNOUNCE_URL,
    ) -> None:
        """The `start_conversation` action: ours first, else Home Assistant's flow."""
        if not await self.async_realtime_start_conversation(
            start_message, start_media_id, extra_system_prompt
        ):
            await super().async_internal_start_conversation(
                start_message,
                start_media_id,
                extra_system_prompt,
                preannounce,
                preannounce_media_id,
            )

    @override
    async def async_internal_ask_question(
        self,
        question: str | None = None,
        question_media_id: str | None = None,
        preannounce: bool = True,
        preannounce_media_id: str = PREANNOUNCE_URL,
        answers: list[dict[str, Any]] | None = None,
    ) -> AssistSatelliteAnswer | None:
        """The `ask_question` action: ours first (matched as HA does), else HA's flow."""
        sentence = await self.async_realtime_ask_question(question, question_media_id)
        if sentence is None:
            return await super().async_internal_ask_question(
                question, question_media_id, preannounce, preannounce_media_id, answers
            )
        if not answers:
            return AssistSatelliteAnswer(id=None, sentence=sentence)
        # --- 3. Home Assistant's matcher
        return self._question_response_to_answer(sentence, answers)
