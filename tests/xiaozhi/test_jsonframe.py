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
