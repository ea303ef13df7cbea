"""End-to-end tests of RealtimeClient against the protocol-faithful local server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
import gc
import json
from typing import Any

import pytest

from custom_components.openai_realtime_voice.realtime import (
    AudioDelta,
    ClientOptions,
    Closed,
    Dialect,
    FunctionCall,
    FunctionTool,
    InputCommitted,
    InputTranscript,
    Modality,
    RealtimeAuthError,
    RealtimeClient,
    RealtimeConnectionError,
    RealtimeEndpoint,
    RealtimeError,
    RealtimeQuotaError,
    RealtimeResponse,
    RealtimeSessionClosed,
    Reconnected,
    ResponseDone,
    ResponseStarted,
    ServerError,
    ServerVad,
    SessionConfig,
    SpeechStarted,
    SpeechStopped,
    TextDelta,
    Transcription,
)
from realtime_server import (
    RealtimeServer,
    ScriptedCall,
    ScriptedResponse,
    default_usage,
    silence,
    tone,
)
from tests.realtime.client_helpers import MANUAL, Recorder, make_client


@pytest.fixture
async def client(realtime_server: RealtimeServer) -> AsyncGenerator[RealtimeClient]:
    """A connected client in manual turn mode."""
    rt = make_client(realtime_server)
    await rt.connect()
    yield rt
    await rt.close()


async def _received_audio(response: RealtimeResponse, ms: int) -> None:
    """Consume the response stream until `ms` of audio arrived."""
    async for _event in response:
        if response.audio_ms >= ms:
            return


async def test_connect_configures_session(realtime_server: RealtimeServer) -> None:
    """Ready only after session.update was answered; the server has the full config."""
    config = SessionConfig(
        instructions="be brief",
        voice="cedar",
        transcription=Transcription(language="en"),
        tools=(FunctionTool(name="HassTurnOn", description="Turn on"),),
        max_output_tokens=200,
    )
    rt = make_client(realtime_server, config)
    await rt.connect()
    try:
        assert rt.connected
        session = realtime_server.session.session
        assert session["audio"]["output"]["voice"] == "cedar"
        assert session["audio"]["input"]["turn_detection"]["silence_duration_ms"] == 500
        assert session["tools"][0]["name"] == "HassTurnOn"
        assert session["max_output_tokens"] == 200
        with pytest.raises(RealtimeError):
            await rt.connect()
    finally:
        await rt.close()
    assert not rt.connected


async def test_text_response_stream(
    client: RealtimeClient, realtime_server: RealtimeServer
) -> None:
    """Text deltas stream through the response; its usage block arrives with it."""
    realtime_server.script(ScriptedResponse(text="Hello world", chunks=3))
    await client.add_user_text("hi")
    response = await client.create_response(modality=Modality.TEXT, instructions="short")
    pieces = [piece async for piece in response.text_stream()]
    await response.wait()
    assert "".join(pieces) == "Hello world"
    assert len(pieces) == 3
    assert response.status == "completed"
    assert response.usage == default_usage()
    params = realtime_server.response_params[0]
    assert params["output_modalities"] == ["text"]
    assert params["instructions"] == "short"


async def test_audio_response(client: RealtimeClient, realtime_server: RealtimeServer) -> None:
    """Audio deltas arrive as PCM bytes with a transcript."""
    realtime_server.script(ScriptedResponse(text="Hi there", audio=silence(120), chunks=3))
    response = await client.create_response()
    chunks = [chunk async for chunk in response.audio()]
    assert sum(map(len, chunks)) == 120 * 48
    assert response.transcript == "Hi there"
    assert response.audio_ms == 120


async def test_response_events_iteration(
    client: RealtimeClient, realtime_server: RealtimeServer
) -> None:
    """Iterating a response yields typed events; iterating a finished one ends at once."""
    realtime_server.script(ScriptedResponse(text="ok", audio=silence(40)))
    response = await client.create_response()
    events = [event async for event in response]
    assert any(isinstance(event, AudioDelta) for event in events)
    assert [event async for event in response] == []
    assert "status=completed" in repr(response)


async def test_responses_are_serialised(
    client: RealtimeClient, realtime_server: RealtimeServer
) -> None:
    """A second response.create waits for the previous response.done."""
    hold = asyncio.Event()
    realtime_server.script(ScriptedResponse(text="one", hold=hold), ScriptedResponse(text="two"))
    first = await client.create_response()
    second_task = asyncio.create_task(client.create_response())
    await asyncio.sleep(0)
    assert len(realtime_server.of_type("response.create")) == 1
    hold.set()
    second = await second_task
    await second.wait()
    assert first.done
    assert second.transcript == "two"


async def test_out_of_band_response(
    client: RealtimeClient, realtime_server: RealtimeServer
) -> None:
    """Per-response overrides: out-of-band, metadata and tools reach the server."""
    tool = FunctionTool(name="Lookup", parameters={"type": "object", "properties": {}})
    response = await client.create_response(
        out_of_band=True, metadata={"purpose": "title"}, tools=[tool]
    )
    await response.wait()
    params = realtime_server.response_params[0]
    assert params["conversation"] == "none"
    assert params["metadata"]["purpose"] == "title"
    assert params["tools"][0]["name"] == "Lookup"
    assert response.metadata is not None
    assert response.metadata["purpose"] == "title"


async def test_vad_turn_events(realtime_server: RealtimeServer) -> None:
    """Server VAD events and input transcripts surface as session events."""
    realtime_server.user_transcript = "turn on the kitchen light"
    rt = make_client(
        realtime_server, SessionConfig(turn_detection=ServerVad(silence_duration_ms=200))
    )
    await rt.connect()
    recorder = Recorder(rt)
    try:
        for pcm in (silence(60), tone(100), silence(300)):
            await rt.append_audio(pcm)
        started = await recorder.wait(SpeechStarted)
        await recorder.wait(SpeechStopped)
        await recorder.wait(InputCommitted)
        transcript = await recorder.wait(InputTranscript)
        response = (await recorder.wait(ResponseStarted)).response
        await recorder.wait(ResponseDone)
        assert started.audio_start_ms == 60
        assert transcript.text == "turn on the kitchen light"
        assert response.status == "completed"
    finally:
        await recorder.stop()
        await rt.close()


async def test_manual_commit_and_clear(
    client: RealtimeClient, realtime_server: RealtimeServer
) -> None:
    """Manual mode: commit and clear reach the server; an empty commit is benign."""
    await client.commit_audio()
    await client.append_audio(tone(40))
    await client.commit_audio()
    await client.clear_audio()
    await realtime_server.wait_for("input_audio_buffer.clear")
    assert len(realtime_server.of_type("input_audio_buffer.commit")) == 2


async def test_tool_outputs_go_back_with_one_response_create(
    realtime_server: RealtimeServer,
) -> None:
    """Completed calls reach the caller (an incomplete one does not); their outputs go back,
    then exactly one response.create."""
    realtime_server.script(
        ScriptedResponse(
            calls=[
                ScriptedCall("HassTurnOn", '{"name":"kitchen"}', call_id="c1"),
                ScriptedCall("Broken", "{}", call_id="c2"),
                ScriptedCall("Skipped", "{}", call_id="c3", status="incomplete"),
            ]
        ),
        ScriptedResponse(text="Done."),
    )
    rt = make_client(realtime_server)
    await rt.connect()
    try:
        first = await (await rt.create_response()).wait()
        assert [c.name for c in first.function_calls] == ["HassTurnOn", "Broken"]
        second = await rt.submit_tool_outputs(
            {"c1": json.dumps({"ok": True}), "c2": json.dumps({"error": "boom"})}
        )
        assert second is not None
        await second.wait()
        outputs = [e["item"] for e in realtime_server.of_type("conversation.item.create")]
        assert [o["call_id"] for o in outputs] == ["c1", "c2"]
        assert "boom" in outputs[1]["output"]
        assert len(realtime_server.of_type("response.create")) == 2
        assert second.transcript == "Done."
    finally:
        await rt.close()


async def test_raw_function_calls_chain_without_a_limit_of_their_own(
    realtime_server: RealtimeServer,
) -> None:
    """The caller gets the calls and bounds the rounds: the client answers every submission."""
    rt = make_client(realtime_server, options=ClientOptions(ping_interval=None))
    await rt.connect()
    try:
        for _ in range(12):
            realtime_server.script(ScriptedResponse(calls=[ScriptedCall("Chain", "{}")]))
        response = await rt.create_response()
        events = [event async for event in response]
        assert isinstance(events[-1], FunctionCall)
        for _ in range(11):
            (call,) = response.function_calls
            response = await (await rt.submit_tool_outputs({call.call_id: "42"})).wait()
        assert len(realtime_server.of_type("response.create")) == 12
        outputs = [
            e["item"]
            for e in realtime_server.of_type("conversation.item.create")
            if e["item"]["type"] == "function_call_output"
        ]
        assert len(outputs) == 11
    finally:
        await rt.close()


async def test_cancel_truncates_and_drops_late_deltas(
    client: RealtimeClient, realtime_server: RealtimeServer
) -> None:
    """cancel(): response.cancel + truncate at min(played, received); late deltas dropped."""
    realtime_server.script(
        ScriptedResponse(
            text="long answer", audio=silence(200), hold=asyncio.Event(), late_deltas=3
        )
    )
    response = await client.create_response()
    await realtime_server.wait_for("response.create")
    await _received_audio(response, 200)
    await client.cancel(played_ms=5000)
    await response.wait()
    assert response.status == "cancelled"
    assert response.audio_ms == 200
    cancel = await realtime_server.wait_for("response.cancel")
    assert cancel["response_id"] == response.id
    truncate = await realtime_server.wait_for("conversation.item.truncate")
    assert truncate["audio_end_ms"] == 200


async def test_cancel_skips_truncate_at_zero(
    client: RealtimeClient, realtime_server: RealtimeServer
) -> None:
    """Nothing played: no truncate; a cancel with nothing active is harmless."""
    await client.cancel(100)
    realtime_server.script(ScriptedResponse(text="x", audio=silence(40), hold=asyncio.Event()))
    response = await client.create_response()
    await client.cancel(0)
    await response.wait()
    await client.cancel(10)  # response already done: truncate only
    truncate = await realtime_server.wait_for("conversation.item.truncate")
    assert truncate["audio_end_ms"] == 10
    assert len(realtime_server.of_type("conversation.item.truncate")) == 1


async def test_server_auto_cancel_no_response_cancel(realtime_server: RealtimeServer) -> None:
    """With server VAD interrupting, cancel() only truncates."""
    realtime_server.script(
        ScriptedResponse(text="talking", audio=silence(100), hold=asyncio.Event())
    )
    rt = make_client(realtime_server, SessionConfig())
    await rt.connect()
    recorder = Recorder(rt)
    try:
        response = await rt.create_response()
        await _received_audio(response, 100)
        await rt.append_audio(tone(40))
        await recorder.wait(SpeechStarted)
        await rt.cancel(60)
        await response.wait()
        assert response.status == "cancelled"
        assert response.status_details is not None
        assert response.status_details["reason"] == "turn_detected"
        await realtime_server.wait_for("conversation.item.truncate")
        assert not realtime_server.of_type("response.cancel")
    finally:
        await recorder.stop()
        await rt.close()


async def test_truncate_error_is_benign(
    client: RealtimeClient, realtime_server: RealtimeServer
) -> None:
    """A truncate-length error from the server does not surface or break the session."""
    recorder = Recorder(client)
    realtime_server.hooks["conversation.item.truncate"] = _reply_truncate_error(realtime_server)
    realtime_server.script(ScriptedResponse(text="a", audio=silence(60)))
    response = await client.create_response()
    await response.wait()
    await client.cancel(50)
    await realtime_server.wait_for("conversation.item.truncate")
    await realtime_server.session.error("some_other_error", "visible", None)
    error = await recorder.wait(ServerError)
    assert error.code == "some_other_error"
    assert len([e for e in recorder.events if isinstance(e, ServerError)]) == 1
    await recorder.stop()


def _reply_truncate_error(server: RealtimeServer) -> Any:
    async def hook(event: dict[str, Any]) -> bool:
        await server.session.error(
            "invalid_value", "Audio content of 40ms is already shorter than 50ms", None
        )
        return True

    return hook


async def test_session_expired_reconnects_and_replays(
    client: RealtimeClient, realtime_server: RealtimeServer
) -> None:
    """session_expired + close 1001 -> new session with config and text history replayed."""
    recorder = Recorder(client)
    realtime_server.script(ScriptedResponse(text="Hello Ann", audio=silence(20)))
    await client.add_user_text("I am Ann")
    await (await client.create_response()).wait()
    await realtime_server.session_expired()
    reconnected = await recorder.wait(Reconnected)
    assert not reconnected.renewal
    assert realtime_server.connections == 2
    await realtime_server.wait_for("conversation.item.create", 3)
    replayed = [e["item"] for e in realtime_server.of_type("conversation.item.create")[1:]]
    assert [(i["role"], i["content"][0]["text"]) for i in replayed] == [
        ("user", "I am Ann"),
        ("assistant", "Hello Ann"),
    ]
    assert replayed[1]["content"][0]["type"] == "output_text"
    assert len(realtime_server.of_type("session.update")) == 2
    await recorder.stop()


async def test_replay_keeps_untranscribed_user_turns(
    client: RealtimeClient, realtime_server: RealtimeServer
) -> None:
    """Transcription off: a spoken turn is replayed as a marker before the reply to it, so the
    new session's history alternates as the old one did (issue 28 item 9)."""
    recorder = Recorder(client)
    realtime_server.script(ScriptedResponse(text="It is noon.", audio=silence(20)))
    await client.append_audio(tone(300))
    await client.commit_audio()
    await (await client.create_response()).wait()
    await realtime_server.session_expired()
    await recorder.wait(Reconnected)
    await realtime_server.wait_for("conversation.item.create", 2)
    replayed = [e["item"] for e in realtime_server.of_type("conversation.item.create")]
    assert [(i["role"], i["content"][0]["text"]) for i in replayed] == [
        ("user", "(spoken, not transcribed)"),
        ("assistant", "It is noon."),
    ]
    await recorder.stop()


