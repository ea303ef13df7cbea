"""The client against the service's documented behaviour (issue 19), not a lenient server.

Each test drives a behaviour `realtime_server/` models after the real service (see
tests/realtime_server/test_server.py for the server side) and checks what the client does with it.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from custom_components.openai_realtime_voice.realtime import (
    ClientOptions,
    Closed,
    Dialect,
    InputTranscript,
    RealtimeClient,
    RealtimeEndpoint,
    RealtimeError,
    RealtimeQuotaError,
    RealtimeSessionClosed,
    Reconnected,
    ServerVad,
    SessionConfig,
    SpeechStarted,
    SpeechStopped,
    Transcription,
    async_probe,
)
from realtime_server import RealtimeServer, ScriptedCall, ScriptedResponse, silence, tone
from tests.realtime.client_helpers import FAST, MANUAL, BackoffSleeps, Recorder, make_client

VAD = SessionConfig(turn_detection=ServerVad(silence_duration_ms=200))


async def _connected(
    server: RealtimeServer, config: SessionConfig = MANUAL, **kwargs: Any
) -> RealtimeClient:
    client = make_client(server, config, **kwargs)
    await client.connect()
    return client


# -- 1. response.create rejections ---------------------------------------------------------------


async def test_rejected_create_fails_once_with_a_typed_error(
    realtime_server: RealtimeServer,
) -> None:
    """Any rejection but "already active" fails the request; nothing is resent."""
    client = await _connected(realtime_server)
    try:
        realtime_server.reject_responses.append(("invalid_value", "Invalid value: 'nobody'."))
        with pytest.raises(RealtimeError, match="invalid_value") as raised:
            await asyncio.wait_for(client.create_response(), 2)
        assert type(raised.value) is not RealtimeError or "nobody" in str(raised.value)
        assert len(realtime_server.of_type("response.create")) == 1
        # The session is fine: the next request works.
        response = await asyncio.wait_for(client.create_response(), 2)
        assert (await response.wait()).status == "completed"
    finally:
        await client.close()


async def test_rate_limited_create_is_retried_with_backoff(
    realtime_server: RealtimeServer,
) -> None:
    """`rate_limit_exceeded` on response.create is retried after a backoff, a bounded number."""
    sleep = BackoffSleeps()
    slept = sleep.slept

    client = await _connected(realtime_server, sleep=sleep)
    try:
        for _ in range(2):
            realtime_server.reject_responses.append(("rate_limit_exceeded", "Rate limit reached"))
        response = await asyncio.wait_for(client.create_response(), 2)
        assert (await response.wait()).status == "completed"
        assert len(realtime_server.of_type("response.create")) == 3
        assert len(slept) == 2
        assert slept[1] > slept[0] > 0
        for _ in range(FAST.create_retries + 1):
            realtime_server.reject_responses.append(("rate_limit_exceeded", "Rate limit reached"))
        with pytest.raises(RealtimeError, match="rate_limit_exceeded") as raised:
            await asyncio.wait_for(client.create_response(), 2)
        assert not isinstance(raised.value, RealtimeQuotaError)
        assert len(realtime_server.of_type("response.create")) == 3 + FAST.create_retries + 1
    finally:
        await client.close()


# -- 2. barge-in during an out-of-band reply -----------------------------------------------------


async def test_barge_in_cancels_an_out_of_band_reply_and_never_truncates_it(
    realtime_server: RealtimeServer,
) -> None:
    """Server VAD does not cancel out-of-band replies: the client cancels them itself."""
    realtime_server.script(ScriptedResponse(text="aside", audio=silence(100), hold=asyncio.Event()))
    client = await _connected(realtime_server, VAD)
    recorder = Recorder(client)
    try:
        response = await client.create_response(out_of_band=True)
        async for _event in response:
            if response.audio_ms >= 100:
                break
        await client.append_audio(tone(40))
        await recorder.wait(SpeechStarted)
        await client.cancel(60)
        await asyncio.wait_for(response.wait(), 2)
        assert response.status == "cancelled"
        cancel = await realtime_server.wait_for("response.cancel")
        assert cancel["response_id"] == response.id
        assert not realtime_server.of_type("conversation.item.truncate")
    finally:
        await recorder.stop()
        await client.close()


# -- 3. a server-VAD response is not the reply to our request ------------------------------------


@pytest.mark.parametrize("echo", [True, False], ids=["metadata-echoed", "metadata-dropped"])
async def test_a_vad_response_is_not_taken_for_our_request(
    realtime_server: RealtimeServer, echo: bool
) -> None:
    """Our response.create meets a VAD response: ours is answered by its own metadata, or,
    from a server that drops metadata (LocalAI), by the response after the one VAD owed."""
    realtime_server.discipline.echo_metadata = echo
    release = asyncio.Event()
    realtime_server.script(
        ScriptedResponse(text="vad reply", hold=release), ScriptedResponse(text="ours")
    )
    first = True

    async def vad_first(event: dict[str, Any]) -> bool:
        nonlocal first
        if first:  # a VAD turn ended just before our request arrived
            first = False
            session = realtime_server.session
            where = {"item_id": "item_vad"}
            await session.send(
                {"type": "input_audio_buffer.speech_started", "audio_start_ms": 0, **where}
            )
            await session.send(
                {"type": "input_audio_buffer.speech_stopped", "audio_end_ms": 400, **where}
            )
            await session._commit("item_vad")
            await session._start_response({})
        return False

    realtime_server.hooks["response.create"] = vad_first
    client = await _connected(realtime_server, VAD)
    try:
        request = asyncio.ensure_future(client.create_response(metadata={"who": "us"}))
        await realtime_server.wait_for("response.create")
        await asyncio.sleep(0.1)
        release.set()
        response = await asyncio.wait_for(request, 3)
        assert response.metadata is not None
        assert response.metadata["who"] == "us"
        assert len(realtime_server.of_type("response.create")) == 2  # resent once VAD's was done
        assert (await response.wait()).reply == "ours"
    finally:
        await client.close()


async def test_a_create_without_answer_ends(realtime_server: RealtimeServer) -> None:
    """A response.create the server never answers fails after the client's timeout."""

    async def swallow(event: dict[str, Any]) -> bool:
        return True

    realtime_server.hooks["response.create"] = swallow
    options = ClientOptions(
        open_timeout=2,
        backoff_base=0.001,
        backoff_max=0.002,
        ping_interval=None,
        response_timeout=0.2,
    )
    client = await _connected(realtime_server, options=options)
    try:
        with pytest.raises(RealtimeError):
            await asyncio.wait_for(client.create_response(), 2)
    finally:
        await client.close()


