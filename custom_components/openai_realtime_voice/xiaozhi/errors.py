"""Typed errors of the xiaozhi protocol package; nothing else escapes its parsers."""

from __future__ import annotations


class ProtocolError(Exception):
    """Base class: the peer sent something the xiaozhi protocol does not allow."""


class MalformedMessageError(ProtocolError):
    """A text frame is not valid UTF-8, not JSON, or not a JSON object."""


class MessageTooLargeError(MalformedMessageError):
    """A text frame exceeds the size or nesting limit; rejected before full parsing."""


class UnknownMessageTypeError(ProtocolError):
    """A JSON message carries a `type` this side does not handle."""

    def __init__(self, message_type: str) -> None:
        """Remember the offending type so callers can log and ignore it."""
        super().__init__(f"unknown message type {message_type!r}")
        self.message_type = message_type


class InvalidFieldError(ProtocolError):
    """A known message has a missing field, a field of the wrong type or a bad value."""


class HelloError(InvalidFieldError):
    """A hello message (device or server) is unusable."""


class BinaryFrameError(ProtocolError):
    """A binary audio frame has a truncated header, a size mismatch or is too large."""


class SessionStateError(ProtocolError):
    """A frame arrived that the session state does not allow (e.g. audio before hello)."""


class McpError(ProtocolError):
    """The device answered an MCP request with an error, or the exchange failed."""

    def __init__(self, message: str, *, code: int | None = None, data: object = None) -> None:
        """Keep the JSON-RPC error fields; the firmware omits `code`, so it is optional."""
        super().__init__(message if code is None else f"{message} (code {code})")
        self.message = message
        self.code = code
        self.data = data


class McpTimeoutError(McpError):
    """The device did not answer an MCP request in time; a late reply is ignored."""


class McpClosedError(McpError):
    """The MCP client was closed while (or before) the request was pending."""


class McpProtocolError(McpError):
    """An MCP payload is not valid JSON-RPC 2.0 as the firmware speaks it."""