async def test_drop_reconnects(client: RealtimeClient, realtime_server: RealtimeServer) -> None:
    """An abrupt drop mid-response fails that response and reconnects."""
    recorder = Recorder(client)
    realtime_server.script(ScriptedResponse(text="x", hold=asyncio.Event()))
    response = await client.create_response()
    await realtime_server.drop()
    await response.wait()
    assert response.status == "failed"
    await recorder.wait(Reconnected)
    assert client.connected
    await (await client.create_response()).wait()
    await recorder.stop()


async def test_an_update_cut_off_by_a_drop_completes_on_the_next_session(
    client: RealtimeClient, realtime_server: RealtimeServer
) -> None:
    """A session.update whose session.updated never came (the connection dropped) is answered
    by the next session, which is configured with the new config: the caller does not hang."""
    recorder = Recorder(client)
    dropped = False

    async def drop_once(event: dict[str, Any]) -> bool:
        nonlocal dropped
        if dropped:
            return False
        dropped = True
        await realtime_server.drop()
        return True

    realtime_server.hooks["session.update"] = drop_once
    new = SessionConfig(turn_detection=None, instructions="after the drop")
    await asyncio.wait_for(client.update_session(new), 5)
    await recorder.wait(Reconnected)
    assert realtime_server.of_type("session.update")[-1]["session"]["instructions"] == (
        "after the drop"
    )
    await recorder.stop()


