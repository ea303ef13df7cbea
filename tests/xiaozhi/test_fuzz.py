"""Property tests: no input makes the parsers raise anything but the package's typed errors."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from hypothesis import HealthCheck, given, settings, strategies as st

from custom_components.openai_realtime_voice.xiaozhi import (
    DeviceHello,
    DeviceSession,
    McpClient,
    ProtocolError,
    decode_audio_frame,
    encode_audio_frame,
    parse_device_message,
    parse_server_message,
)

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=20,
)
message_like = st.fixed_dictionaries(
    {
        "type": st.sampled_from(
            [
                "hello",
                "listen",
                "abort",
                "mcp",
                "iot",
                "tts",
                "stt",
                "llm",
                "alert",
                "system",
                "custom",
                "x",
            ]
        )
    },
    optional={
        "state": st.sampled_from(["start", "stop", "detect", "sentence_start"]) | json_values,
        "mode": st.sampled_from(["auto", "manual", "realtime"]) | json_values,
        "text": json_values,
        "payload": json_values,
        "session_id": json_values,
        "version": json_values,
        "features": json_values,
        "audio_params": json_values,
        "transport": st.just("websocket") | json_values,
        "emotion": json_values,
        "status": json_values,
        "message": json_values,
        "command": json_values,
        "reason": json_values,
        "states": json_values,
    },
)
raw_frames = st.binary(max_size=200) | st.text(max_size=200) | message_like.map(json.dumps)


@FUZZ
@given(raw_frames)
def test_message_parsers_raise_only_protocol_errors(frame: str | bytes) -> None:
    """Both directions' parsers either return a message or raise ProtocolError."""
    for parse in (parse_device_message, parse_server_message):
        with contextlib.suppress(ProtocolError):
            parse(frame)


@FUZZ
@given(st.lists(raw_frames | st.binary(max_size=40).map(bytearray), max_size=8))
def test_session_raises_only_protocol_errors(frames: list[str | bytes | bytearray]) -> None:
    """Any frame sequence fed to a session yields events or ProtocolError."""
    session = DeviceSession()
    session.receive_text(json.dumps(DeviceHello(version=3).to_dict()))
    for frame in frames:
        try:
            if isinstance(frame, bytearray):
                session.receive_binary(frame)
            else:
                session.receive_text(frame)
        except ProtocolError:
            pass


@FUZZ
@given(st.sampled_from([1, 2, 3, 4]), st.binary(max_size=64))
def test_binary_decoder_raises_only_protocol_errors(version: int, frame: bytes) -> None:
    """Arbitrary binary frames decode or raise BinaryFrameError."""
    with contextlib.suppress(ProtocolError):
        decode_audio_frame(version, frame)


@FUZZ
@given(st.sampled_from([1, 2, 3]), st.binary(max_size=300), st.integers(0, 2**32 - 1))
def test_binary_round_trip(version: int, payload: bytes, timestamp: int) -> None:
    """Encoding then decoding returns the payload (and the v2 timestamp)."""
    packet = decode_audio_frame(version, encode_audio_frame(version, payload, timestamp=timestamp))
    assert packet.payload == payload
    assert packet.timestamp == (timestamp if version == 2 else 0)


mcp_payloads = st.fixed_dictionaries(
    {},
    optional={
        "jsonrpc": st.just("2.0") | json_values,
        "id": st.integers(0, 3) | json_values,
        "result": json_values,
        "error": json_values,
        "method": json_values,
        "params": json_values,
    },
)


@FUZZ
@given(st.lists(mcp_payloads | json_values, max_size=6))
async def test_mcp_handle_message_raises_only_mcp_errors(payloads: list[Any]) -> None:
    """Replies of any shape resolve pending calls or raise typed errors."""

    async def send(payload: dict[str, Any]) -> None:
        return None

    client = McpClient(send, timeout=0.001)
    for payload in payloads:
        with contextlib.suppress(ProtocolError):
            client.handle_message(payload)
