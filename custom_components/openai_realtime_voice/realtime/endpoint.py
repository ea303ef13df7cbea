"""Where and how to reach a Realtime server: URL derivation and auth headers."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from .errors import RealtimeInvalidEndpointError

__all__ = ["OPENAI_BASE_URL", "AuthStyle", "Dialect", "RealtimeEndpoint", "redact_url"]

OPENAI_BASE_URL: Final = "https://api.openai.com/v1"
_SCHEMES: Final = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}
_PUBLIC_QUERY_KEYS: Final = frozenset({"model", "api-version", "deployment"})
_REDACTED: Final = "***"
_AZURE_HOST_SUFFIXES: Final = (
    ".openai.azure.com",
    ".cognitiveservices.azure.com",
    ".services.ai.azure.com",
)


def _is_azure_host(base_url: str | None) -> bool:
    """Whether a base URL names an Azure OpenAI resource."""
    try:
        host = urlsplit((base_url or OPENAI_BASE_URL).strip()).hostname or ""
    except ValueError:
        return False
    return host.endswith(_AZURE_HOST_SUFFIXES)


class AuthStyle(StrEnum):
    """How the API key travels: OpenAI `Authorization: Bearer` or Azure `api-key`."""

    BEARER = "bearer"
    API_KEY = "api-key"

    @classmethod
    def for_base_url(cls, base_url: str | None) -> AuthStyle:
        """The style a server expects: Azure resources take `api-key`, everyone else Bearer."""
        return cls.API_KEY if _is_azure_host(base_url) else cls.BEARER


class Dialect(StrEnum):
    """Wire shape: the GA protocol, or the legacy beta shape some compatible servers still speak."""

    GA = "ga"
    BETA = "beta"


@dataclass(frozen=True, kw_only=True)
class RealtimeEndpoint:
    """Where and how to connect; the API key is kept out of repr()."""

    api_key: str = field(repr=False)
    model: str
    base_url: str | None = None
    auth_style: AuthStyle = AuthStyle.BEARER
    dialect: Dialect = Dialect.GA

    def __post_init__(self) -> None:
        """Fail early on settings that can never form a URL."""
        if not self.model.strip():
            raise RealtimeInvalidEndpointError("model must not be empty")
        self.url()

    @property
    def is_azure(self) -> bool:
        """Whether the host is an Azure OpenAI resource (30-minute sessions, deployment names)."""
        return _is_azure_host(self.base_url)

    def url(self) -> str:
        """Return the WebSocket URL, e.g. `wss://api.openai.com/v1/realtime?model=gpt-realtime`."""
        raw = (self.base_url or OPENAI_BASE_URL).strip()
        try:
            parts = urlsplit(raw)
            parts.port  # noqa: B018 - raises ValueError on a malformed port
        except ValueError as err:
            raise RealtimeInvalidEndpointError(f"invalid base URL: {err}") from None
        scheme = _SCHEMES.get(parts.scheme.lower())
        if scheme is None or not parts.hostname:
            raise RealtimeInvalidEndpointError(
                "base URL must be http(s):// or ws(s):// with a host name"
            )
        path = parts.path.rstrip("/")
        path = path.removesuffix("/realtime")
        if not path.endswith("/v1"):
            if _is_azure_host(raw) and not path.endswith("/openai"):
                path += "/openai"
            path += "/v1"
        query = f"model={quote(self.model.strip(), safe='')}"
        if parts.query:
            query = f"{parts.query}&{query}"
        return urlunsplit((scheme, parts.netloc, f"{path}/realtime", query, ""))

    def headers(self) -> dict[str, str]:
        """Return the HTTP headers of the WebSocket handshake (contains the key: never log)."""
        if self.auth_style is AuthStyle.API_KEY:
            return {"api-key": self.api_key}
        return {"Authorization": f"Bearer {self.api_key}"}


def redact_url(url: str) -> str:
    """A URL safe to log or show: user info and query values (but the model's) replaced.

    Base URLs may carry credentials (`https://user:secret@host`, `?api-key=…`); only the
    scheme, host, port, path and the names of query parameters are kept.
    """
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return _REDACTED
    netloc = parts.hostname or ""
    if ":" in netloc:
        netloc = f"[{netloc}]"
    if port is not None:
        netloc += f":{port}"
    if parts.username is not None or parts.password is not None:
        netloc = f"{_REDACTED}@{netloc}"
    query = urlencode(
        [
            (key, value if key.lower() in _PUBLIC_QUERY_KEYS else _REDACTED)
            for key, value in parse_qsl(parts.query, keep_blank_values=True)
        ],
        safe="*",
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))
