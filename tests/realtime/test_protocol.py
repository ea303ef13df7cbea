"""The sans-I/O protocol core: server events in, typed events and client events out.

No socket, no event loop: every test feeds JSON frames shaped like the service's (each
validated against the openai SDK's server event types) and checks the typed events that
come out and the client events queued to send (validated against the SDK's client types).
"""

from __future__ import annotations

import base64
import itertools
import json
from typing import Any

import pytest

from custom_components.openai_realtime_voice.realtime import (
    Dialect,
    FunctionCall,
    InputCommitted,
    InputTranscript,
    Modality,
    RealtimeAuthError,
    RealtimeConnectionError,
    RealtimeError,
    RealtimeProtocol,
    RealtimeQuotaError,
    RealtimeRateLimitError,
    RealtimeRequestError,
    RealtimeResponse,
    ResponseDone,
    ResponseStarted,
    ServerError,
    ServerVad,
    SessionConfig,
    SpeechStarted,
    SpeechStopped,
)
from custom_components.openai_realtime_voice.realtime.events import (
    ProtocolEvent,
    RequestAccepted,
    RequestRefused,
    SessionExpired,
    SessionFailed,
    SessionReady,
    SessionUpdated,
)
from custom_components.openai_realtime_voice.realtime.protocol import CLIENT_EVENT_KEY, Phase
from realtime_server import (
    API_KEY,
    client_event_problems,
    default_session,
    default_usage,
    server_event_problems,
)

MANUAL = SessionConfig(turn_detection=None)
VAD = SessionConfig(turn_detection=ServerVad())
_ids = itertools.count(1)


def feed(protocol: RealtimeProtocol, event: dict[str, Any]) -> list[ProtocolEvent]:
    """Receive one server event that the SDK's server event types accept."""
    event = {"event_id": f"event_{next(_ids)}", **event}
    beta = protocol.dialect is Dialect.BETA
    assert server_event_problems(event, beta=beta) == []
    return protocol.receive(json.dumps(event))


def sent(protocol: RealtimeProtocol) -> list[dict[str, Any]]:
    """The queued client events, each one the SDK's client event types accept."""
    events = protocol.data_to_send()
    beta = protocol.dialect is Dialect.BETA
    for event in events:
        assert client_event_problems(event, beta=beta) == [], event
    return events


def error(code: str, message: str = "no", event_id: str | None = None) -> dict[str, Any]:
    """An `error` server event."""
    body = {"type": "invalid_request_error", "code": code, "message": message, "param": None}
    return {"type": "error", "error": {**body, "event_id": event_id}}


def opened(config: SessionConfig = MANUAL, **kwargs: Any) -> RealtimeProtocol:
    """A protocol whose first session went through its setup exchange."""
    protocol = RealtimeProtocol(config, api_key=API_KEY, **kwargs)
    protocol.start_session(replay=False)
    dialect = protocol.dialect
    session = default_session("gpt-realtime", beta=dialect is Dialect.BETA)
    assert feed(protocol, {"type": "session.created", "session": session}) == []
    assert feed(protocol, {"type": "session.updated", "session": session}) == [SessionReady()]
    sent(protocol)
    return protocol


def created(
    protocol: RealtimeProtocol, response_id: str, metadata: dict[str, Any] | None
) -> list[ProtocolEvent]:
    """Feed a response.created."""
    response = {
        "id": response_id,
        "object": "realtime.response",
        "status": "in_progress",
        "output": [],
        "metadata": metadata,
    }
    return feed(protocol, {"type": "response.created", "response": response})


def done(
    protocol: RealtimeProtocol, response_id: str, status: str = "completed", **extra: Any
) -> list[ProtocolEvent]:
    """Feed a response.done."""
    response = {
        "id": response_id,
        "object": "realtime.response",
        "status": status,
        "output": [],
        "usage": default_usage(),
        **extra,
    }
    return feed(protocol, {"type": "response.done", "response": response})


def where(response_id: str, item_id: str = "item_1") -> dict[str, Any]:
    """The position fields of a delta event."""
    return {"response_id": response_id, "item_id": item_id, "output_index": 0, "content_index": 0}


def audio(protocol: RealtimeProtocol, response_id: str, ms: int, item_id: str = "item_1") -> None:
    """Feed `ms` of audio output."""
    delta = base64.b64encode(bytes(48 * ms)).decode()
    event = {"type": "response.output_audio.delta", **where(response_id, item_id), "delta": delta}
    assert feed(protocol, event) == []


