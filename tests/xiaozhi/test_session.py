"""The sans-I/O device session."""

from __future__ import annotations

import json

import pytest

from custom_components.openai_realtime_voice.xiaozhi import (
    AbortRequested,
    AudioPacket,
    AudioReceived,
    BinaryFrameError,
    DeviceHello,
    DeviceSession,
    HelloError,
    HelloReceived,
    LegacyIotReceived,
    ListenMode,
    ListenStarted,
    ListenStopped,
    McpReceived,
    MessageTooLargeError,
    SessionStateError,
    WakeWordDetected,
    encode_audio_frame,
)

HELLO = json.dumps(DeviceHello(version=2).to_dict())


def started(version: int = 2) -> DeviceSession:
    """A session whose hello exchange is done."""
    session = DeviceSession(session_id="sid", protocol_version=version)
    session.receive_text(json.dumps(DeviceHello(version=version).to_dict()))
    session.data_to_send()
    return session


def test_hello_queues_server_hello() -> None:
    """The first hello is answered with a complete server hello."""
    session = DeviceSession(session_id="sid", sample_rate=16000)
    assert not session.hello_done
    assert session.protocol_version == 1
    event = session.receive_text(HELLO)
    assert isinstance(event, HelloReceived)
    assert session.hello_done
    assert session.protocol_version == 2
    (frame,) = session.data_to_send()
    assert json.loads(frame) == {
        "type": "hello",
        "transport": "websocket",
        "session_id": "sid",
        "audio_params": {
            "format": "opus",
            "sample_rate": 16000,
            "channels": 1,
            "frame_duration": 60,
        },
    }
    assert session.data_to_send() == []
    with pytest.raises(SessionStateError):
        session.receive_text(HELLO)


def test_generated_session_id_and_header_checks() -> None:
    """A random session id is made; the Protocol-Version header must be valid and match."""
    assert len(DeviceSession().session_id) == 32
    assert DeviceSession(protocol_version=3).protocol_version == 3
    with pytest.raises(HelloError):
        DeviceSession(protocol_version=9)
    with pytest.raises(HelloError):
        DeviceSession(protocol_version=3).receive_text(HELLO)


def test_nothing_before_hello() -> None:
    """Messages, audio and outgoing frames before the hello are state errors."""
    session = DeviceSession()
    with pytest.raises(SessionStateError):
        session.receive_text('{"type":"listen","state":"stop"}')
    with pytest.raises(SessionStateError):
        session.receive_binary(b"\x00")
    with pytest.raises(SessionStateError):
        session.send_tts_start()


def test_listen_flow_and_events() -> None:
    """Listen start/stop/detect, abort, mcp and iot map to events and state."""
    session = started()
    assert session.receive_text(
        '{"type":"listen","state":"start","mode":"manual"}'
    ) == ListenStarted(ListenMode.MANUAL)
    assert session.listening
    assert session.listen_mode is ListenMode.MANUAL
    assert session.receive_text('{"type":"listen","state":"stop"}') == ListenStopped()
    assert not session.listening
    assert session.receive_text('{"type":"listen","state":"start"}') == ListenStarted(
        ListenMode.AUTO
    )
    assert session.receive_text('{"type":"listen","state":"detect","text":"hi"}') == (
        WakeWordDetected("hi")
    )
    assert session.receive_text('{"type":"abort","reason":"x"}') == AbortRequested("x")
    assert session.receive_text('{"type":"mcp","payload":{"a":1}}') == McpReceived({"a": 1})
    assert isinstance(session.receive_text('{"type":"iot","states":[]}'), LegacyIotReceived)


def test_audio_in_and_out() -> None:
    """Binary frames are unwrapped with the session's version; downlink needs tts start."""
    session = started(version=3)
    event = session.receive_binary(encode_audio_frame(3, b"opus"))
    assert event == AudioReceived(AudioPacket(b"opus"), listening=False)
    with pytest.raises(BinaryFrameError):
        session.receive_binary(b"\x00\x00\x00\x09")
    with pytest.raises(BinaryFrameError):
        session.receive_binary(bytes(9000))
    with pytest.raises(SessionStateError):
        session.send_audio(b"x")
    session.receive_text('{"type":"listen","state":"start","mode":"auto"}')
    session.send_tts_start()
    assert session.speaking
    assert not session.listening
    session.send_sentence("hello")
    session.send_audio(b"pkt")
    session.send_tts_stop()
    frames = session.data_to_send()
    assert json.loads(frames[0]) == {"session_id": "sid", "type": "tts", "state": "start"}
    assert json.loads(frames[1])["text"] == "hello"
    assert frames[2] == encode_audio_frame(3, b"pkt")
    assert json.loads(frames[3])["state"] == "stop"
    assert not session.speaking


def test_realtime_mode_keeps_listening_while_speaking() -> None:
    """In realtime mode the microphone stays on during Speaking."""
    session = started()
    session.receive_text('{"type":"listen","state":"start","mode":"realtime"}')
    session.send_tts_start()
    assert session.listening


def test_other_outgoing_messages() -> None:
    """stt, llm, alert, reboot and mcp carry the session id."""
    session = started()
    session.send_stt("u")
    session.send_emotion("happy")
    session.send_alert("s", "m", "e")
    session.send_reboot()
    session.send_mcp({"jsonrpc": "2.0"})
    types = [json.loads(f)["type"] for f in session.data_to_send()]
    assert types == ["stt", "llm", "alert", "system", "mcp"]


def test_limits_are_configurable() -> None:
    """The session applies its own text size limit."""
    session = DeviceSession(max_text_size=10)
    with pytest.raises(MessageTooLargeError):
        session.receive_text(HELLO)
