"""Bounded JSON decoding of text frames: size and nesting are checked before parsing."""

from __future__ import annotations

import json
import re
from typing import Any

from .errors import MalformedMessageError, MessageTooLargeError

DEFAULT_MAX_TEXT_SIZE = 128 * 1024
"""Largest text frame accepted; MCP tool pages are capped near 8 KB by the firmware."""

DEFAULT_MAX_DEPTH = 32
"""Deepest JSON nesting accepted; real messages (tool schemas included) stay far below."""

MAX_CONTAINERS = 1024
"""Most objects and arrays (counted by their opening brackets, strings included) in one frame.
A firmware tool page (at most 8000 bytes, `McpServer::GetToolsList`) has a few hundred at most; a
flood of `[],[],...` is refused by two C-speed counts instead of a scan bracket by bracket."""

# A JSON string literal, matched possessively so hostile input cannot make it backtrack.
_STRING_LITERAL = re.compile(r'"(?:[^"\\]++|\\.)*+"', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")


def _first_key_wins(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Build an object keeping the first duplicate key, as cJSON's lookup does."""
    result: dict[str, Any] = {}
    for key, value in pairs:
        result.setdefault(key, value)
    return result


def _reject_constant(name: str) -> Any:
    """Refuse NaN and Infinity, which are not JSON."""
    raise ValueError(f"non-standard JSON constant {name}")


def _too_deep(text: str, max_depth: int) -> bool:
    """Tell whether brackets outside string literals nest deeper than `max_depth`."""
    containers = text.count("{") + text.count("[")
    if containers > MAX_CONTAINERS:
        raise MessageTooLargeError(f"more than {MAX_CONTAINERS} containers")
    if containers <= max_depth:
        return False
    depth = 0
    for match in _BRACKET.finditer(_STRING_LITERAL.sub("", text)):
        if match.group() in "[{":
            depth += 1
            if depth > max_depth:
                return True
        else:
            depth -= 1
    return False


def decode_object(
    data: str | bytes | bytearray,
    *,
    max_size: int = DEFAULT_MAX_TEXT_SIZE,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> dict[str, Any]:
    """Decode one text frame into a JSON object or raise a `MalformedMessageError`."""
    if len(data) > max_size:
        raise MessageTooLargeError(f"text frame of {len(data)} exceeds {max_size}")
    if isinstance(data, str):
        text = data
    else:
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError as err:
            raise MalformedMessageError("text frame is not valid UTF-8") from err
    if _too_deep(text, max_depth):
        raise MessageTooLargeError(f"JSON nesting deeper than {max_depth}")
    try:
        value = json.loads(text, object_pairs_hook=_first_key_wins, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as err:
        raise MalformedMessageError(f"text frame is not JSON: {err}") from err
    if not isinstance(value, dict):
        raise MalformedMessageError("JSON message is not an object")
    return value


def encode_object(value: dict[str, Any]) -> str:
    """Serialise a message compactly, keeping UTF-8 text readable (cJSON accepts both)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
