"""Tests for opening connections and async_probe against the local Realtime server."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from custom_components.openai_realtime_voice.realtime import (
    AuthStyle,
    RealtimeAuthError,
    RealtimeConnectionError,
    RealtimeEndpoint,
    RealtimeQuotaError,
    RealtimeRateLimitError,
    RealtimeSessionClosed,
    async_probe,
    redact_url,
)
from custom_components.openai_realtime_voice.realtime.connection import error_for_close
from realtime_server import RealtimeServer, closed_port_url


def _endpoint(server: RealtimeServer, **kwargs: object) -> RealtimeEndpoint:
    options: dict[str, object] = {"api_key": server.api_key, "model": "gpt-realtime"}
    options.update(kwargs)
    return RealtimeEndpoint(base_url=server.url, **options)  # type: ignore[arg-type]


async def test_probe_ok(realtime_server: RealtimeServer) -> None:
    """A good key reaches session.created."""
    await async_probe(_endpoint(realtime_server))
    assert realtime_server.connections == 1


async def test_probe_api_key_header(realtime_server: RealtimeServer) -> None:
    """Azure-style `api-key` auth is accepted too."""
    await async_probe(_endpoint(realtime_server, auth_style=AuthStyle.API_KEY))


async def test_probe_wrong_key(realtime_server: RealtimeServer) -> None:
    """HTTP 401 at handshake is an auth error whose text hides the key."""
    endpoint = _endpoint(realtime_server, api_key="sk-wrong-key-0000000000")
    with pytest.raises(RealtimeAuthError) as info:
        await async_probe(endpoint)
    assert "sk-wrong" not in str(info.value)


async def test_probe_rejected_auth(realtime_server: RealtimeServer) -> None:
    """The server can be told to reject every key."""
    realtime_server.reject_auth = True
    with pytest.raises(RealtimeAuthError):
        await async_probe(_endpoint(realtime_server))


@pytest.mark.parametrize(
    ("status", "error"),
    [(403, RealtimeAuthError), (429, RealtimeRateLimitError), (500, RealtimeConnectionError)],
)
async def test_probe_handshake_status(
    realtime_server: RealtimeServer, status: int, error: type[Exception]
) -> None:
    """Handshake HTTP statuses map to typed errors."""
    realtime_server.handshake_status = status
    with pytest.raises(error):
        await async_probe(_endpoint(realtime_server))


async def test_probe_refused(socket_enabled: None) -> None:
    """A closed port is a retryable connection error."""
    endpoint = RealtimeEndpoint(api_key="k", model="m", base_url=closed_port_url())
    with pytest.raises(RealtimeConnectionError, match="cannot connect"):
        await async_probe(endpoint)


async def test_probe_refused_after_stop(realtime_server: RealtimeServer) -> None:
    """The server can stop listening while keeping its URL."""
    await realtime_server.refuse_connections()
    with pytest.raises(RealtimeConnectionError):
        await async_probe(_endpoint(realtime_server))


async def test_probe_stalled(realtime_server: RealtimeServer) -> None:
    """A server that never sends session.created times out."""
    realtime_server.stall = True
    with pytest.raises(RealtimeConnectionError, match=r"session\.created"):
        await async_probe(_endpoint(realtime_server), timeout=0.2)


@pytest.mark.parametrize(
    ("code", "error"),
    [
        ("invalid_api_key", RealtimeAuthError),
        ("insufficient_quota", RealtimeQuotaError),
        ("billing_hard_limit_reached", RealtimeQuotaError),
        ("server_error", RealtimeConnectionError),
    ],
)
async def test_probe_error_event(
    realtime_server: RealtimeServer, code: str, error: type[Exception]
) -> None:
    """An error event before session.created maps to a typed error; the key is redacted."""
    realtime_server.on_connect_error = {
        "type": "invalid_request_error",
        "code": code,
        "message": f"Incorrect API key provided: {realtime_server.api_key}",
    }
    with pytest.raises(error) as info:
        await async_probe(_endpoint(realtime_server))
    assert realtime_server.api_key not in str(info.value)
    assert realtime_server.api_key[-8:] not in str(info.value)


async def test_probe_beta_shape_disabled(realtime_server: RealtimeServer) -> None:
    """Close 4000 beta_api_shape_disabled is fatal, not retryable."""
    realtime_server.close_on_connect = (4000, "beta_api_shape_disabled")
    with pytest.raises(RealtimeSessionClosed) as info:
        await async_probe(_endpoint(realtime_server))
    assert info.value.code == 4000
    assert info.value.reason == "beta_api_shape_disabled"


async def test_probe_dropped(realtime_server: RealtimeServer) -> None:
    """A connection closed before session.created is a connection error."""
    realtime_server.close_on_connect = (1011, "internal error")
    with pytest.raises(RealtimeConnectionError):
        await async_probe(_endpoint(realtime_server))


@pytest.mark.parametrize(
    ("code", "reason", "error"),
    [
        (1001, "going away", RealtimeConnectionError),
        (None, "", RealtimeConnectionError),
        (1008, "invalid_api_key", RealtimeAuthError),
        (4000, "beta_api_shape_disabled", RealtimeSessionClosed),
        (4321, "custom", RealtimeSessionClosed),
    ],
)
def test_error_for_close(code: int | None, reason: str, error: type[Exception]) -> None:
    """Close frames map to retryable or fatal errors."""
    assert isinstance(error_for_close(code, reason), error)


@pytest.mark.parametrize(("frame", "match"), [("not json", "invalid JSON"), ("[1]", "non-object")])
async def test_probe_refuses_garbage_after_the_update(
    realtime_server: RealtimeServer, frame: str, match: str
) -> None:
    """A frame that is no event while the probe waits for session.updated is an error."""

    async def garbage(event: dict[str, Any]) -> bool:
        await realtime_server.session.ws.send(frame)
        return True

    realtime_server.hooks["session.update"] = garbage
    with pytest.raises(RealtimeConnectionError, match=match):
        await async_probe(_endpoint(realtime_server), timeout=2)


async def test_probe_waits_past_other_events(realtime_server: RealtimeServer) -> None:
    """Events before session.updated (rate limits, say) are skipped."""

    async def noise(event: dict[str, Any]) -> bool:
        await realtime_server.send({"type": "rate_limits.updated", "rate_limits": []})
        return False

    realtime_server.hooks["session.update"] = noise
    await async_probe(_endpoint(realtime_server), timeout=2)
    assert len(realtime_server.of_type("session.update")) == 1


async def test_debug_log_hides_url_credentials(
    realtime_server: RealtimeServer, caplog: pytest.LogCaptureFixture
) -> None:
    """User info and query values of the base URL never reach the debug log."""
    endpoint = RealtimeEndpoint(
        api_key=realtime_server.api_key,
        model="gpt-realtime",
        base_url=f"{realtime_server.url}?sig=QUERY-SECRET-9",
    )
    # websockets would send user info as a second Authorization header: try it where the
    # connection is refused anyway.
    with_user = RealtimeEndpoint(
        api_key=realtime_server.api_key,
        model="gpt-realtime",
        base_url=closed_port_url().replace("http://", "http://admin:PASSWORD-7@"),
    )
    with caplog.at_level(logging.DEBUG, logger="custom_components.openai_realtime_voice"):
        await async_probe(endpoint)
        with pytest.raises(RealtimeConnectionError):
            await async_probe(with_user)
    assert "Connecting to ws://***@127.0.0.1:" in caplog.text
    assert "GET /v1/realtime?sig=***&model=gpt-realtime" in caplog.text
    for secret in ("PASSWORD-7", "admin", "QUERY-SECRET-9"):
        assert secret not in caplog.text


def test_redact_url() -> None:
    """Scheme, host, port, path and query names stay; user info and secret values go."""
    assert redact_url("https://u:p@Example.com:8443/v1?api-key=K&model=m&api-version=2") == (
        "https://***@example.com:8443/v1?api-key=***&model=m&api-version=2"
    )
    assert redact_url("wss://[::1]:9/x?sig=abc") == "wss://[::1]:9/x?sig=***"
    assert redact_url("http://host/v1") == "http://host/v1"
    assert redact_url("http://host:port") == "***"