async def test_cancel_after_the_session_ended_sends_nothing(
    client: RealtimeClient, realtime_server: RealtimeServer
) -> None:
    """A barge-in on a closed client marks the reply cancelled and sends nothing."""
    realtime_server.script(ScriptedResponse(text="x", audio=silence(100), hold=asyncio.Event()))
    response = await client.create_response()
    async for event in response:
        if isinstance(event, AudioDelta):
            break
    await client.close()
    await client.cancel(50, response=response)
    assert response.cancelled
    assert realtime_server.of_type("response.cancel") == []
    assert realtime_server.of_type("conversation.item.truncate") == []


async def test_reconnect_gives_up(client: RealtimeClient, realtime_server: RealtimeServer) -> None:
    """When the server stays away, the client stops with a connection error."""
    recorder = Recorder(client)
    await realtime_server.refuse_connections()
    await realtime_server.drop()
    closed = await recorder.wait(Closed)
    assert isinstance(closed.error, RealtimeConnectionError)
    with pytest.raises(RealtimeConnectionError):
        await client.create_response()
    await client.append_audio(silence(10))  # dropped, no error
    assert [e async for e in client.events()] == [Closed(closed.error)]
    await recorder.stop()


async def test_fatal_error_event_stops(
    client: RealtimeClient, realtime_server: RealtimeServer
) -> None:
    """insufficient_quota mid-session stops without reconnecting."""
    recorder = Recorder(client)
    await realtime_server.session.error("insufficient_quota", "out of quota", None)
    closed = await recorder.wait(Closed)
    assert isinstance(closed.error, RealtimeQuotaError)
    assert realtime_server.connections == 1
    await recorder.stop()


