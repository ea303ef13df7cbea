"""Bounded JSON decoding."""

from __future__ import annotations

import pytest

from custom_components.openai_realtime_voice.xiaozhi import (
    MalformedMessageError,
    MessageTooLargeError,
    decode_object,
    encode_object,
)


def test_decodes_object_from_str_and_bytes() -> None:
    """Both str and UTF-8 bytes decode; the first duplicate key wins, as in cJSON."""
    assert decode_object('{"a":1,"a":2}') == {"a": 1}
    assert decode_object('{"t":"你好"}'.encode()) == {"t": "你好"}


@pytest.mark.parametrize(
    "data",
    [b"\xff\xfe", "not json", "[1,2]", '"s"', '{"a":NaN}', '{"a":Infinity}', "", "{"],
)
def test_malformed(data: str | bytes) -> None:
    """Anything that is not a JSON object is a MalformedMessageError."""
    with pytest.raises(MalformedMessageError):
        decode_object(data)


def test_size_and_depth_limits() -> None:
    """Oversized or too deeply nested frames are refused before parsing."""
    with pytest.raises(MessageTooLargeError):
        decode_object("{}" + " " * 100, max_size=50)
    with pytest.raises(MessageTooLargeError):
        decode_object('{"a":' + "[" * 40 + "]" * 40 + "}")
    deep_in_string = '{"a":"' + "[" * 100 + '"}'
    assert decode_object(deep_in_string) == {"a": "[" * 100}
    wide = '{"a":[' + ",".join(["[]"] * 100) + "]}"
    assert len(decode_object(wide)["a"]) == 100


def test_encode_is_compact_utf8() -> None:
    """Messages are compact and keep non-ASCII text readable."""
    assert encode_object({"a": "é", "b": 1}) == '{"a":"é","b":1}'


def test_too_many_containers_refused_before_scanning() -> None:
    """A frame of thousands of `[]` is refused by counting, before any bracket is scanned
    (scanning 128 KiB of them held the event loop for 13 ms and more)."""
    flood = '{"type":"mcp","payload":{"x":[' + ",".join(["[]"] * 10_000) + "]}}"
    with pytest.raises(MessageTooLargeError, match="containers"):
        decode_object(flood)
    # A realistic tool page (8 KB, a few hundred containers) still decodes.
    tools = [
        {"name": f"self.tool_{i}", "inputSchema": {"type": "object", "properties": {}}}
        for i in range(100)
    ]
    page = encode_object({"type": "mcp", "payload": {"result": {"tools": tools}}})
    assert len(decode_object(page)["payload"]["result"]["tools"]) == 100