# -- 4. failed responses map their cause -------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "quota"),
    [("insufficient_quota", True), ("rate_limit_exceeded", False), ("server_error", False)],
)
async def test_failed_response_maps_its_cause(
    realtime_server: RealtimeServer, code: str, quota: bool
) -> None:
    """status_details.error goes through the error-event mapping (rate limits are not quota)."""
    realtime_server.script(
        ScriptedResponse(status="failed", error={"type": "requests", "code": code, "message": "no"})
    )
    client = await _connected(realtime_server)
    try:
        response = await (await client.create_response()).wait()
        assert response.status == "failed"
        assert isinstance(response.error, RealtimeError)
        assert isinstance(response.error, RealtimeQuotaError) is quota
        assert code in str(response.error)
    finally:
        await client.close()


# -- 5. barge-in truncates the item actually playing -------------------------------------------


async def test_cancel_truncates_the_reply_playing_not_the_follow_up(
    realtime_server: RealtimeServer,
) -> None:
    """The user hears reply A while tool follow-up B is generated: truncate A, cancel B."""
    realtime_server.script(
        ScriptedResponse(
            text="Checking.", audio=silence(200), calls=[ScriptedCall("f", "{}", "c1")]
        ),
        ScriptedResponse(text="It is on.", audio=silence(100), hold=asyncio.Event()),
    )
    client = await _connected(realtime_server)
    try:
        playing = await (await client.create_response()).wait()
        follow_up = await client.submit_tool_outputs({"c1": "{}"})
        assert follow_up is not None
        await client.cancel(120, response=playing)
        await asyncio.wait_for(follow_up.wait(), 2)
        assert follow_up.status == "cancelled"
        truncate = await realtime_server.wait_for("conversation.item.truncate")
        assert truncate["item_id"] == playing.audio_item_id
        assert truncate["audio_end_ms"] == 120
    finally:
        await client.close()


# -- 6. late transcripts keep their place ------------------------------------------------------


async def test_late_transcript_keeps_its_turn_in_the_replay(
    realtime_server: RealtimeServer,
) -> None:
    """A transcript that arrives after the reply is replayed before it (by item id)."""
    realtime_server.user_transcript = "turn on the light"
    realtime_server.transcript_after_response = True
    realtime_server.script(ScriptedResponse(text="Done.", audio=silence(20)))
    config = SessionConfig(
        turn_detection=ServerVad(silence_duration_ms=200), transcription=Transcription()
    )
    client = await _connected(realtime_server, config)
    recorder = Recorder(client)
    try:
        for pcm in (tone(200), silence(300)):
            await client.append_audio(pcm)
        await recorder.wait(InputTranscript)
        await realtime_server.drop()
        await recorder.wait(Reconnected)
        await realtime_server.wait_for("conversation.item.create", 2)
        replayed = [e["item"] for e in realtime_server.of_type("conversation.item.create")]
        assert [(i["role"], i["content"][0]["text"]) for i in replayed] == [
            ("user", "turn on the light"),
            ("assistant", "Done."),
        ]
    finally:
        await recorder.stop()
        await client.close()


# -- 7. fatal errors before the close ------------------------------------------------------------


async def test_fatal_error_event_mid_session_stops(realtime_server: RealtimeServer) -> None:
    """A fatal error event followed by a normal close is not retried."""
    client = await _connected(realtime_server)
    recorder = Recorder(client)
    try:
        await realtime_server.session.fatal("model_not_found", "no such model", 1000, None)
        closed = await asyncio.wait_for(recorder.wait(Closed), 2)
        assert isinstance(closed.error, RealtimeSessionClosed)
        assert realtime_server.connections == 1
    finally:
        await recorder.stop()
        await client.close()