async def test_fatal_close_code_stops(
    client: RealtimeClient, realtime_server: RealtimeServer
) -> None:
    """Close 4000 beta_api_shape_disabled is not retried."""
    recorder = Recorder(client)
    await realtime_server.close_connection(4000, "beta_api_shape_disabled")
    closed = await recorder.wait(Closed)
    assert isinstance(closed.error, RealtimeSessionClosed)
    assert closed.error.code == 4000
    await recorder.stop()


async def test_connect_auth_error(realtime_server: RealtimeServer) -> None:
    """A bad key fails connect() with RealtimeAuthError."""
    realtime_server.reject_auth = True
    rt = make_client(realtime_server)
    with pytest.raises(RealtimeAuthError):
        await rt.connect()
    with pytest.raises(RealtimeSessionClosed):
        await rt.add_user_text("nobody listens")


async def test_connect_stalled(realtime_server: RealtimeServer) -> None:
    """A server that never answers times out the setup."""
    realtime_server.stall = True
    rt = make_client(realtime_server, options=ClientOptions(open_timeout=0.1, ping_interval=None))
    with pytest.raises(RealtimeConnectionError, match="timed out"):
        await rt.connect()


async def test_session_update_rejected(realtime_server: RealtimeServer) -> None:
    """An error answering our session.update fails connect()."""

    async def reject(event: dict[str, Any]) -> bool:
        await realtime_server.session.error("invalid_value", "bad", event.get("event_id"))
        return True

    realtime_server.hooks["session.update"] = reject
    rt = make_client(realtime_server)
    with pytest.raises(RealtimeConnectionError):
        await rt.connect()