def accepted(protocol: RealtimeProtocol, response_id: str, **kwargs: Any) -> RealtimeResponse:
    """Ask for a response and let the service create it."""
    event_id = protocol.create_response(**kwargs)
    request = sent(protocol)[-1]
    assert request["type"] == "response.create"
    tag = request["response"]["metadata"]
    events = created(protocol, response_id, tag)
    assert isinstance(events[0], RequestAccepted)
    assert events[0].event_id == event_id
    response = events[0].response
    assert events[-1] == ResponseStarted(response)
    protocol.request_finished(event_id)
    return response


# -- session setup -------------------------------------------------------------------------------


def test_setup_configures_the_session_then_reports_it_ready() -> None:
    """session.created -> the full session.update -> session.updated -> ready; no I/O needed."""
    protocol = RealtimeProtocol(MANUAL, api_key=API_KEY)
    assert protocol.phase is Phase.DISCONNECTED
    assert protocol.append_audio(b"\0" * 480) is False  # nothing is open to send to
    protocol.start_session(replay=False)
    session = {**default_session("gpt-realtime"), "expires_at": 1_900_000_000}
    assert feed(protocol, {"type": "session.created", "session": session}) == []
    assert protocol.expires_at == 1_900_000_000.0
    (update,) = sent(protocol)
    assert update["type"] == "session.update"
    assert update["session"] == MANUAL.render()
    assert protocol.phase is Phase.CONFIGURING
    assert feed(protocol, {"type": "rate_limits.updated", "rate_limits": []}) == []
    assert feed(protocol, {"type": "session.updated", "session": session}) == [SessionReady()]
    assert protocol.phase is Phase.OPEN
    assert protocol.append_audio(b"\0" * 480) is True
    assert [e["type"] for e in sent(protocol)] == ["input_audio_buffer.append"]


def test_an_error_for_the_setup_fails_it_with_a_typed_error() -> None:
    """An error answering our session.update (or a fatal one) ends the setup, key redacted."""
    protocol = RealtimeProtocol(MANUAL, api_key=API_KEY)
    protocol.start_session(replay=False)
    feed(protocol, {"type": "session.created", "session": default_session("gpt-realtime")})
    (update,) = sent(protocol)
    assert feed(protocol, error("unknown_parameter", "not ours", "evt_other")) == []
    (failed,) = feed(protocol, error("invalid_value", f"bad {API_KEY}", update["event_id"]))
    assert isinstance(failed, SessionFailed)
    assert isinstance(failed.error, RealtimeConnectionError)
    assert API_KEY not in str(failed.error)
    assert protocol.phase is Phase.DISCONNECTED
    protocol.start_session(replay=False)
    (failed,) = feed(protocol, error("invalid_api_key", "Incorrect API key", "evt_other"))
    assert isinstance(failed, SessionFailed)
    assert isinstance(failed.error, RealtimeAuthError)


def test_a_new_session_is_given_the_text_history_again() -> None:
    """After a reconnect the setup replays every text message, oldest first."""
    protocol = opened()
    protocol.add_user_text("turn on the light")
    accepted(protocol, "resp_1")
    feed(protocol, {"type": "response.output_text.delta", **where("resp_1"), "delta": "Done."})
    done(protocol, "resp_1")
    protocol.connection_lost()
    assert protocol.phase is Phase.DISCONNECTED
    protocol.start_session(replay=True)
    feed(protocol, {"type": "session.created", "session": default_session("gpt-realtime")})
    sent(protocol)
    feed(protocol, {"type": "session.updated", "session": default_session("gpt-realtime")})
    replayed = [(e["item"]["role"], e["item"]["content"][0]) for e in sent(protocol)]
    assert replayed == [
        ("user", {"type": "input_text", "text": "turn on the light"}),
        ("assistant", {"type": "output_text", "text": "Done."}),
    ]


# -- frames to ignore ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    ["{not json", b"\xff\xfe", "[1, 2]", '"text"', '{"no": "type"}', '{"type": 7}'],
)
def test_malformed_frames_are_dropped(raw: str | bytes) -> None:
    """A frame that is not a JSON object with a string type changes nothing."""
    protocol = opened()
    response = accepted(protocol, "resp_1")
    assert protocol.receive(raw) == []
    assert protocol.tracker.active is response
    assert protocol.data_to_send() == []


