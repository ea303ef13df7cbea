"""Property tests: no server frame makes the Realtime client raise anything but its own errors.

The client's receive path is `wire.decode` (raw frame -> event dict or None) then the
protocol core's `receive` (frame -> typed events); both are fed arbitrary input here,
including event sequences shaped like real responses so the per-response handlers see
matching ids.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from hypothesis import HealthCheck, given, settings, strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.frames import Close

from custom_components.openai_realtime_voice.realtime import (
    RealtimeClient,
    RealtimeEndpoint,
    RealtimeError,
    RealtimeProtocol,
    SessionConfig,
)
from custom_components.openai_realtime_voice.realtime.connection import closed_error
from custom_components.openai_realtime_voice.realtime.errors import error_event_exception
from custom_components.openai_realtime_voice.realtime.events import (
    BETA_ALIASES,
    ResponseDone,
    ServerError,
    SessionFailed,
)
from custom_components.openai_realtime_voice.realtime.protocol import Phase
from custom_components.openai_realtime_voice.realtime.wire import decode

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


def open_protocol() -> RealtimeProtocol:
    """A protocol core whose session is open (setup exchange fed), with no socket anywhere."""
    protocol = RealtimeProtocol(SessionConfig(), api_key=API_KEY)
    protocol.start_session(replay=False)
    protocol.receive(json.dumps({"type": "session.created", "session": {}}))
    protocol.receive(json.dumps({"type": "session.updated", "session": {}}))
    assert protocol.phase is Phase.OPEN
    protocol.data_to_send()
    return protocol


@FUZZ
@given(st.text() | st.binary())
def test_decode_returns_an_event_or_none(raw: str | bytes) -> None:
    """Any frame decodes to an event with a string type, or is dropped."""
    event = decode(raw)
    assert event is None or isinstance(event["type"], str)


@FUZZ
@given(json_values)
def test_decode_of_any_json(value: Any) -> None:
    """Valid JSON of any shape decodes only when it is an object with a string type."""
    event = decode(json.dumps(value))
    expected = isinstance(value, dict) and isinstance(value.get("type"), str)
    assert (event is not None) == expected


@FUZZ
@given(st.lists(events, max_size=12))
def test_any_event_sequence_leaves_the_protocol_consistent(
    sequence: list[dict[str, Any]],
) -> None:
    """Event sequences of any shape: handled or ignored, never raised; the state stays sound."""
    protocol = open_protocol()
    emitted: list[object] = []
    for event in sequence:
        emitted.extend(protocol.receive(json.dumps(event)))
        response = protocol.tracker.active
        assert response is None or not response.done
        assert protocol.tracker.idle == (response is None)
    if protocol.phase is not Phase.CLOSED:
        assert not any(isinstance(event, SessionFailed) for event in emitted)
    running = protocol.tracker.active
    ended = protocol.stop()
    assert protocol.tracker.idle
    if running is not None:
        assert ResponseDone(running) in ended
        assert running.done
    assert protocol.data_to_send() == []
    assert API_KEY not in repr(emitted)


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


# -- random interleavings against the service's behaviours (issue 19) ---------------------------

INTERLEAVING = settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
TEXTS = ("Sure.", "It is on.", "Hello there.", "Done.")
TRANSCRIPT = "turn on the light"
ACTIONS = st.sampled_from(
    [
        "speak",  # a VAD turn: speech, silence, commit, transcript, a response
        "create",  # our response.create (default conversation)
        "create_oob",  # our out-of-band response.create
        "create_bad",  # a response.create the service always refuses (bad tool schema)
        "reject",  # the next response.create is refused (a random reason)
        "hold",  # the next response holds until released
        "fail",  # the next response fails (a random cause)
        "release",  # held responses go on
        "cancel",  # barge-in
        "error",  # a stray error event
        "drop",  # the network drops
        "expire",  # session_expired + close 1001
        "fatal",  # model_not_found + close
        "late_transcripts",  # transcripts follow the responses from now on
    ]
)
REJECTIONS = st.sampled_from(
    ["conversation_already_has_active_response", "rate_limit_exceeded", "invalid_value"]
)
FAILURES = st.sampled_from(["server_error", "rate_limit_exceeded", "insufficient_quota"])


@INTERLEAVING
@given(
    st.lists(st.tuples(ACTIONS, st.integers(0, 3), REJECTIONS, FAILURES), max_size=8),
    st.booleans(),
)
async def test_random_interleavings_end_with_typed_errors_and_a_consistent_history(
    socket_enabled: None, script: list[tuple[str, int, str, str]], interrupt: bool
) -> None:
    """Whatever the service does in whatever order, every wait ends, retries are bounded,
    only the client's typed errors escape, and the replay history holds only what was said."""
    from custom_components.openai_realtime_voice.realtime import (
        ClientOptions,
        FunctionTool,
        ServerVad,
    )
    from realtime_server import RealtimeServer, ScriptedResponse, silence, tone

    server = RealtimeServer()
    server.user_transcript = TRANSCRIPT
    await server.start()
    options = ClientOptions(
        open_timeout=1,
        ping_interval=None,
        backoff_base=0.001,
        backoff_max=0.004,
        reconnect_attempts=2,
        response_timeout=0.5,
        create_retries=3,
    )
    config = SessionConfig(
        turn_detection=ServerVad(silence_duration_ms=100, interrupt_response=interrupt)
    )
    endpoint = RealtimeEndpoint(api_key=server.api_key, model=server.model, base_url=server.url)
    client = RealtimeClient(endpoint, config, options=options)
    holds: list[asyncio.Event] = []
    calls: list[asyncio.Task[Any]] = []

    def script_next(**kwargs: Any) -> None:
        server.script(ScriptedResponse(audio=silence(40), **kwargs))

    async def act(action: str, pick: int, rejection: str, failure: str) -> None:
        text = TEXTS[pick]
        match action:
            case "speak":
                script_next(text=text)
                for pcm in (tone(60), silence(120)):
                    await client.append_audio(pcm)
            case "create" | "create_oob":
                script_next(text=text)
                request = client.create_response(out_of_band=action == "create_oob")
                calls.append(asyncio.ensure_future(request))
            case "create_bad":
                bad = FunctionTool(name="f", parameters={"type": "string"})
                calls.append(asyncio.ensure_future(client.create_response(tools=[bad])))
            case "reject":
                server.reject_responses.append((rejection, "refused"))
            case "hold":
                holds.append(asyncio.Event())
                script_next(text=text, hold=holds[-1])
            case "fail":
                cause = {"type": "server_error", "code": failure, "message": "no"}
                server.script(ScriptedResponse(status="failed", error=cause))
            case "release":
                for hold in holds:
                    hold.set()
            case "cancel":
                calls.append(asyncio.ensure_future(client.cancel(pick * 20)))
            case "error":
                await server.session.error("server_error", "stray", None)
            case "drop":
                await server.drop()
            case "expire":
                await server.session_expired()
            case "fatal":
                await server.session.fatal("model_not_found", "no such model", 1000, None)
            case "late_transcripts":
                server.transcript_after_response = True

    try:
        await asyncio.wait_for(client.connect(), 2)
        for step in script:
            await act(*step)
            await asyncio.sleep(0.01)
        for hold in holds:
            hold.set()
        # No wait without an end: every request finishes (or fails) by itself.
        done, pending = await asyncio.wait(calls, timeout=5) if calls else (set(), set())
        assert not pending, f"requests still waiting: {pending}"
        replies: list[Any] = []
        for call in done:
            if (error := call.exception()) is not None:
                assert isinstance(error, RealtimeError), repr(error)
            elif call.result() is not None:
                replies.append(await asyncio.wait_for(call.result().wait(), 5))
        # No unbounded resend.
        creates = sum(1 for step in script if step[0].startswith("create"))
        assert len(server.of_type("response.create")) <= creates * (options.create_retries + 1)
        # The replay history holds what was said, once per turn or reply.
        keys = [entry.key for entry in client.protocol.tracker.history if entry.key is not None]
        assert len(keys) == len(set(keys))
        for reply in replies:  # out of band, failed or cut: not in the conversation
            if reply.out_of_band or reply.status != "completed" or reply.cancelled:
                assert reply.id not in keys
        for entry in client.protocol.tracker.history:
            if entry.role == "assistant":
                assert entry.text in TEXTS
            else:
                assert entry.text in ("", TRANSCRIPT)
    finally:
        for call in calls:
            call.cancel()
        await client.close()
        await server.stop()
    assert not server.violations, server.violations
