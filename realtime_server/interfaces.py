"""What the parts of the test server use of one another (`RealtimeServer` on top).

`Service` is the server as a connection sees it (its switches, its ids, its send), `Connection`
is one connection as the responses, refusals and scenarios see it, and `Answers` is a scenario
as a connection sees it. `server.RealtimeServer`, `session.Session` and `scenario.Scenario`
are the ones that fill them; the parts import these interfaces, never the module above them.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, Protocol

from websockets.asyncio.server import ServerConnection

from simulator.changes import Changes

from .discipline import ServiceDiscipline
from .scripts import Running, ScriptedResponse


class Answers(Protocol):
    """A scenario, as a connection asks it (`scenario.Scenario`)."""

    async def hear_speech(self, session: Connection, audio: bytes) -> str | None:
        """The transcript of a committed input buffer."""

    async def respond(
        self, session: Connection, params: dict[str, Any] | None = None
    ) -> ScriptedResponse:
        """The answer to the conversation so far."""


class Service(Protocol):
    """The server, as its connections and their responses see it (`server.RealtimeServer`)."""

    model: str
    beta: bool
    session_lifetime: float
    discipline: ServiceDiscipline
    user_transcript: str | None
    transcription_fails: bool
    commit_transcript_delay: float | None
    transcript_after_response: bool
    transcript_delay: float
    response_delay: float
    known_models: set[str] | None
    transcription_models: set[str] | None
    reject_responses: deque[tuple[str, str]]
    responses: deque[ScriptedResponse]
    response_params: list[dict[str, Any]]
    responses_done: int
    violations: list[str]
    changes: Changes
    """Told after each finished response (for event-driven waits in tests)."""

    @property
    def scenario(self) -> Answers | None:
        """The scenario answering when nothing is scripted."""

    def new_id(self, prefix: str) -> str:
        """A fresh id such as `item_7`, unique across the server's connections."""

    async def send(
        self, event: dict[str, Any], *, ws: ServerConnection | None = None, validate: bool = True
    ) -> None:
        """Send a server event to a connection."""


class Connection(Protocol):
    """One connection, as its responses, refusals and scenario see it (`session.Session`)."""

    items: dict[str, dict[str, Any]]
    audio_ms: dict[str, int]
    last_item_id: str | None
    running: dict[str, Running]
    pending_transcripts: list[dict[str, Any]]
    out_of_band_items: set[str]
    tails: set[asyncio.Task[None]]

    @property
    def server(self) -> Service:
        """The server of this connection."""

    @property
    def session(self) -> dict[str, Any]:
        """The session's configuration."""

    @property
    def output_modalities(self) -> list[str]:
        """The session's output modalities."""

    async def send(self, event: dict[str, Any]) -> None:
        """Send a server event on this connection."""

    def add_item(self, item: dict[str, Any]) -> str | None:
        """Add an item to the conversation; the previous item's id."""

    async def send_later(self, events: list[dict[str, Any]], delay: float) -> None:
        """Send events after `delay` seconds."""