def test_unknown_events_are_ignored() -> None:
    """Events the client has no use for, or new ones, produce nothing."""
    protocol = opened()
    assert protocol.receive(json.dumps({"type": "response.brand_new.delta", "x": 1})) == []
    assert feed(protocol, {"type": "rate_limits.updated", "rate_limits": []}) == []
    assert protocol.data_to_send() == []


def test_deltas_of_an_unknown_response_are_dropped() -> None:
    """A delta for a response that is not running (never created, or over) goes nowhere."""
    protocol = opened()
    response = accepted(protocol, "resp_1")
    done(protocol, "resp_1")
    feed(protocol, {"type": "response.output_text.delta", **where("resp_1"), "delta": "late"})
    feed(protocol, {"type": "response.output_text.delta", **where("resp_9"), "delta": "who?"})
    assert response.text == ""
    assert done(protocol, "resp_9") == []


def test_audio_with_invalid_base64_is_dropped() -> None:
    """A broken audio delta is skipped; the response goes on."""
    protocol = opened()
    response = accepted(protocol, "resp_1")
    broken = {"type": "response.output_audio.delta", **where("resp_1"), "delta": "not base64!"}
    assert protocol.receive(json.dumps(broken)) == []
    audio(protocol, "resp_1", 20)
    assert response.audio_ms == 20


# -- responses -----------------------------------------------------------------------------------


def test_a_response_streams_its_deltas_and_joins_the_history() -> None:
    """Our response is tagged, accepted, fed and finished; its reply is remembered."""
    protocol = opened()
    event_id = protocol.create_response(modality=Modality.TEXT, instructions="short")
    (request,) = sent(protocol)
    assert request["event_id"] == event_id
    assert request["response"]["output_modalities"] == ["text"]
    assert request["response"]["metadata"] == {CLIENT_EVENT_KEY: event_id}
    accepted_event, started = created(protocol, "resp_1", request["response"]["metadata"])
    assert accepted_event == RequestAccepted(event_id, started.response)  # type: ignore[union-attr]
    response = started.response  # type: ignore[union-attr]
    assert not protocol.tracker.idle
    feed(protocol, {"type": "response.output_text.delta", **where("resp_1"), "delta": "Hi "})
    feed(protocol, {"type": "response.output_text.delta", **where("resp_1"), "delta": "there"})
    call = {
        "id": "item_2",
        "type": "function_call",
        "object": "realtime.item",
        "status": "completed",
        "call_id": "call_1",
        "name": "HassTurnOn",
        "arguments": "{}",
    }
    feed(
        protocol,
        {
            "type": "response.output_item.done",
            "response_id": "resp_1",
            "output_index": 1,
            "item": call,
        },
    )
    assert done(protocol, "resp_1") == [ResponseDone(response)]
    assert response.status == "completed"
    assert response.usage == default_usage()
    assert response.reply == "Hi there"
    assert response.function_calls == [FunctionCall("call_1", "HassTurnOn", "{}", "item_2")]
    assert protocol.tracker.idle
    assert [(e.role, e.text) for e in protocol.tracker.history] == [("assistant", "Hi there")]


def test_a_server_vad_response_is_not_the_answer_to_a_request() -> None:
    """A response.created without our tag answers no request once the server echoed our tag,
    nor while server VAD owes the user's finished turn its reply."""
    protocol = opened(VAD)
    accepted(protocol, "resp_1")
    done(protocol, "resp_1")
    protocol.create_response()
    sent(protocol)
    (started,) = created(protocol, "resp_vad", None)
    assert isinstance(started, ResponseStarted)

    fresh = opened(VAD)  # no echo seen yet: only a reply VAD owes is told apart
    feed(fresh, {"type": "input_audio_buffer.speech_started", "audio_start_ms": 0, "item_id": "i"})
    feed(fresh, {"type": "input_audio_buffer.speech_stopped", "audio_end_ms": 500, "item_id": "i"})
    event_id = fresh.create_response(metadata={"who": "us"})
    sent(fresh)
    (vad,) = created(fresh, "resp_vad", None)
    assert isinstance(vad, ResponseStarted)
    done(fresh, "resp_vad")
    ours, _started = created(fresh, "resp_ours", None)
    assert ours == RequestAccepted(event_id, ours.response)
    assert ours.response.metadata == {"who": "us", CLIENT_EVENT_KEY: event_id}