async def test_update_session_sends_diff(
    client: RealtimeClient, realtime_server: RealtimeServer
) -> None:
    """update_session sends only what changed; voice is held after audio was produced."""
    await client.update_session(MANUAL)
    assert len(realtime_server.of_type("session.update")) == 1
    await client.update_session(SessionConfig(turn_detection=None, instructions="new"))
    update = realtime_server.of_type("session.update")[1]
    assert update["session"] == {"type": "realtime", "instructions": "new"}
    realtime_server.script(ScriptedResponse(text="a", audio=silence(20)))
    await (await client.create_response()).wait()
    await client.update_session(SessionConfig(turn_detection=None, instructions="new", voice="ash"))
    assert len(realtime_server.of_type("session.update")) == 2
    assert client.config.voice == "ash"
    await client.update_session(
        SessionConfig(turn_detection=None, instructions="new", voice="ash", speed=1.2)
    )
    update = realtime_server.of_type("session.update")[2]
    assert update["session"] == {"type": "realtime", "audio": {"output": {"speed": 1.2}}}


async def test_update_session_error(
    client: RealtimeClient, realtime_server: RealtimeServer
) -> None:
    """A rejected session.update raises a RealtimeError."""

    async def reject(event: dict[str, Any]) -> bool:
        await realtime_server.session.error("invalid_value", "nope", event.get("event_id"))
        return True

    realtime_server.hooks["session.update"] = reject
    with pytest.raises(RealtimeError, match="nope"):
        await client.update_session(SessionConfig(turn_detection=None, instructions="x"))


async def test_renewal_between_responses(realtime_server: RealtimeServer) -> None:
    """Proactive renewal waits for the active response, then opens a new session."""
    timers: asyncio.Queue[None] = asyncio.Queue()
    delays: list[float] = []

    async def fake_sleep(delay: float) -> None:
        delays.append(delay)
        await timers.get()

    options = ClientOptions(session_limit=100.0, renew_margin=10.0, ping_interval=None)
    hold = asyncio.Event()
    realtime_server.script(ScriptedResponse(text="busy", hold=hold))
    rt = make_client(realtime_server, options=options, clock=lambda: 0.0, sleep=fake_sleep)
    await rt.connect()
    recorder = Recorder(rt)
    try:
        response = await rt.create_response()
        timers.put_nowait(None)  # the renewal deadline passes mid-response
        for _ in range(5):
            await asyncio.sleep(0)
        assert realtime_server.connections == 1
        hold.set()
        await response.wait()
        renewed = await recorder.wait(Reconnected)
        assert renewed.renewal
        assert realtime_server.connections == 2
        assert delays[0] == 90.0
        assert rt.session_limit == 100.0
    finally:
        await recorder.stop()
        await rt.close()


