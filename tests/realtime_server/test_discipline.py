"""The test server's discipline options send what the service (or LocalAI) sends."""

from __future__ import annotations

import base64
from email.utils import parsedate_to_datetime
import json
import time

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosedError, InvalidStatus

from realtime_server import RealtimeServer
from realtime_server.discipline import QUOTA_BODY, RATE_LIMIT_BODY, TOKEN_USAGE


def _ws_url(server: RealtimeServer) -> str:
    return server.url.replace("http", "ws") + "/realtime?model=gpt-realtime"


def _headers(server: RealtimeServer) -> dict[str, str]:
    return {"Authorization": f"Bearer {server.api_key}"}


async def test_a_skewed_service_clock_shows_in_expires_at_and_date(
    realtime_server: RealtimeServer,
) -> None:
    """expires_at and the upgrade's Date come from the service's (skewed) clock."""
    realtime_server.discipline.clock_skew = -3660.0
    async with connect(
        _ws_url(realtime_server), additional_headers=_headers(realtime_server)
    ) as ws:
        created = json.loads(await ws.recv())
        assert ws.response is not None
        date = parsedate_to_datetime(ws.response.headers["Date"]).timestamp()
    service_now = time.time() - 3660.0
    assert date == pytest.approx(service_now, abs=2)
    assert created["session"]["expires_at"] == pytest.approx(service_now + 3600, abs=2)


async def test_relative_expires_at(realtime_server: RealtimeServer) -> None:
    """A server that sends the seconds left."""
    realtime_server.discipline.relative_expires_at = True
    async with connect(
        _ws_url(realtime_server), additional_headers=_headers(realtime_server)
    ) as ws:
        created = json.loads(await ws.recv())
    assert created["session"]["expires_at"] == 3600


async def test_drop_after_open_closes_with_1011(realtime_server: RealtimeServer) -> None:
    """The session opens, then the service closes it with 1011."""
    realtime_server.discipline.drop_after_open = 0.05
    async with connect(
        _ws_url(realtime_server), additional_headers=_headers(realtime_server)
    ) as ws:
        assert json.loads(await ws.recv())["type"] == "session.created"
        with pytest.raises(ConnectionClosedError):
            await ws.recv()
    assert ws.close_code == 1011


@pytest.mark.parametrize(
    ("quota", "body", "retry_after"),
    [(False, RATE_LIMIT_BODY, "2"), (True, QUOTA_BODY, None)],
    ids=["rate-limited", "out-of-quota"],
)
async def test_429_bodies(
    realtime_server: RealtimeServer, quota: bool, body: dict[str, object], retry_after: str | None
) -> None:
    """429 with the service's JSON error body, and `retry-after` for the rate limit."""
    if quota:
        realtime_server.discipline.out_of_quota()
    else:
        realtime_server.discipline.rate_limited("2")
    with pytest.raises(InvalidStatus) as refused:
        await connect(_ws_url(realtime_server), additional_headers=_headers(realtime_server))
    response = refused.value.response
    assert response.status_code == 429
    assert json.loads(response.body) == body
    assert response.headers.get("retry-after") == retry_after


async def test_no_metadata_echo_and_transcription_usage(realtime_server: RealtimeServer) -> None:
    """LocalAI's response.created has no metadata; transcripts carry the usage set."""
    realtime_server.discipline.echo_metadata = False
    realtime_server.discipline.transcription_usage = TOKEN_USAGE
    realtime_server.user_transcript = "hi"
    async with connect(
        _ws_url(realtime_server), additional_headers=_headers(realtime_server)
    ) as ws:
        await ws.recv()
        create = {"type": "response.create", "response": {"metadata": {"k": "v"}}}
        await ws.send(json.dumps(create))
        while (event := json.loads(await ws.recv()))["type"] != "response.created":
            pass
        assert event["response"]["metadata"] is None
        while json.loads(await ws.recv())["type"] != "response.done":
            pass
        # 200 ms of 24 kHz PCM16: the service refuses to commit under 100 ms.
        audio = base64.b64encode(bytes(24 * 2 * 200)).decode()
        await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": audio}))
        await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
        kind = "conversation.item.input_audio_transcription.completed"
        while (event := json.loads(await ws.recv()))["type"] != kind:
            pass
    assert event["usage"] == TOKEN_USAGE
