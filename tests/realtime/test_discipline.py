"""Session discipline (issue 28): no session storms, honest refusals, no waits for nothing.

Each test runs the real client against `realtime_server/` with one of the
misbehaviours of `realtime_server/discipline.py` switched on.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any
from unittest.mock import ANY

import pytest

from custom_components.openai_realtime_voice.realtime import (
    ClientOptions,
    Closed,
    InputTranscript,
    RealtimeClient,
    RealtimeConnectionError,
    RealtimeInvalidEndpointError,
    RealtimeQuotaError,
    RealtimeRateLimitError,
    RealtimeRequestError,
    Reconnected,
    ResponseDone,
    ServerVad,
    SessionConfig,
    async_probe,
)
from custom_components.openai_realtime_voice.realtime.lifetime import expires_in, service_time
from realtime_server import API_KEY, RealtimeServer, ScriptedResponse, silence, tone
from realtime_server.discipline import TOKEN_USAGE
from tests.manual_clock import ManualClock
from tests.realtime.client_helpers import FAST, BackoffSleeps, Recorder, make_client

VAD = SessionConfig(turn_detection=ServerVad(silence_duration_ms=200))
HOUR = 3600.0


def _manual(server: RealtimeServer, clock: ManualClock) -> RealtimeClient:
    """A client whose session clock and timers run on `clock` (the service's stay real)."""

    async def sleep(delay: float) -> None:
        await clock.sleep_until(clock.now() + delay)

    return make_client(server, VAD, clock=clock.now, sleep=sleep)


async def _typed_and_spoken_turns(client: RealtimeClient, recorder: Recorder) -> None:
    """One typed and one spoken turn, each answered completely."""
    await client.add_user_text("What time is it?")
    typed = await asyncio.wait_for(client.create_response(), 2)
    assert (await asyncio.wait_for(typed.wait(), 2)).status == "completed"
    for pcm in (tone(200), silence(300)):
        await client.append_audio(pcm)
    spoken = (await asyncio.wait_for(recorder.wait(ResponseDone, 2), 2)).response
    assert spoken.status == "completed"
    assert spoken is not typed


# -- item 1: renewal tolerates any expires_at ----------------------------------------------------


@pytest.mark.parametrize(
    ("skew", "relative", "lifetime"),
    [
        (-61 * 60.0, False, HOUR),  # host clock 61 minutes fast: expires_at is in the past
        (-59 * 60.0, False, HOUR),  # 59 minutes fast: the service's Date header tells
        (0.0, True, HOUR),  # a server sending the seconds left instead of a time
        (0.0, False, 10 * 365 * 86400.0),  # an absurd expiry ten years ahead
    ],
    ids=["clock-61-min-fast", "clock-59-min-fast", "relative", "absurd"],
)
async def test_any_expires_at_opens_no_session_storm(
    realtime_server: RealtimeServer, skew: float, relative: bool, lifetime: float
) -> None:
    """Typed and spoken turns are answered; 20 s later one session is still all there is."""
    realtime_server.discipline.clock_skew = skew
    realtime_server.discipline.relative_expires_at = relative
    realtime_server.session_lifetime = lifetime
    clock = ManualClock()
    client = _manual(realtime_server, clock)
    await client.connect()
    recorder = Recorder(client)
    try:
        await _typed_and_spoken_turns(client, recorder)
        await clock.advance(20)
        assert realtime_server.connections == 1
        # Renewed once, near the known 60-minute limit, not at once.
        assert HOUR - 1 <= client.session_limit <= HOUR
        await clock.advance(HOUR - 120 - 20)
        await asyncio.wait_for(realtime_server.wait_connections(2), 2)
        await clock.advance(20)
        assert realtime_server.connections == 2
    finally:
        await recorder.stop()
        await client.close()


@pytest.mark.parametrize(
    ("expires_at", "service_now", "left"),
    [
        (None, None, None),
        (1_000_000 + HOUR, 1_000_000.0, HOUR),  # the service's own clock
        (1_000_000 + 30.0, 1_000_000.0, 30.0),  # a short session is believed
        (1_000_000 - 60.0, 1_000_000.0, None),  # in the past
        (1_000_000 + 3 * HOUR, 1_000_000.0, None),  # beyond the known limit
        (1800.0, 1_000_000.0, 1800.0),  # seconds left, not a time
        (-5.0, 1_000_000.0, None),
    ],
)
def test_expires_in_is_checked_against_the_known_limit(
    expires_at: float | None, service_now: float | None, left: float | None
) -> None:
    """Only an expiry within the known limit from the service's own time is used."""
    assert expires_in(expires_at, HOUR, service_now) == left


def test_service_time_reads_the_date_header() -> None:
    """The upgrade's `Date` is the service's clock; a bad or missing one gives None."""
    assert service_time({"Date": "Sun, 06 Nov 1994 08:49:37 GMT"}) == 784111777.0
    assert service_time({"Date": "yesterday"}) is None
    assert service_time({}) is None
    assert service_time(None) is None


# -- item 2: backoff until a session has proven itself --------------------------------------------

# The production backoff (0.5 s doubling to 8 s) and window (30 s) at a tenth of the time, so the
# bound stays "sessions per window": the service drops each session 300 ms (here 30 ms) after it
# opened. Retries are not capped here: only the backoff may bound the rate.
TENTH = ClientOptions(
    open_timeout=2, ping_interval=None, backoff_base=0.05, backoff_max=0.8, reconnect_attempts=1000
)


async def test_sessions_dropped_after_opening_are_backed_off(
    realtime_server: RealtimeServer,
) -> None:
    """Every session dropped (1011) 300 ms after it opens: at most 10 sessions in 30 s."""
    client = make_client(realtime_server, options=TENTH)
    await client.connect()
    recorder = Recorder(client)
    realtime_server.discipline.drop_after_open = 0.03  # from the next session on (not the setup)
    await realtime_server.close_connection(1011, "internal error")
    try:
        await asyncio.sleep(3.0)  # the measured window: what happens in it is the result
        opened = len(realtime_server.discipline.opened)
        assert 4 <= opened <= 10, f"{opened} sessions in the window"
        assert not any(isinstance(e, Closed) for e in recorder.events)
    finally:
        await recorder.stop()
        await client.close()


async def test_a_session_that_answered_a_turn_reconnects_at_once(
    realtime_server: RealtimeServer,
) -> None:
    """A drop after a session answered a turn is not a failure: no backoff before the next."""
    sleep = BackoffSleeps()
    slept = sleep.slept

    client = make_client(realtime_server, options=FAST, sleep=sleep)
    await client.connect()
    recorder = Recorder(client)
    try:
        assert not client.proven
        await (await client.create_response()).wait()
        assert client.proven
        await realtime_server.drop()
        await asyncio.wait_for(recorder.wait(Reconnected), 2)
        assert slept == []
        assert not client.proven
        # The new session answered nothing: its drop is backed off.
        await realtime_server.drop()
        await asyncio.wait_for(recorder.wait(Reconnected, 2), 2)
        assert len(slept) == 1
    finally:
        await recorder.stop()
        await client.close()


async def test_unproven_sessions_use_up_the_retries(realtime_server: RealtimeServer) -> None:
    """Sessions that keep dropping at once count as failed tries: the client stops."""
    client = make_client(realtime_server, options=FAST)
    await client.connect()
    recorder = Recorder(client)
    realtime_server.discipline.drop_after_open = 0.01  # from the next session on
    await realtime_server.close_connection(1011, "internal error")
    try:
        closed = await asyncio.wait_for(recorder.wait(Closed), 5)
        assert isinstance(closed.error, RealtimeConnectionError)
        assert "1011" in str(closed.error)
        assert realtime_server.connections == FAST.reconnect_attempts
    finally:
        await recorder.stop()
        await client.close()


# -- item 10: servers that do not echo metadata ----------------------------------------------------


async def test_a_server_without_metadata_echo_answers_typed_turns(
    realtime_server: RealtimeServer,
) -> None:
    """LocalAI drops `metadata`: the next response.created after our request is ours."""
    realtime_server.discipline.echo_metadata = False
    client = make_client(realtime_server, VAD)
    await client.connect()
    loop = asyncio.get_running_loop()
    try:
        for text in ("Hello", "And now?"):
            await client.add_user_text(text)
            asked = loop.time()
            response = await asyncio.wait_for(client.create_response(metadata={"who": "us"}), 1)
            assert loop.time() - asked < 0.5
            assert response.metadata == {"who": "us", "client_event_id": ANY}
            assert (await asyncio.wait_for(response.wait(), 2)).status == "completed"
    finally:
        await client.close()


# -- item 3: HTTP 429 at the handshake: rate limit or quota ---------------------------------------


async def test_a_429_handshake_tells_rate_limit_from_quota(realtime_server: RealtimeServer) -> None:
    """The body's code decides: `rate_limit_exceeded` is retryable, `insufficient_quota` is not."""
    endpoint = make_client(realtime_server).endpoint
    realtime_server.discipline.rate_limited(retry_after="2")
    with pytest.raises(RealtimeRateLimitError, match="rate_limit_exceeded") as limited:
        await async_probe(endpoint, timeout=2)
    assert limited.value.retry_after == 2.0
    assert not isinstance(limited.value, RealtimeQuotaError)
    realtime_server.discipline.out_of_quota()
    with pytest.raises(RealtimeQuotaError, match="insufficient_quota"):
        await async_probe(endpoint, timeout=2)
    # A 429 without an OpenAI error body is what the status says: too many requests.
    realtime_server.discipline.handshake_429 = None
    realtime_server.handshake_status = 429
    with pytest.raises(RealtimeRateLimitError) as bare:
        await async_probe(endpoint, timeout=2)
    assert bare.value.retry_after is None
    assert API_KEY not in str(bare.value)


@pytest.mark.parametrize(
    ("retry_after", "waited"),
    [("2", 2.0), ("3600", 60.0), ("soon", None)],
    ids=["seconds", "capped", "unreadable"],
)
async def test_a_rate_limited_reconnect_waits_and_recovers(
    realtime_server: RealtimeServer, retry_after: str, waited: float | None
) -> None:
    """A live client rate limited at the handshake backs off (retry-after, bounded) and comes
    back; no quota error, no stop."""
    slept: list[float] = []

    async def sleep(delay: float) -> None:
        if delay > 300:  # the renewal timer: not part of this test
            await asyncio.Event().wait()
        slept.append(delay)
        if len(slept) == 2:
            realtime_server.discipline.handshake_429 = None  # the limit resets

    client = make_client(realtime_server, options=FAST, sleep=sleep)
    await client.connect()
    recorder = Recorder(client)
    try:
        await (await client.create_response()).wait()  # a proven session
        realtime_server.discipline.rate_limited(retry_after)
        await realtime_server.drop()
        await asyncio.wait_for(recorder.wait(Reconnected), 2)
        assert not any(isinstance(e, Closed) for e in recorder.events)
        assert len(slept) == 2
        if waited is not None:
            assert slept[0] == waited
        else:
            assert slept[0] <= FAST.backoff_max
        assert client.connected
    finally:
        await recorder.stop()
        await client.close()


# -- issue 29 item 10: the API key stays with the base URL's origin -------------------------------


async def test_the_key_does_not_follow_a_redirect_to_another_origin(
    realtime_server: RealtimeServer,
) -> None:
    """A 302 to another host:port is refused before the key goes there; same origin works."""
    other = RealtimeServer()
    await other.start()
    try:
        elsewhere = other.url.replace("http", "ws") + "/realtime?model=gpt-realtime"
        realtime_server.discipline.redirect_to = elsewhere
        client = make_client(realtime_server)
        with pytest.raises(RealtimeInvalidEndpointError, match="redirected") as raised:
            await client.connect()
        await client.close()
        with pytest.raises(RealtimeInvalidEndpointError, match="another origin"):
            await async_probe(client.endpoint, timeout=2)
        assert other.discipline.handshakes == []
        assert API_KEY not in str(raised.value)
        assert other.url.removeprefix("http://").removesuffix("/v1") in str(raised.value)
        # A redirect within the origin (another path on the same host and port) is followed.
        same = realtime_server.url.replace("http", "ws") + "/moved/realtime?model=gpt-realtime"
        realtime_server.discipline.redirect_to = same
        client = make_client(realtime_server)
        await asyncio.wait_for(client.connect(), 2)
        assert client.connected
        await client.close()
    finally:
        await other.stop()


# -- item 9: bounded waits, transcription usage ---------------------------------------------------

QUICK = ClientOptions(open_timeout=2, ping_interval=None, response_timeout=0.3)


async def test_an_unanswered_session_update_times_out(realtime_server: RealtimeServer) -> None:
    """A session.update the server never answers fails with a clear error, not a hang."""

    async def swallow(event: dict[str, Any]) -> bool:
        return True

    client = make_client(realtime_server, options=QUICK)
    await client.connect()
    realtime_server.hooks["session.update"] = swallow
    try:
        with pytest.raises(RealtimeRequestError, match=r"no session.updated within 0.3 s"):
            await asyncio.wait_for(client.update_session(VAD), 2)
        del realtime_server.hooks["session.update"]
        await asyncio.wait_for(client.update_session(SessionConfig(instructions="x")), 2)
    finally:
        await client.close()


async def test_a_response_that_never_ends_does_not_block_the_next_for_ever(
    realtime_server: RealtimeServer,
) -> None:
    """create_response waits for the response in progress only so long."""
    hold = asyncio.Event()
    realtime_server.script(ScriptedResponse(text="stuck", hold=hold))
    client = make_client(realtime_server, options=replace(QUICK, busy_timeout=0.3))
    await client.connect()
    try:
        await client.create_response()
        with pytest.raises(RealtimeRequestError, match=r"still in progress after 0.3 s"):
            await asyncio.wait_for(client.create_response(), 2)
        assert len(realtime_server.of_type("response.create")) == 1
        hold.set()
        await asyncio.wait_for(client.create_response(), 2)
    finally:
        await client.close()


async def test_input_transcripts_carry_their_usage(realtime_server: RealtimeServer) -> None:
    """`conversation.item.input_audio_transcription.completed` has the transcription's usage."""
    realtime_server.user_transcript = "hello"
    realtime_server.discipline.transcription_usage = TOKEN_USAGE
    client = make_client(realtime_server, VAD)
    await client.connect()
    recorder = Recorder(client)
    try:
        for pcm in (tone(200), silence(300)):
            await client.append_audio(pcm)
        transcript = await asyncio.wait_for(recorder.wait(InputTranscript), 2)
        assert transcript.text == "hello"
        assert transcript.usage == TOKEN_USAGE
    finally:
        await recorder.stop()
        await client.close()


async def test_short_sessions_are_renewed_at_a_bounded_pace_for_good(
    realtime_server: RealtimeServer,
) -> None:
    """A server whose sessions live 0.3 s (a plausible expires_at): each is renewed once, the
    pace is the backoff's, and the client never gives up on sessions that ran their course."""
    realtime_server.session_lifetime = 0.3
    client = make_client(realtime_server, options=replace(TENTH, reconnect_attempts=3))
    await client.connect()
    recorder = Recorder(client)
    try:
        await asyncio.sleep(3.0)  # the measured window
        opened = len(realtime_server.discipline.opened)
        assert 4 <= opened <= 10, f"{opened} sessions in the window"
        assert not any(isinstance(e, Closed) for e in recorder.events)
    finally:
        await recorder.stop()
        await client.close()
