"""Property tests: no server frame makes the Realtime client raise anything but its own errors.

The client's receive path is `_decode` (raw frame -> event dict or None) then `_dispatch`
(event dict -> handler); both are fed arbitrary input here, including event sequences
shaped like real responses so the per-response handlers see matching ids.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from hypothesis import HealthCheck, given, settings, strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.frames import Close

from custom_components.openai_realtime.realtime import (
    Closed,
    RealtimeClient,
    RealtimeEndpoint,
    RealtimeError,
    SessionConfig,
)
from custom_components.openai_realtime.realtime.connection import (
    closed_error,
    error_event_exception,
)
from custom_components.openai_realtime.realtime.events import BETA_ALIASES, ServerError

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
API_KEY = "sk-fuzz-0123456789SECRET"

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
EVENT_TYPES = [
    "error",
    "session.created",
    "session.updated",
    "input_audio_buffer.speech_started",
    "input_audio_buffer.speech_stopped",
    "input_audio_buffer.committed",
    "conversation.item.input_audio_transcription.delta",
    "conversation.item.input_audio_transcription.completed",
    "response.created",
    "response.output_audio.delta",
    "response.output_text.delta",
    "response.output_audio_transcript.delta",
    "response.output_item.done",
    "response.done",
    "rate_limits.updated",
    *BETA_ALIASES,
]
response_ids = st.sampled_from(["resp_1", "resp_2"]) | json_values
events = st.fixed_dictionaries(
    {"type": st.sampled_from(EVENT_TYPES)},
    optional={
        "response_id": response_ids,
        "response": st.fixed_dictionaries(
            {},
            optional={
                "id": response_ids,
                "status": st.sampled_from(["completed", "cancelled", "failed"]) | json_values,
                "status_details": json_values,
                "usage": json_values,
                "metadata": json_values,
            },
        )
        | json_values,
        "item": st.fixed_dictionaries(
            {},
            optional={
                "type": st.just("function_call") | json_values,
                "status": st.just("completed") | json_values,
                "name": json_values,
                "call_id": json_values,
                "arguments": json_values,
                "id": json_values,
            },
        )
        | json_values,
        "error": st.fixed_dictionaries(
            {},
            optional={
                "code": st.sampled_from(
                    ["session_expired", "invalid_api_key", "insufficient_quota", "server_error"]
                )
                | json_values,
                "message": json_values,
                "event_id": json_values,
                "type": json_values,
            },
        )
        | json_values,
        "delta": st.sampled_from(["AAAA", "not base64!", ""]) | json_values,
        "item_id": json_values,
        "transcript": json_values,
        "audio_start_ms": json_values,
        "audio_end_ms": json_values,
    },
)


def new_client() -> RealtimeClient:
    """A client that was never connected: dispatch needs no socket."""
    return RealtimeClient(RealtimeEndpoint(api_key=API_KEY, model="gpt-realtime"), SessionConfig())


@FUZZ
@given(st.text() | st.binary())
def test_decode_returns_an_event_or_none(raw: str | bytes) -> None:
    """Any frame decodes to an event with a string type, or is dropped."""
    event = new_client()._decode(raw)
    assert event is None or isinstance(event["type"], str)


@FUZZ
@given(json_values)
def test_decode_of_any_json(value: Any) -> None:
    """Valid JSON of any shape decodes only when it is an object with a string type."""
    event = new_client()._decode(json.dumps(value))
    expected = isinstance(value, dict) and isinstance(value.get("type"), str)
    assert (event is not None) == expected


@FUZZ
@given(st.lists(events, max_size=12))
async def test_dispatch_raises_only_realtime_errors(sequence: list[dict[str, Any]]) -> None:
    """Event sequences of any shape: handled or ignored, the client stays consistent."""
    client = new_client()
    subscription = client.events()
    reader = asyncio.ensure_future(anext(subscription))
    await asyncio.sleep(0)  # subscribe before dispatching
    try:
        for event in sequence:
            with contextlib.suppress(RealtimeError):
                await client._dispatch(client._decode(json.dumps(event)) or event)
            response = client.active_response
            assert response is None or not response.done
    finally:
        await client.close()
    first = await asyncio.wait_for(reader, 1)
    assert first is not None
    remaining = [event async for event in subscription]
    assert isinstance((remaining or [first])[-1], Closed)
    assert API_KEY not in repr([first, *remaining])


@FUZZ
@given(json_values)
def test_error_events_map_to_typed_errors(error: Any) -> None:
    """Setup-time error events of any shape become a typed error without the key."""
    if isinstance(error, dict):
        error = {**error, "message": f"{error.get('message')} {API_KEY}"}
    raised = error_event_exception({"type": "error", "error": error}, API_KEY)
    assert isinstance(raised, RealtimeError)
    assert API_KEY not in str(raised)
    parsed = ServerError.from_event({"type": "error", "error": error})
    assert parsed.code is None or isinstance(parsed.code, str)


@FUZZ
@given(st.integers(1000, 4999), st.text(max_size=40))
def test_close_frames_map_to_typed_errors(code: int, reason: str) -> None:
    """Any close code and reason the server sends becomes one of the package's errors."""
    error = closed_error(ConnectionClosed(Close(code, reason), None))
    assert isinstance(error, RealtimeError)
