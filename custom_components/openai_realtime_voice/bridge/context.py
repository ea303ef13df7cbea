"""What the parts of the speech bridge need from one another, as narrow typed interfaces.

The bridge (`core.SpeechBridge`) is a router: it owns the device's connection, its tasks and
its phase, and hands each turn to an `Engine` (the Realtime session or the Assist pipeline).
Engines, the `Speaker` and the `Actions` only see the router through `BridgeContext`, so
none of them imports the router. Four protocols remain: the router (`BridgeContext`), the
Realtime session as the actions use it (`SessionAccess`), what the session tells the actions
(`SessionHooks`) and an engine (`Engine`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, Coroutine
from enum import StrEnum
from typing import Any, Protocol

from homeassistant.core import Context, HomeAssistant

from ..endpoint import DeviceConnection, DeviceState
from ..home import DeviceHome
from ..models import OpenAIRealtimeConfigEntry
from ..realtime import RealtimeClient, RealtimeError, RealtimeResponse, SessionConfig
from ..xiaozhi import ListenMode


class BridgePath(StrEnum):
    """Which engine answers the device."""

    REALTIME = "realtime"
    ASSIST_PIPELINE = "assist_pipeline"


class BridgePhase(StrEnum):
    """What the conversation is doing (mirrors the assist satellite's states)."""

    IDLE = "idle"
    LISTENING = "listening"
    PROCESSING = "processing"
    RESPONDING = "responding"


class BridgeContext(Protocol):
    """The router's services for the parts it owns (engines, speaker, actions)."""

    @property
    def hass(self) -> HomeAssistant:
        """Home Assistant."""

    @property
    def entry(self) -> OpenAIRealtimeConfigEntry:
        """The service entry the device is paired with."""

    @property
    def home(self) -> DeviceHome:
        """The device's home in that entry (its state, budget and satellite)."""

    @property
    def connection(self) -> DeviceConnection:
        """The device's live connection."""

    @property
    def device(self) -> DeviceState:
        """What Home Assistant knows about the device."""

    @property
    def path(self) -> BridgePath:
        """Which engine answers the device now."""

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Run a task owned by the bridge (cancelled when it stops)."""

    def fail(self, kind: str, message: str, *, exc_info: bool = False, alert: bool = False) -> None:
        """Count a failure, log it once per kind, and optionally alert on the device."""

    def set_phase(self, phase: BridgePhase) -> None:
        """Move the conversation to `phase` (the satellite follows)."""

    def note_activity(self) -> None:
        """Something happened in the conversation: the listening timeout starts again."""

    def options(self) -> dict[str, Any]:
        """The entry's settings with this device's profile applied."""

    def user_context(self, options: dict[str, Any] | None = None) -> Context:
        """The context of the device's configured user, for each turn."""

    def device_id(self) -> str | None:
        """The device registry id of this device, if registered."""

    def busy(self) -> bool:
        """Whether the conversation is mid-turn (the user speaks or a reply is on its way)."""

    async def until_ready(self) -> None:
        """Wait for the device's hello and the codec; raise if the bridge can never play."""

    async def async_interrupt(self) -> None:
        """Barge-in: cut the reply now and tell the service what the user heard."""

    async def end_speech(self) -> None:
        """`tts stop`: the device listens again (or idles in manual mode)."""

    async def async_play(self, pcm: AsyncIterable[bytes], text: str | None = None) -> None:
        """Play 24 kHz PCM and wait until it was heard."""

    @property
    def realtime(self) -> SessionAccess:
        """The Realtime session (the Realtime engine), as the automation actions use it."""

    def use_pipeline(self, error: RealtimeError) -> None:
        """Realtime cannot serve: the Assist pipeline answers until it is back."""

    async def use_realtime(self) -> None:
        """A Realtime session is open again: it answers from now on."""


class SessionAccess(Protocol):
    """The Realtime session as the automation actions use it (`RealtimeEngine` is one)."""

    @property
    def config(self) -> SessionConfig | None:
        """The session's own configuration."""

    def require_session(self) -> tuple[RealtimeClient, SessionConfig]:
        """The open session's client and configuration; RealtimeError if there is none."""

    async def async_wait_session(self) -> None:
        """Wait while the session opens; return at once when it is open or Realtime is down."""

    def for_mode(self, config: SessionConfig) -> SessionConfig:
        """`config` for the device's listening mode."""

    async def apply_session(self) -> None:
        """Send the session's own configuration again, if a session is open."""


class SessionHooks(Protocol):
    """What the automation actions follow in the Realtime session (`Actions` is one)."""

    @property
    def asking(self) -> bool:
        """Whether a question waits for the user's answer (no reply is created for it)."""

    def on_reply_played(self, response: RealtimeResponse) -> None:
        """A reply has been played (or cut, or failed): whoever waited for it may go on."""

    def on_reply_done(self, response: RealtimeResponse) -> None:
        """The service finished a response."""

    def on_session_end(self, reason: str) -> None:
        """The session is gone: nothing waits for its answers any more."""


class Engine(Protocol):
    """One way to answer the device's turns; the router sends each turn to the active one."""

    @property
    def path(self) -> BridgePath:
        """Which path this engine is."""

    def start_turn(self, mode: ListenMode) -> None:
        """The device listens (`listen start`)."""

    def audio(self, payload: bytes) -> None:
        """One Opus packet of the user's speech."""

    def end_turn(self) -> None:
        """The device stopped listening (`listen stop`)."""

    def text(self, request: str) -> None:
        """A typed request (`listen detect` text without the wake word)."""

    async def async_stop(self) -> None:
        """Stop serving: cancel this engine's work."""


__all__ = [
    "BridgeContext",
    "BridgePath",
    "BridgePhase",
    "Engine",
    "SessionAccess",
    "SessionHooks",
]
