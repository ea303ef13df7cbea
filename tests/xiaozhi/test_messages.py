"""Typed JSON messages in both directions."""

from __future__ import annotations

import pytest

from custom_components.openai_realtime_voice.xiaozhi import (
    Abort,
    Alert,
    CustomMessage,
    DeviceHello,
    InvalidFieldError,
    LegacyIot,
    ListenDetect,
    ListenMode,
    ListenStart,
    ListenStop,
    LlmEmotion,
    MalformedMessageError,
    McpMessage,
    ServerHello,
    Stt,
    SystemCommand,
    TtsSentenceStart,
    TtsStart,
    TtsStop,
    UnknownMessageTypeError,
    encode_message,
    parse_device_message,
    parse_server_message,
)


@pytest.mark.parametrize(
    ("wire", "message"),
    [
        (
            '{"session_id":"s","type":"listen","state":"start","mode":"auto"}',
            ListenStart(ListenMode.AUTO, session_id="s"),
        ),
        (
            '{"session_id":"s","type":"listen","state":"start","mode":"realtime"}',
            ListenStart(ListenMode.REALTIME, session_id="s"),
        ),
        ('{"type":"listen","state":"start"}', ListenStart(None)),
        ('{"session_id":"s","type":"listen","state":"stop"}', ListenStop(session_id="s")),
        (
            '{"session_id":"s","type":"listen","state":"detect","text":"你好小智"}',
            ListenDetect("你好小智", session_id="s"),
        ),
        ('{"session_id":"s","type":"abort"}', Abort(session_id="s")),
        (
            '{"session_id":"s","type":"abort","reason":"wake_word_detected"}',
            Abort("wake_word_detected", session_id="s"),
        ),
        ('{"session_id":"s","type":"mcp","payload":{"a":1}}', McpMessage({"a": 1}, session_id="s")),
        (
            '{"session_id":"s","type":"iot","update":true,"states":[]}',
            LegacyIot(None, [], session_id="s"),
        ),
    ],
)
def test_device_messages_round_trip(wire: str, message: object) -> None:
    """The firmware's exact strings parse to typed messages and serialise back identically."""
    assert parse_device_message(wire) == message
    assert encode_message(message) == wire  # type: ignore[arg-type]


def test_device_hello_and_detect_without_text() -> None:
    """Hello goes through the hello parser; detect tolerates a missing text."""
    assert parse_device_message({"type": "hello"}) == DeviceHello()
    assert parse_device_message('{"type":"listen","state":"detect"}') == ListenDetect("")
    assert LegacyIot(descriptors=[1]).to_dict()["descriptors"] == [1]


@pytest.mark.parametrize(
    ("wire", "error"),
    [
        ("{}", MalformedMessageError),
        ('{"type":5}', MalformedMessageError),
        ('{"type":"goodbye"}', UnknownMessageTypeError),
        ('{"type":"listen"}', InvalidFieldError),
        ('{"type":"listen","state":"pause"}', InvalidFieldError),
        ('{"type":"listen","state":"start","mode":"loud"}', InvalidFieldError),
        ('{"type":"listen","state":"start","mode":1}', InvalidFieldError),
        ('{"type":"abort","session_id":[]}', InvalidFieldError),
        ('{"type":"mcp","payload":[]}', InvalidFieldError),
        ('{"type":"mcp"}', InvalidFieldError),
        ('{"type":"iot","states":{}}', InvalidFieldError),
    ],
)
def test_bad_device_messages(wire: str, error: type[Exception]) -> None:
    """Malformed device messages raise the matching typed error."""
    with pytest.raises(error):
        parse_device_message(wire)


def test_unknown_type_keeps_the_type() -> None:
    """Callers can log the offending type."""
    with pytest.raises(UnknownMessageTypeError) as err:
        parse_device_message('{"type":"ping"}')
    assert err.value.message_type == "ping"


@pytest.mark.parametrize(
    "message",
    [
        Stt("hi", session_id="s"),
        TtsStart(session_id="s"),
        TtsStop(),
        TtsSentenceStart("hello"),
        LlmEmotion("happy", "😀", session_id="s"),
        LlmEmotion("sad"),
        McpMessage({"jsonrpc": "2.0"}),
        SystemCommand("reboot"),
        Alert("Warning", "Battery low", "sad", session_id="s"),
        CustomMessage({"k": "v"}),
        ServerHello("abc"),
    ],
)
def test_server_messages_round_trip(message: object) -> None:
    """Every server message parses back from its wire form."""
    assert parse_server_message(encode_message(message)) == message  # type: ignore[arg-type]


def test_server_message_wire_shapes() -> None:
    """Shapes match the firmware documentation examples."""
    assert TtsStart(session_id="x").to_dict() == {
        "session_id": "x",
        "type": "tts",
        "state": "start",
    }
    assert LlmEmotion("happy", "😀").to_dict() == {"type": "llm", "emotion": "happy", "text": "😀"}


@pytest.mark.parametrize(
    "wire",
    [
        '{"type":"tts"}',
        '{"type":"tts","state":"pause"}',
        '{"type":"tts","state":"sentence_start"}',
        '{"type":"stt"}',
        '{"type":"alert","status":"a","message":"b"}',
        '{"type":"llm","emotion":1}',
        '{"type":"system"}',
        '{"type":"custom","payload":1}',
        '{"type":"iot","commands":[]}',
    ],
)
def test_bad_server_messages(wire: str) -> None:
    """Server messages the firmware would reject or not know raise typed errors."""
    with pytest.raises((InvalidFieldError, UnknownMessageTypeError)):
        parse_server_message(wire)
