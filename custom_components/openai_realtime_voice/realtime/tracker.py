"""What the conversation holds across sessions: running responses, the user's turn, the history."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Final

from .response import RealtimeResponse

__all__ = ["UNTRANSCRIBED", "Cut", "HistoryEntry", "ResponseTracker"]

UNTRANSCRIBED: Final = "(spoken, not transcribed)"
"""The text of a spoken user turn that has no transcript (yet)."""


@dataclass(slots=True)
class HistoryEntry:
    """One replayable message; `key` is its item id (user audio) or response id (a reply)."""

    role: str
    text: str
    key: str | None = None

    @property
    def replayed_text(self) -> str:
        """What a new session is given: a spoken turn without transcript as UNTRANSCRIBED.

        Replaying the replies without the turns they answered would give the model a history
        of answers to nothing; the marker keeps the turns in place (with transcription off,
        every spoken turn).
        """
        return self.text or (UNTRANSCRIBED if self.role == "user" else "")


@dataclass(frozen=True, slots=True)
class Cut:
    """What a barge-in asks of the service: cancel `cancel`, truncate `item_id` at `end_ms`."""

    cancel: tuple[str, ...]
    item_id: str | None = None
    end_ms: int = 0


class ResponseTracker:
    """Responses in progress, the open user turn and the text history replayed after reconnects.

    Plain state, no I/O: the protocol tells it what the service reported and asks it what a
    barge-in must cancel.
    """

    def __init__(self, max_history_items: int = 50) -> None:
        """Start with nothing running and an empty history."""
        self.history: deque[HistoryEntry] = deque(maxlen=max_history_items)
        self.audio_produced = False  # the session's voice is fixed once it produced audio
        self._running: dict[str, RealtimeResponse] = {}
        self._last: RealtimeResponse | None = None
        self._cut: set[str] = set()
        self._server_cancelled: set[str] = set()
        self._turn_open = False  # the user spoke and the reply to it is not done yet
        self._turn_reply: str | None = None  # "next": speech stopped, its reply not created yet

    @property
    def active(self) -> RealtimeResponse | None:
        """The latest response in progress, if any."""
        return next(reversed(self._running.values()), None)

    @property
    def idle(self) -> bool:
        """Whether no response is in progress."""
        return not self._running

    @property
    def turn_quiet(self) -> bool:
        """Whether no user turn is open (the user is not speaking and no reply to them is due)."""
        return not self._turn_open

    @property
    def reply_due(self) -> bool:
        """Whether server VAD is about to create the reply to the user's finished turn."""
        return self._turn_reply == "next"

    def get(self, response_id: str) -> RealtimeResponse | None:
        """A response in progress by id."""
        return self._running.get(response_id)

    def new_session(self) -> None:
        """A new session opened: no audio yet, nothing cancelled, no turn open."""
        self.audio_produced = False
        self._server_cancelled.clear()
        self._turn_reply = None
        self._turn_open = False

    # -- the user's turn ---------------------------------------------------------------------

    def speech_started(self, server_interrupts: bool) -> None:
        """The user started speaking; server VAD cancels default-conversation replies itself."""
        self._turn_open = True
        self._turn_reply = None
        if server_interrupts:
            # Server VAD cancels only responses in the default conversation (SDK docstring
            # of ServerVad.interrupt_response); out-of-band ones are ours to cancel.
            self._server_cancelled.update(r.id for r in self._running.values() if not r.out_of_band)

    def manual_audio(self) -> None:
        """Manual turns (no turn detection, push-to-talk): the user's audio opens the turn, so
        a renewal waits for it instead of cutting the utterance between two sessions."""
        self._turn_open = True

    def manual_turn_ended(self) -> None:
        """The manual turn was committed (its audio is an item now) or cleared."""
        self._turn_open = False

    def speech_stopped(self, reply_follows: bool) -> None:
        """The user stopped; the turn ends now, or with the reply server VAD creates."""
        if reply_follows:
            self._turn_reply = "next"
        else:
            self._turn_open = False

    def committed(self, item_id: str) -> None:
        """The user's audio became an item: it takes its place in the history now."""
        self.history.append(HistoryEntry("user", "", item_id))

    def transcribed(self, item_id: str, text: str) -> None:
        """A user audio item's transcript (it may come after the reply)."""
        if not text:
            return
        entry = next((e for e in self.history if e.key == item_id and e.role == "user"), None)
        if entry is not None:
            entry.text = text
        else:
            self.history.append(HistoryEntry("user", text, item_id))

    def forget_item(self, key: str) -> None:
        """A user item (by item id) or a reply (by response id) left the conversation."""
        for entry in [entry for entry in self.history if entry.key == key]:
            self.history.remove(entry)

    def add_message(self, role: str, text: str) -> None:
        """A text message the client added."""
        self.history.append(HistoryEntry(role, text))

    # -- responses ---------------------------------------------------------------------------

    def started(self, response: RealtimeResponse) -> list[RealtimeResponse]:
        """Track a new response; the ones it supersedes, ended as failed."""
        superseded: list[RealtimeResponse] = []
        if not response.out_of_band:
            # One response writes to the default conversation at a time: one still open
            # here was never finished by the server.
            for old in [r for r in self._running.values() if not r.out_of_band]:
                self.end(old)
                superseded.append(old)
        self._running[response.id] = response
        self._last = response
        if self._turn_reply == "next" and not response.out_of_band:
            self._turn_reply = response.id
        return superseded

    def finished(self, response: RealtimeResponse) -> None:
        """The service finished a response: a completed, uncut reply joins the history."""
        self._forget(response)
        cut = response.id in self._cut
        self._cut.discard(response.id)
        if (
            response.status == "completed"
            and not response.out_of_band
            and not cut
            and response.reply
        ):
            self.history.append(HistoryEntry("assistant", response.reply, response.id))

    def end(self, response: RealtimeResponse) -> None:
        """Fail a response the service will not finish (superseded, connection lost)."""
        response.finish("failed")
        self._forget(response)
        self._cut.discard(response.id)

    def end_all(self) -> list[RealtimeResponse]:
        """End every running response as failed; the ones ended."""
        ended = list(self._running.values())
        for response in ended:
            self.end(response)
        return ended

    def _forget(self, response: RealtimeResponse) -> None:
        self._running.pop(response.id, None)
        self._server_cancelled.discard(response.id)
        if response.id == self._turn_reply:
            self._turn_reply = None
            self._turn_open = False  # the reply of the user's turn is done

    def cut(self, played_ms: int, response: RealtimeResponse | None = None) -> Cut | None:
        """Barge-in: mark every running response and the playing one cancelled.

        `response` is the reply playing (default: the latest one) and `played_ms` how much of
        it was heard. Every running response is cancelled once, unless server VAD already
        does it; the playing reply's audio item is truncated at min(played, received) ms
        (not at 0, and never an out-of-band reply, which is not in the conversation). A reply
        cut this way is not replayed after a reconnect. None when nothing played.
        """
        playing = response or self.active or self._last
        if playing is None:
            return None
        cancel: list[str] = []
        for running in list(self._running.values()):
            running.cancelled = True
            self._cut.add(running.id)
            if running.id not in self._server_cancelled:
                self._server_cancelled.add(running.id)  # one response.cancel per response
                cancel.append(running.id)
        playing.cancelled = True
        if playing.done:
            for entry in [e for e in self.history if e.key == playing.id]:
                self.history.remove(entry)
        else:
            self._cut.add(playing.id)
        end_ms = min(max(played_ms, 0), playing.audio_ms)
        if playing.out_of_band or playing.audio_item_id is None or end_ms <= 0:
            return Cut(tuple(cancel))
        return Cut(tuple(cancel), playing.audio_item_id, end_ms)
