"""Tests for RealtimeEndpoint URL derivation and auth headers."""

from __future__ import annotations

import pytest

from custom_components.openai_realtime_voice.realtime import (
    AuthStyle,
    Dialect,
    RealtimeEndpoint,
    RealtimeError,
    RealtimeInvalidEndpointError,
)

KEY = "sk-secret-key-1234567890"


@pytest.mark.parametrize(
    ("base_url", "expected"),
    [
        (None, "wss://api.openai.com/v1/realtime?model=gpt-realtime"),
        ("https://api.openai.com/v1", "wss://api.openai.com/v1/realtime?model=gpt-realtime"),
        ("https://api.openai.com/v1/", "wss://api.openai.com/v1/realtime?model=gpt-realtime"),
        ("http://localhost:8080", "ws://localhost:8080/v1/realtime?model=gpt-realtime"),
        ("ws://localhost:8080/v1", "ws://localhost:8080/v1/realtime?model=gpt-realtime"),
        ("wss://host/v1/realtime", "wss://host/v1/realtime?model=gpt-realtime"),
        ("http://host/proxy", "ws://host/proxy/v1/realtime?model=gpt-realtime"),
        (
            "https://x.openai.azure.com/openai/v1",
            "wss://x.openai.azure.com/openai/v1/realtime?model=gpt-realtime",
        ),
        (
            "https://x.openai.azure.com",
            "wss://x.openai.azure.com/openai/v1/realtime?model=gpt-realtime",
        ),
        (
            "https://x.openai.azure.com/openai",
            "wss://x.openai.azure.com/openai/v1/realtime?model=gpt-realtime",
        ),
        ("https://host/v1?tenant=a", "wss://host/v1/realtime?tenant=a&model=gpt-realtime"),
    ],
)
def test_url(base_url: str | None, expected: str) -> None:
    """Base URLs in every accepted form derive the Realtime WebSocket URL."""
    endpoint = RealtimeEndpoint(api_key=KEY, model="gpt-realtime", base_url=base_url)
    assert endpoint.url() == expected


def test_model_is_quoted() -> None:
    """Deployment names with odd characters stay one query value."""
    endpoint = RealtimeEndpoint(api_key=KEY, model="my deploy&x")
    assert endpoint.url().endswith("?model=my%20deploy%26x")


@pytest.mark.parametrize(
    "base_url", ["ftp://host/v1", "localhost:8080", "http://", "http://host:99999/v1", "  "]
)
def test_invalid_base_url(base_url: str) -> None:
    """Unusable base URLs raise the package's typed error (a ValueError too)."""
    with pytest.raises(RealtimeInvalidEndpointError) as info:
        RealtimeEndpoint(api_key=KEY, model="m", base_url=base_url)
    assert isinstance(info.value, RealtimeError)
    assert isinstance(info.value, ValueError)


def test_empty_model() -> None:
    """A model is required."""
    with pytest.raises(RealtimeInvalidEndpointError):
        RealtimeEndpoint(api_key=KEY, model=" ")


def test_repr_hides_key() -> None:
    """The API key never shows up in repr()."""
    endpoint = RealtimeEndpoint(api_key=KEY, model="m", dialect=Dialect.BETA)
    assert KEY not in repr(endpoint)
    assert "beta" in repr(endpoint)


def test_headers() -> None:
    """Bearer and Azure api-key auth styles."""
    assert RealtimeEndpoint(api_key=KEY, model="m").headers() == {"Authorization": f"Bearer {KEY}"}
    azure = RealtimeEndpoint(
        api_key=KEY, model="m", base_url="https://x.openai.azure.com", auth_style=AuthStyle.API_KEY
    )
    assert azure.headers() == {"api-key": KEY}
    assert azure.is_azure
    assert not RealtimeEndpoint(api_key=KEY, model="m").is_azure


@pytest.mark.parametrize(
    ("base_url", "style"),
    [
        (None, AuthStyle.BEARER),
        ("https://api.openai.com/v1", AuthStyle.BEARER),
        ("https://home.openai.azure.com", AuthStyle.API_KEY),
        ("https://HOME.cognitiveservices.azure.com:443/openai/v1", AuthStyle.API_KEY),
        ("wss://x.services.ai.azure.com/openai/v1/realtime", AuthStyle.API_KEY),
        ("http://openai.azure.com.example.net", AuthStyle.BEARER),
        ("http://[::1", AuthStyle.BEARER),
    ],
)
def test_auth_style_for_base_url(base_url: str | None, style: AuthStyle) -> None:
    """Azure hosts (any case, any port) take `api-key`; anything else, even unparsable, Bearer."""
    assert AuthStyle.for_base_url(base_url) is style