def test_beta_servers_that_drop_metadata_still_answer_the_request() -> None:
    """The beta shape may not echo metadata: there an untagged response is ours; beta names work."""
    protocol = opened(dialect=Dialect.BETA)
    event_id = protocol.create_response(modality=Modality.AUDIO)
    (request,) = sent(protocol)
    assert request["response"]["modalities"] == ["text", "audio"]
    accepted_event, _started = created(protocol, "resp_1", None)
    assert isinstance(accepted_event, RequestAccepted)
    assert accepted_event.event_id == event_id
    beta_delta = {"type": "response.text.delta", **where("resp_1"), "delta": "hello"}
    feed(protocol, beta_delta)
    assert accepted_event.response.text == "hello"


def test_an_error_mid_response_is_reported_and_the_response_goes_on() -> None:
    """A non-fatal error during a response becomes ServerError; the response still finishes."""
    protocol = opened()
    response = accepted(protocol, "resp_1")
    (reported,) = feed(protocol, error("server_error", f"oops {API_KEY}"))
    assert isinstance(reported, ServerError)
    assert reported.code == "server_error"
    assert API_KEY not in reported.message
    feed(protocol, {"type": "response.output_text.delta", **where("resp_1"), "delta": "still"})
    done(protocol, "resp_1")
    assert response.reply == "still"
    assert protocol.phase is Phase.OPEN


def test_a_fatal_error_mid_response_ends_the_session() -> None:
    """A quota error fails the session; stopping ends the running response."""
    protocol = opened()
    response = accepted(protocol, "resp_1")
    (failed,) = feed(protocol, error("insufficient_quota", "You exceeded your current quota."))
    assert isinstance(failed, SessionFailed)
    assert isinstance(failed.error, RealtimeQuotaError)
    assert protocol.phase is Phase.CLOSED
    assert (
        feed(protocol, {"type": "response.output_text.delta", **where("resp_1"), "delta": "x"})
        == []
    )
    assert protocol.stop() == [ResponseDone(response)]
    assert response.status == "failed"
    with pytest.raises(RealtimeError):
        protocol.start_session(replay=True)


def test_a_response_failed_for_a_fatal_cause_ends_the_session() -> None:
    """status_details.error with a fatal code ends the session like the error event would."""
    protocol = opened()
    response = accepted(protocol, "resp_1")
    cause = {
        "type": "failed",
        "error": {"type": "invalid_request_error", "code": "invalid_api_key"},
    }
    ended, failed = done(protocol, "resp_1", "failed", status_details=cause)
    assert ended == ResponseDone(response)
    assert isinstance(failed, SessionFailed)
    assert isinstance(response.error, RealtimeAuthError)
    assert not protocol.tracker.history


def test_a_response_failed_for_a_passing_cause_keeps_the_session() -> None:
    """A server_error failure is the response's own; nothing joins the history."""
    protocol = opened()
    response = accepted(protocol, "resp_1")
    cause = {"type": "failed", "error": {"type": "server_error", "code": "server_error"}}
    assert done(protocol, "resp_1", "failed", status_details=cause) == [ResponseDone(response)]
    assert isinstance(response.error, RealtimeRequestError)
    assert protocol.phase is Phase.OPEN


def test_a_second_default_response_supersedes_the_first() -> None:
    """One response writes to the conversation at a time: an unfinished one ends as failed."""
    protocol = opened(VAD)
    first = accepted(protocol, "resp_1")
    superseded, started = created(protocol, "resp_2", None)
    assert superseded == ResponseDone(first)
    assert first.status == "failed"
    assert isinstance(started, ResponseStarted)
    assert created(protocol, "resp_2", None) == []  # a repeat is ignored


@pytest.mark.parametrize(
    ("code", "retry", "busy", "kind"),
    [
        ("conversation_already_has_active_response", True, True, RealtimeRequestError),
        ("rate_limit_exceeded", True, False, RealtimeRateLimitError),
        ("invalid_value", False, False, RealtimeRequestError),
    ],
)
def test_a_refused_request_says_whether_to_retry(
    code: str, retry: bool, busy: bool, kind: type[RealtimeError]
) -> None:
    """Busy and rate-limited requests may be retried; any other refusal is final."""
    protocol = opened()
    event_id = protocol.create_response()
    sent(protocol)
    (refused,) = feed(protocol, error(code, "refused", event_id))
    assert isinstance(refused, RequestRefused)
    assert (refused.event_id, refused.retry, refused.busy) == (event_id, retry, busy)
    assert type(refused.error) is kind
    assert feed(protocol, error(code, "again", event_id)) == []  # answered once