def test_session_limits() -> None:
    """OpenAI sessions last 60 minutes, Azure 30."""
    openai = RealtimeClient(RealtimeEndpoint(api_key="k", model="m"), MANUAL)
    azure = RealtimeClient(
        RealtimeEndpoint(api_key="k", model="m", base_url="https://x.openai.azure.com"), MANUAL
    )
    assert openai.session_limit == 3600
    assert azure.session_limit == 1800
    assert openai.active_response is None


async def test_close_cancels_tasks(realtime_server: RealtimeServer) -> None:
    """close() leaves no task behind."""
    before = len(asyncio.all_tasks())
    rt = make_client(realtime_server)
    await rt.connect()
    events = rt.events()
    consumer = asyncio.create_task(anext(events, None))
    await asyncio.sleep(0)
    await rt.close()
    assert isinstance(await consumer, Closed)
    await events.aclose()
    await rt.close()
    await asyncio.sleep(0)
    assert len(asyncio.all_tasks()) == before


async def test_beta_dialect(socket_enabled: None) -> None:
    """The beta dialect sends flat sessions and understands beta event names."""
    server = RealtimeServer(beta=True)
    await server.start()
    try:
        rt = make_client(server, MANUAL, dialect=Dialect.BETA)
        await rt.connect()
        assert server.session.session["modalities"] == ["text", "audio"]
        await rt.add_user_text("hello")
        server.script(ScriptedResponse(text="hi", audio=silence(20)), ScriptedResponse(text="t"))
        response = await (await rt.create_response()).wait()
        assert response.transcript == "hi"
        text = await (await rt.create_response(modality=Modality.TEXT)).wait()
        assert text.text == "t"
        assert server.response_params[1]["modalities"] == ["text"]
        await server.session_expired()
        await server.wait_for("conversation.item.create", 3)
        assert server.of_type("conversation.item.create")[2]["item"]["content"][0]["type"] == "text"
        await rt.close()
        assert not server.violations, server.violations
    finally:
        await server.stop()


async def test_unknown_and_malformed_events_ignored(
    client: RealtimeClient, realtime_server: RealtimeServer
) -> None:
    """Unknown events, junk frames and stray deltas are ignored."""
    ws = realtime_server.session.ws
    await ws.send("not json")
    await ws.send("[1, 2]")
    await realtime_server.send({"type": "rate_limits.updated", "rate_limits": []})
    await realtime_server.send(
        {
            "type": "response.output_audio.delta",
            "response_id": "resp_x",
            "item_id": "i",
            "output_index": 0,
            "content_index": 0,
            "delta": "AAAA",
        }
    )
    await realtime_server.send({"type": "response.done", "response": {"id": "resp_x"}})
    realtime_server.script(ScriptedResponse(text="still fine"))
    response = await (await client.create_response()).wait()
    assert response.transcript == "still fine"


async def test_events_text_delta_type(
    client: RealtimeClient, realtime_server: RealtimeServer
) -> None:
    """Text modality yields TextDelta events."""
    realtime_server.script(ScriptedResponse(text="abc"))
    response = await client.create_response(modality=Modality.TEXT)
    assert all([isinstance(e, TextDelta) async for e in response])


async def test_create_retries_after_active_response_error(
    client: RealtimeClient, realtime_server: RealtimeServer
) -> None:
    """conversation_already_has_active_response makes the client wait and send again."""
    calls = 0

    async def busy_once(event: dict[str, Any]) -> bool:
        nonlocal calls
        calls += 1
        if calls > 1:
            return False
        await realtime_server.session.error(
            "conversation_already_has_active_response", "busy", event["event_id"]
        )
        return True

    realtime_server.hooks["response.create"] = busy_once
    response = await (await client.create_response()).wait()
    assert response.status == "completed"
    assert len(realtime_server.of_type("response.create")) == 2


