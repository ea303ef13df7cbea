"""The Realtime client: a conversation's commands over a self-healing WebSocket session.

`RealtimeClient` is what the integration uses. Its state machine is the sans-I/O
`RealtimeProtocol` (`protocol`); the WebSocket, reconnects and renewal are its
`RealtimeLink` (`link`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
import contextlib
import logging
import time
from typing import Any

from .config import FunctionTool, Modality, SessionConfig
from .endpoint import RealtimeEndpoint
from .errors import RealtimeError, RealtimeRequestError
from .events import RequestRefused, SessionEvent
from .link import RealtimeLink
from .options import ClientOptions
from .protocol import RealtimeProtocol
from .response import BYTES_PER_MS, RealtimeResponse

__all__ = ["ClientOptions", "RealtimeClient"]

_LOGGER = logging.getLogger(__name__)


class RealtimeClient:
    """A Realtime session that stays usable across drops, expiry and renewal until `close()`."""

    def __init__(
        self,
        endpoint: RealtimeEndpoint,
        config: SessionConfig,
        *,
        options: ClientOptions | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        """Prepare a client; `connect()` opens the session."""
        self.endpoint = endpoint
        self.options = options or ClientOptions()
        self.protocol = RealtimeProtocol(
            config,
            dialect=endpoint.dialect,
            api_key=endpoint.api_key,
            max_history_items=self.options.max_history_items,
        )
        self.link = RealtimeLink(endpoint, self.protocol, self.options, clock=clock, sleep=sleep)
        self._sleep = sleep
        self._create_lock = asyncio.Lock()
        self._update_lock = asyncio.Lock()

    @property
    def config(self) -> SessionConfig:
        """The configuration the caller asked for."""
        return self.protocol.config

    @property
    def connected(self) -> bool:
        """Whether a session is open and configured."""
        return self.link.connected

    @property
    def proven(self) -> bool:
        """Whether the current session answered a turn or lived `options.proven_after` s.

        Until one has, sessions that end are failures to back off from, not ordinary drops.
        """
        return self.link.proven

    @property
    def active_response(self) -> RealtimeResponse | None:
        """The latest response in progress, if any."""
        return self.protocol.tracker.active

    @property
    def session_started(self) -> float:
        """When the current session opened (client clock); its input audio counts from here."""
        return self.link.session_started

    @property
    def session_limit(self) -> float:
        """Seconds a session may live: the service's `expires_at` when it gave one."""
        return self.link.session_limit

    async def connect(self) -> None:
        """Open the session; ready after session.created -> session.update -> session.updated."""
        await self.link.connect()

    async def close(self) -> None:
        """Close the session and cancel every task the client started (idempotent)."""
        await self.link.close()

    def events(self) -> AsyncIterator[SessionEvent]:
        """Yield session events (VAD, transcripts, responses, errors) until the client stops."""
        return self.link.events()

    # -- public operations -------------------------------------------------------------------

    async def update_session(self, config: SessionConfig) -> None:
        """Send only what changed and wait for session.updated; voice waits for a new session.

        Updates are serialised: each waits for its own session.updated before the next is sent.
        """
        timeout = self.options.response_timeout
        async with self._update_lock:
            await self.link.wait_ready()
            try:
                answer = await self.link.request(self.protocol.update_session(config), timeout)
            except TimeoutError:
                raise RealtimeRequestError(f"no session.updated within {timeout:g} s") from None
            if isinstance(answer, RequestRefused):
                raise answer.error

    async def append_audio(self, pcm: bytes) -> None:
        """Stream PCM16 mono 24 kHz user audio; dropped while no session is open."""
        if not self.link.connected or not self.protocol.append_audio(pcm):
            _LOGGER.debug("Dropping %d ms of audio: not connected", len(pcm) // BYTES_PER_MS)
            return
        with contextlib.suppress(RealtimeError):
            await self.link.flush()

    async def commit_audio(self) -> None:
        """End the user's turn in manual mode (no turn detection)."""
        await self.link.command(self.protocol.commit_audio)

    async def clear_audio(self) -> None:
        """Drop uncommitted user audio."""
        await self.link.command(self.protocol.clear_audio)

    async def delete_item(self, item_id: str, *, response_id: str | None = None) -> None:
        """Remove a user item or an item of response `response_id` from the conversation."""
        await self.link.command(lambda: self.protocol.delete_item(item_id, response_id=response_id))

    async def add_user_text(self, text: str) -> None:
        """Add a user text message (a new user turn; replayed after reconnects)."""
        await self.link.command(lambda: self.protocol.add_user_text(text))

    async def add_assistant_text(self, text: str) -> None:
        """Add an assistant text message, e.g. to restore a conversation's history."""
        await self.link.command(lambda: self.protocol.add_assistant_text(text))

    async def add_user_image(self, image_url: str, *, detail: str = "auto") -> None:
        """Add a picture (a `data:image/jpeg;base64,...` URL) as a user `input_image` item.

        Pictures are not replayed after a reconnect: they answered one question.
        """
        await self.link.command(lambda: self.protocol.add_user_image(image_url, detail=detail))

    async def add_function_call(self, call_id: str, name: str, arguments: str) -> None:
        """Add a function call the model made earlier, e.g. to restore a conversation's history."""
        await self.link.command(lambda: self.protocol.add_function_call(call_id, name, arguments))

    async def add_function_output(self, call_id: str, output: str) -> None:
        """Return one function call's result to the model (no response is created)."""
        await self.link.command(lambda: self.protocol.add_function_output(call_id, output))

    async def submit_tool_outputs(self, outputs: Mapping[str, str]) -> RealtimeResponse:
        """Send every output, then a single response.create (the caller bounds the rounds)."""
        for call_id, output in outputs.items():
            await self.add_function_output(call_id, output)
        return await self.create_response()

    async def create_response(
        self,
        *,
        instructions: str | None = None,
        modality: Modality | None = None,
        out_of_band: bool = False,
        metadata: Mapping[str, str] | None = None,
        tools: Sequence[FunctionTool] | None = None,
        tool_choice: str | None = None,
        input_items: Sequence[dict[str, Any]] | None = None,
    ) -> RealtimeResponse:
        """Ask for a response once the previous one is done; return it when created.

        Overrides apply to this response only; `out_of_band` keeps it out of the conversation,
        `input_items` replaces the conversation as its context (`[]`: no context).
        A request the service is busy or rate limited for is sent again, a bounded number of
        times: at once when the response in the way is done, else after a backoff.
        """
        retries = self.options.retry_policy(self.options.create_retries, self._sleep)
        async with self._create_lock:
            while True:
                await self._wait_idle()
                await self.link.wait_ready()
                event_id = self.protocol.create_response(
                    instructions=instructions,
                    modality=modality,
                    out_of_band=out_of_band,
                    metadata=metadata,
                    tools=tools,
                    tool_choice=tool_choice,
                    input_items=input_items,
                )
                try:
                    answer = await self.link.request(event_id, self.options.response_timeout)
                except TimeoutError:
                    raise RealtimeRequestError(
                        f"no response.created within {self.options.response_timeout:g} s"
                    ) from None
                if isinstance(answer, RealtimeResponse):
                    return answer
                assert isinstance(answer, RequestRefused)
                if not answer.retry or (delay := retries.next_delay()) is None:
                    raise answer.error
                if answer.busy and not self.link.idle.is_set():
                    _LOGGER.debug("A response is already active; waiting for it")
                    continue  # resent once that response is done
                _LOGGER.debug("response.create refused (%s); retry in %.2f s", answer.error, delay)
                await self._sleep(delay)

    async def _wait_idle(self) -> None:
        """Wait for the response in progress to end, but not for ever."""
        timeout = self.options.busy_timeout
        try:
            async with asyncio.timeout(timeout):
                await self.link.idle.wait()
        except TimeoutError:
            raise RealtimeRequestError(
                f"a response is still in progress after {timeout:g} s"
            ) from None

    async def cancel(self, played_ms: int, *, response: RealtimeResponse | None = None) -> None:
        """Barge-in: stop every response in progress and cut the reply the user was hearing.

        `response` is the reply playing (default: the latest one) and `played_ms` how much of
        it was heard; see `RealtimeProtocol.cancel`. Nothing is sent while no session is open
        (the responses of a lost session are over anyway).
        """
        self.protocol.cancel(played_ms, response)
        if not self.link.connected:
            self.protocol.data_to_send()  # stale for the next session
            return
        with contextlib.suppress(RealtimeError):
            await self.link.flush()