def test_session_updates_apply_when_the_service_confirms() -> None:
    """Only changes are sent; the applied config moves on session.updated; a refusal says why."""
    protocol = opened()
    assert protocol.update_session(MANUAL) is None  # nothing changed
    new = SessionConfig(turn_detection=None, instructions="be brief")
    event_id = protocol.update_session(new)
    assert event_id is not None
    (update,) = sent(protocol)
    assert update["session"] == {"type": "realtime", "instructions": "be brief"}
    assert protocol.applied == MANUAL
    session = default_session("gpt-realtime")
    assert feed(protocol, {"type": "session.updated", "session": session}) == [
        SessionUpdated(event_id)
    ]
    assert protocol.applied == new
    refused_id = protocol.update_session(SessionConfig(turn_detection=None, instructions="x"))
    assert refused_id is not None
    (refused,) = feed(protocol, error("invalid_value", "nope", refused_id))
    assert isinstance(refused, RequestRefused)
    assert not refused.retry
    assert protocol.applied == new


def test_a_voice_change_waits_for_the_next_session_once_audio_played() -> None:
    """The service fixes the voice after the first audio: the update leaves it out."""
    protocol = opened()
    accepted(protocol, "resp_1")
    audio(protocol, "resp_1", 10)
    done(protocol, "resp_1")
    assert protocol.update_session(SessionConfig(turn_detection=None, voice="cedar")) is None
    assert protocol.config.voice == "cedar"
    assert protocol.applied.voice != "cedar"


def test_session_expired_asks_for_a_new_session() -> None:
    """`session_expired` is not an error for the caller: a new session follows."""
    protocol = opened()
    assert feed(protocol, error("session_expired", "Your session hit the maximum duration.")) == [
        SessionExpired()
    ]


def test_a_lost_connection_fails_running_responses_and_a_pending_create() -> None:
    """Responses of a lost session end as failed, a response.create with them; a late
    response.created of the old session is not taken for the request."""
    protocol = opened()
    response = accepted(protocol, "resp_1")
    event_id = protocol.create_response()
    ended, refused = protocol.connection_lost()
    assert ended == ResponseDone(response)
    assert response.status == "failed"
    assert isinstance(refused, RequestRefused)
    assert refused.event_id == event_id
    assert not refused.retry
    assert isinstance(refused.error, RealtimeConnectionError)
    assert protocol.data_to_send() == []
    assert protocol.append_audio(b"\0" * 48) is False
    assert protocol.receive(json.dumps({"type": "response.created", "response": {}})) == []


def test_a_pending_update_is_answered_by_the_next_session() -> None:
    """The new session is configured with the latest config, so it answers the update."""
    protocol = opened()
    new = SessionConfig(turn_detection=None, instructions="be brief")
    event_id = protocol.update_session(new)
    assert event_id is not None
    assert protocol.connection_lost() == []
    protocol.start_session(replay=True)
    feed(protocol, {"type": "session.created", "session": default_session("gpt-realtime")})
    (update,) = sent(protocol)
    assert update["session"]["instructions"] == "be brief"
    session = default_session("gpt-realtime")
    assert feed(protocol, {"type": "session.updated", "session": session}) == [
        SessionReady(),
        SessionUpdated(event_id),
    ]
    assert protocol.applied == new


def test_stopping_voids_every_request_and_queue() -> None:
    """After stop() nothing is sent and no request is answered; a new session is refused."""
    protocol = opened()
    protocol.update_session(SessionConfig(turn_detection=None, instructions="x"))
    protocol.create_response()
    assert protocol.stop() == []
    assert protocol.data_to_send() == []
    assert protocol.connection_lost() == []
    with pytest.raises(RealtimeError):
        protocol.start_session(replay=True)


# -- the user's turn and barge-in ----------------------------------------------------------------