async def test_send_waits_for_reconnect(
    client: RealtimeClient, realtime_server: RealtimeServer
) -> None:
    """Calls made while reconnecting are sent on the new session."""
    await realtime_server.drop()
    await client.add_user_text("after the drop")
    item = (await realtime_server.wait_for("conversation.item.create"))["item"]
    assert item["content"][0]["text"] == "after the drop"
    assert realtime_server.connections == 2


async def test_pending_create_fails_on_drop_and_close(
    client: RealtimeClient, realtime_server: RealtimeServer
) -> None:
    """A response.create that never got an answer fails with the connection."""

    async def swallow(event: dict[str, Any]) -> bool:
        return True

    realtime_server.hooks["response.create"] = swallow
    pending = asyncio.create_task(client.create_response())
    await realtime_server.wait_for("response.create")
    await realtime_server.drop()
    with pytest.raises(RealtimeConnectionError):
        await pending
    await realtime_server.wait_connections(2)
    pending = asyncio.create_task(client.create_response())
    await realtime_server.wait_for("response.create", 2)
    await client.close()
    with pytest.raises(RealtimeSessionClosed):
        await pending


async def test_setup_ignores_noise(realtime_server: RealtimeServer) -> None:
    """Junk frames and unrelated events during setup are skipped."""

    async def noisy(event: dict[str, Any]) -> bool:
        await realtime_server.session.ws.send("junk")
        await realtime_server.send({"type": "rate_limits.updated", "rate_limits": []})
        return False

    realtime_server.hooks["session.update"] = noisy
    rt = make_client(realtime_server)
    await rt.connect()
    await rt.close()


async def test_stray_and_malformed_deltas(
    client: RealtimeClient, realtime_server: RealtimeServer
) -> None:
    """Input transcript deltas surface; bad base64 and stray deltas are dropped."""
    recorder = Recorder(client)
    await realtime_server.send(
        {
            "type": "conversation.item.input_audio_transcription.delta",
            "item_id": "item_u",
            "delta": "turn",
        }
    )
    realtime_server.script(ScriptedResponse(text="ok", hold=asyncio.Event()))
    response = await client.create_response()
    where = {"response_id": response.id, "item_id": "i", "output_index": 0, "content_index": 0}
    await realtime_server.send({"type": "response.output_audio.delta", **where, "delta": "%%%"})
    for kind in ("response.output_text.delta", "response.output_audio_transcript.delta"):
        await realtime_server.send(
            {"type": kind, **where, "response_id": "resp_other", "delta": "x"}
        )
    await realtime_server.send(
        {
            "type": "conversation.item.input_audio_transcription.completed",
            "item_id": "item_u",
            "content_index": 0,
            "transcript": "",
            "usage": {"type": "duration", "seconds": 1.0},
        }
    )
    transcript = await recorder.wait(InputTranscript)
    assert transcript.text == ""
    assert response.audio_ms == 0
    await client.cancel(0)
    await response.wait()
    await recorder.stop()


@pytest.mark.parametrize("action", ["update", "create"])
async def test_request_whose_send_fails_after_the_session_ended(
    realtime_server: RealtimeServer, action: str
) -> None:
    """A send that fails after a fatal error ended the session raises its own error, once.

    The waiter the fatal error failed is consumed, so asyncio reports no "Future exception was
    never retrieved". The late send failure is injected: a real one needs a socket that blocks.
    """
    rt = make_client(realtime_server)
    await rt.connect()
    unhandled: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, context: unhandled.append(context))
    kind = "session.update" if action == "update" else "response.create"

    async def quota(event: dict[str, Any]) -> bool:
        await realtime_server.session.error("insufficient_quota", "no quota", None)
        return True

    realtime_server.hooks[kind] = quota
    send_on = rt.link._send_on

    async def send_then_fail(ws: Any, event: dict[str, Any]) -> None:
        await send_on(ws, event)
        if event["type"] == kind:
            await rt.link._stopped.wait()  # the fatal error has failed the waiter by now
            raise RealtimeConnectionError("send failed")

    rt.link._send_on = send_then_fail  # type: ignore[method-assign]
    try:
        request = (
            rt.update_session(SessionConfig(turn_detection=None, instructions="new"))
            if action == "update"
            else rt.create_response()
        )
        with pytest.raises(RealtimeConnectionError, match="send failed"):
            await request
        gc.collect()
        await asyncio.sleep(0)
        assert unhandled == []
    finally:
        loop.set_exception_handler(None)
        await rt.close()
