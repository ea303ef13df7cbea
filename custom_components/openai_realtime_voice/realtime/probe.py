"""Check a Realtime endpoint and the user's settings against the service, then close.

The probe opens a session, sends one `session.update` with the settings to check (a default
configuration when none is given) and waits for `session.updated`; with `check_model` it then
asks for the smallest response there is. A refusal raises the typed error it implies: the
beta shape (`RealtimeProtocolError`), a voice, transcription model or tool schema
(`RealtimeSettingRefused` naming it), auth, quota.

Why a response for the model: the service opens a session for any model name and only fails
its first response (`model_not_found` in a failed `response.done`; openai-realtime-console#561,
realtime-protocol.md §3.1), so nothing short of a response finds a wrong model. The response
is out of band (`conversation: "none"`), has no input items and no tools, answers in text and
may produce one token (`max_output_tokens: 1`): a few input tokens of instructions and one
output token, a few millionths of a dollar.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, Final

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from .config import SessionConfig
from .connection import async_open, closed_error
from .endpoint import Dialect, RealtimeEndpoint
from .errors import RealtimeConnectionError, error_event_exception
from .events import ga_event_type
from .response import failure

__all__ = ["async_probe", "model_check"]

_LOGGER = logging.getLogger(__name__)

_UPDATE_ID: Final = "evt_probe"
_RESPONSE_ID: Final = "evt_probe_model"


def model_check(dialect: Dialect) -> dict[str, Any]:
    """The cheapest response.create that makes the service use the model."""
    response: dict[str, Any] = {
        "conversation": "none",
        "input": [],
        "instructions": "Say OK.",
        "tools": [],
        "tool_choice": "none",
        "metadata": {"client_event_id": _RESPONSE_ID},
    }
    if dialect is Dialect.BETA:
        response |= {"modalities": ["text"], "max_response_output_tokens": 1}
    else:
        response |= {"output_modalities": ["text"], "max_output_tokens": 1}
    return {"type": "response.create", "event_id": _RESPONSE_ID, "response": response}


async def async_probe(
    endpoint: RealtimeEndpoint,
    config: SessionConfig | None = None,
    *,
    timeout: float = 10.0,  # noqa: ASYNC109 - API agreed with the config flow
    check_model: bool = False,
) -> None:
    """Open a session, apply `config` (default settings if None), optionally check the model."""
    waiting = "session.created"
    try:
        async with asyncio.timeout(timeout):
            ws = await async_open(endpoint, open_timeout=timeout, ping_interval=None)
            try:
                while True:
                    event = await _probe_event(ws)
                    kind = event.get("type")
                    if isinstance(kind, str):
                        kind = ga_event_type(kind)  # the beta transcription_session.updated too
                    if kind == "error":
                        raise error_event_exception(event, endpoint.api_key)
                    if kind == waiting == "session.created":
                        waiting = "session.updated"
                        session = (config or SessionConfig()).render(endpoint.dialect)
                        await _send(
                            ws,
                            {"type": "session.update", "event_id": _UPDATE_ID, "session": session},
                        )
                    elif kind == waiting == "session.updated" and check_model:
                        waiting = "response.done"
                        await _send(ws, model_check(endpoint.dialect))
                    elif kind == waiting == "response.done":
                        _check_response(event)
                        return
                    elif kind == waiting:
                        return
                    else:
                        _LOGGER.debug("Ignoring %s while waiting for %s", kind, waiting)
            finally:
                await ws.close()
    except TimeoutError:
        raise RealtimeConnectionError(f"no {waiting} within {timeout:g} s") from None


def _check_response(event: dict[str, Any]) -> None:
    """A failed check response raises what it failed for (`model_not_found`, quota, ...)."""
    response = event.get("response")
    response = response if isinstance(response, dict) else {}
    if response.get("status") == "failed":
        details = response.get("status_details")
        raise failure(details if isinstance(details, dict) else None)


async def _send(ws: ClientConnection, event: dict[str, Any]) -> None:
    try:
        await ws.send(json.dumps(event))
    except ConnectionClosed as err:
        raise closed_error(err) from None


async def _probe_event(ws: ClientConnection) -> dict[str, Any]:
    try:
        raw = await ws.recv()
    except ConnectionClosed as err:
        raise closed_error(err) from None
    try:
        event = json.loads(raw)
    except ValueError:
        raise RealtimeConnectionError("server sent invalid JSON") from None
    if not isinstance(event, dict):
        raise RealtimeConnectionError("server sent a non-object event")
    return event