async def test_probe_sends_a_session_update(realtime_server: RealtimeServer) -> None:
    """The probe configures a session: the beta dialect against the GA service fails."""
    endpoint = RealtimeEndpoint(
        api_key=realtime_server.api_key, model="gpt-realtime", base_url=realtime_server.url
    )
    await async_probe(endpoint, timeout=2)
    assert len(realtime_server.of_type("session.update")) == 1
    beta = RealtimeEndpoint(
        api_key=realtime_server.api_key,
        model="gpt-realtime",
        base_url=realtime_server.url,
        dialect=Dialect.BETA,
    )
    with pytest.raises(RealtimeSessionClosed, match="missing_required_parameter"):
        await async_probe(beta, timeout=2)


# -- 8. renewal from expires_at, never mid-utterance --------------------------------------------


async def test_renewal_uses_expires_at(realtime_server: RealtimeServer) -> None:
    """The session is renewed before the service's `expires_at`, not after it expired."""
    realtime_server.session_lifetime = 2.5
    options = ClientOptions(open_timeout=2, ping_interval=None, renew_margin=1.5)
    client = await _connected(realtime_server, options=options)
    recorder = Recorder(client)
    try:
        reconnected = await asyncio.wait_for(recorder.wait(Reconnected), 4)
        assert reconnected.renewal
    finally:
        await recorder.stop()
        await client.close()


async def test_renewal_waits_for_the_end_of_the_users_turn(
    realtime_server: RealtimeServer,
) -> None:
    """A renewal due while the user speaks waits for the turn's end (up to expires_at)."""
    realtime_server.session_lifetime = 3.0
    options = ClientOptions(open_timeout=2, ping_interval=None, renew_margin=2.5)
    client = await _connected(realtime_server, VAD, options=options)
    recorder = Recorder(client)
    try:
        await client.append_audio(tone(100))
        await recorder.wait(SpeechStarted)
        for _ in range(8):  # keep talking past the renewal time
            await asyncio.sleep(0.1)
            await client.append_audio(tone(100))
        assert realtime_server.connections == 1
        await client.append_audio(silence(300))
        await recorder.wait(SpeechStopped)
        reconnected = await asyncio.wait_for(recorder.wait(Reconnected), 2)
        assert reconnected.renewal
        assert realtime_server.responses_done == 1  # the turn's reply was not cut
    finally:
        await recorder.stop()
        await client.close()


async def test_renewal_waits_for_a_push_to_talk_turn(realtime_server: RealtimeServer) -> None:
    """Manual turns (no turn detection): a renewal due while the user holds the button waits
    until the turn is committed, so the whole utterance reaches one session (issue 28 item 6:
    700 of 1,500 ms reached the new session before)."""
    realtime_server.session_lifetime = 3.0
    options = ClientOptions(open_timeout=2, ping_interval=None, renew_margin=2.5)
    client = await _connected(realtime_server, options=options)
    recorder = Recorder(client)
    try:
        for _ in range(15):  # 1.5 s of speech, past the renewal time (0.75 s after opening)
            await client.append_audio(tone(100))
            await asyncio.sleep(0.1)
        assert realtime_server.connections == 1
        assert len(realtime_server.of_type("input_audio_buffer.append")) == 15
        await client.commit_audio()
        reconnected = await asyncio.wait_for(recorder.wait(Reconnected), 3)
        assert reconnected.renewal
    finally:
        await recorder.stop()
        await client.close()


# -- 9. cancel after the end -------------------------------------------------------------------


async def test_cancel_after_done_keeps_the_history_single(
    realtime_server: RealtimeServer,
) -> None:
    """Cutting a finished reply replays it at most once (it was cut: not at all)."""
    realtime_server.script(ScriptedResponse(text="A long reply.", audio=silence(200)))
    client = await _connected(realtime_server)
    recorder = Recorder(client)
    try:
        await client.add_user_text("Tell me")
        await (await client.create_response()).wait()
        await client.cancel(50)
        await client.cancel(60)
        await realtime_server.drop()
        await recorder.wait(Reconnected)
        await realtime_server.wait_for("conversation.item.create", 2)
        await asyncio.sleep(0.05)
        replayed = [e["item"] for e in realtime_server.of_type("conversation.item.create")[1:]]
        assert [(i["role"], i["content"][0]["text"]) for i in replayed] == [("user", "Tell me")]
    finally:
        await recorder.stop()
        await client.close()


# -- issue 18 item 10: bounded messages -------------------------------------------------------


async def test_oversized_server_message_is_refused(realtime_server: RealtimeServer) -> None:
    """A server message above the size bound closes the connection (1009), never buffered."""
    client = await _connected(realtime_server)
    try:
        session = realtime_server.session
        await session.ws.send(json.dumps({"type": "x", "blob": "a" * (16 * 1024 * 1024)}))
        await asyncio.wait_for(session.ws.wait_closed(), 2)
        assert session.ws.close_code == 1009
    finally:
        await client.close()