def test_the_users_turn_is_tracked_and_transcribed_into_the_history() -> None:
    """VAD events pass through; the committed item waits for its transcript in the history."""
    protocol = opened(VAD)
    started = {"type": "input_audio_buffer.speech_started", "audio_start_ms": 100, "item_id": "i1"}
    assert feed(protocol, started) == [SpeechStarted(100, "i1")]
    assert not protocol.tracker.turn_quiet
    stopped = {"type": "input_audio_buffer.speech_stopped", "audio_end_ms": 900, "item_id": "i1"}
    assert feed(protocol, stopped) == [SpeechStopped(900, "i1")]
    assert not protocol.tracker.turn_quiet  # server VAD creates the reply: the turn goes on
    committed = {"type": "input_audio_buffer.committed", "item_id": "i1", "previous_item_id": None}
    assert feed(protocol, committed) == [InputCommitted("i1")]
    (started_reply,) = created(protocol, "resp_1", None)
    assert isinstance(started_reply, ResponseStarted)
    done(protocol, "resp_1")
    assert protocol.tracker.turn_quiet  # the reply of the turn is done
    transcript = {
        "type": "conversation.item.input_audio_transcription.completed",
        "item_id": "i1",
        "content_index": 0,
        "transcript": "lights on",
        "usage": {"type": "duration", "seconds": 1.0},
    }
    assert feed(protocol, transcript) == [
        InputTranscript("i1", "lights on", {"type": "duration", "seconds": 1.0})
    ]
    assert [(e.role, e.text, e.key) for e in protocol.tracker.history] == [
        ("user", "lights on", "i1")
    ]


def test_cancel_truncates_at_what_was_played_and_cancels_once() -> None:
    """response.cancel once per response; truncate at min(played, received) ms."""
    protocol = opened()
    response = accepted(protocol, "resp_1")
    audio(protocol, "resp_1", 300)
    protocol.cancel(1000)
    cancel, truncate = sent(protocol)
    assert cancel == {"type": "response.cancel", "response_id": "resp_1"}
    assert truncate == {
        "type": "conversation.item.truncate",
        "item_id": "item_1",
        "content_index": 0,
        "audio_end_ms": 300,
    }
    assert response.cancelled
    audio(protocol, "resp_1", 100)  # late deltas are dropped
    assert response.audio_ms == 300
    protocol.cancel(0)
    assert sent(protocol) == []  # cancelled already, nothing heard: nothing to send
    done(protocol, "resp_1", "cancelled")
    assert not protocol.tracker.history  # a cut reply is not replayed


def test_server_vad_cancels_default_replies_itself_but_not_out_of_band_ones() -> None:
    """With interrupt_response the service cancels the reply; an out-of-band one is ours."""
    protocol = opened(VAD)
    aside = accepted(protocol, "resp_aside", out_of_band=True)
    assert aside.out_of_band
    reply = accepted(protocol, "resp_reply")
    audio(protocol, "resp_aside", 50)
    started = {"type": "input_audio_buffer.speech_started", "audio_start_ms": 0, "item_id": "i1"}
    feed(protocol, started)
    protocol.cancel(40, response=aside)
    assert sent(protocol) == [{"type": "response.cancel", "response_id": "resp_aside"}]
    assert reply.cancelled  # no truncate: out of band, not in the conversation


def test_cutting_a_finished_reply_removes_it_from_the_history() -> None:
    """A reply the user stopped hearing after it was done leaves the replay history."""
    protocol = opened()
    response = accepted(protocol, "resp_1")
    audio(protocol, "resp_1", 200)
    feed(
        protocol,
        {"type": "response.output_audio_transcript.delta", **where("resp_1"), "delta": "Long"},
    )
    done(protocol, "resp_1")
    assert [e.key for e in protocol.tracker.history] == ["resp_1"]
    protocol.cancel(120, response=response)
    (truncate,) = sent(protocol)
    assert truncate["audio_end_ms"] == 120
    assert not protocol.tracker.history


# -- tool rounds ---------------------------------------------------------------------------------


def test_deleting_items_takes_them_out_of_the_history() -> None:
    """A withdrawn turn (the user's audio and the reply to it) is not replayed later."""
    protocol = opened(VAD)
    feed(protocol, {"type": "input_audio_buffer.committed", "item_id": "i1"})
    transcript = {
        "type": "conversation.item.input_audio_transcription.completed",
        "item_id": "i1",
        "content_index": 0,
        "transcript": "lights on",
        "usage": {"type": "duration", "seconds": 1.0},
    }
    feed(protocol, transcript)
    response = accepted(protocol, "resp_1")
    feed(protocol, {"type": "response.output_text.delta", **where("resp_1"), "delta": "Done"})
    done(protocol, "resp_1")
    assert [e.key for e in protocol.tracker.history] == ["i1", response.id]
    sent(protocol)

    protocol.delete_item("item_1", response_id=response.id)
    protocol.delete_item("i1")

    assert [event["type"] for event in sent(protocol)] == ["conversation.item.delete"] * 2
    assert not protocol.tracker.history
