"""Firmware rules the simulator follows: the state machine, the main task, the boot retries.

Each piece names the xiaozhi-esp32 v2.4.2 function it reproduces (`main/application.cc`,
`main/device_state_machine.cc`); the simulator (`simulator.device`) applies them on the wire.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable
from enum import StrEnum
import logging
from typing import Final

_LOGGER = logging.getLogger(__name__)

BOOT_RETRY_DELAY: Final = 10.0
"""`CheckNewVersion`: seconds before the first retry of a failed boot check (then doubled)."""

MAX_BOOT_FAILURES: Final = 10
"""`CheckNewVersion`: after this many failed boot checks in a row the board stops checking."""


class DeviceState(StrEnum):
    """The firmware's device states that matter on the wire."""

    IDLE = "idle"
    ACTIVATING = "activating"
    CONNECTING = "connecting"
    LISTENING = "listening"
    SPEAKING = "speaking"


_VALID_TRANSITIONS: Final[dict[DeviceState, frozenset[DeviceState]]] = {
    DeviceState.IDLE: frozenset(
        {
            DeviceState.CONNECTING,
            DeviceState.LISTENING,
            DeviceState.SPEAKING,
            DeviceState.ACTIVATING,
        }
    ),
    DeviceState.ACTIVATING: frozenset({DeviceState.IDLE}),
    DeviceState.CONNECTING: frozenset({DeviceState.IDLE, DeviceState.LISTENING}),
    DeviceState.LISTENING: frozenset({DeviceState.SPEAKING, DeviceState.IDLE}),
    DeviceState.SPEAKING: frozenset({DeviceState.LISTENING, DeviceState.IDLE}),
}


def is_valid_transition(old: DeviceState, new: DeviceState) -> bool:
    """`DeviceStateMachine::IsValidTransition` for the states the simulator plays.

    Notably Connecting goes only to Idle or Listening (a `tts start` then is refused), while
    Idle may go straight to Speaking.
    """
    return old is new or new in _VALID_TRANSITIONS[old]


type Job = Callable[[], Awaitable[None]]


class MainTask:
    """The firmware's main task (`Application::Run`) as far as the wire can tell.

    Messages the WebSocket task hands on with `Schedule()` (`tts`, `stt`, `llm`, `system`,
    `custom`, MCP `tools/call` via `McpServer::DoToolCall`) run one after another on the main
    task. While the main task is held (`ContinueWakeWordInvoke` waits in `OpenAudioChannel`
    for the server hello; a tool such as a photo upload runs), they wait in order. Jobs run at
    once when the task is free, so a free board reacts to each message as it arrives.
    """

    def __init__(self) -> None:
        """An idle main task."""
        self._jobs: deque[Job] = deque()
        self._holds = 0
        self._draining = False

    @property
    def held(self) -> bool:
        """Whether something blocks the main task now."""
        return self._holds > 0

    @property
    def waiting(self) -> int:
        """Scheduled jobs that have not run yet."""
        return len(self._jobs)

    async def run(self, job: Job) -> None:
        """`Schedule(job)`: run it now if the task is free, else after what blocks it."""
        if self._holds or self._draining or self._jobs:
            self._jobs.append(job)
            return
        await job()

    def hold(self) -> None:
        """Something long starts on the main task; scheduled jobs wait."""
        self._holds += 1

    async def release(self) -> None:
        """The long call returned: run the jobs that waited, in order."""
        self._holds -= 1
        if self._holds or self._draining:
            return
        self._draining = True
        try:
            while self._jobs and not self._holds:
                job = self._jobs.popleft()
                try:
                    await job()
                except Exception:
                    _LOGGER.exception("Scheduled job failed")
        finally:
            self._draining = False

    def clear(self) -> None:
        """Forget the waiting jobs (the simulator is closed)."""
        self._jobs.clear()


def boot_retry_delays(first: float = BOOT_RETRY_DELAY) -> list[float]:
    """`CheckNewVersion`: the waits after each failed boot check (10, 20, 40 ... s)."""
    return [first * 2**index for index in range(MAX_BOOT_FAILURES - 1)]


def version_newer(candidate: str, current: str) -> bool:
    """Numeric dot-separated version comparison, as the firmware's OTA check does."""

    def parts(version: str) -> list[int]:
        return [int(p) if p.isdigit() else 0 for p in version.split(".")]

    return parts(candidate) > parts(current)
