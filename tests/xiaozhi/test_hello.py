"""Hello parsing and building."""

from __future__ import annotations

from typing import Any

import pytest

from custom_components.openai_realtime_voice.xiaozhi import (
    AudioParams,
    DeviceFeatures,
    DeviceHello,
    HelloError,
    ServerHello,
    parse_device_hello,
    parse_server_hello,
)

FIRMWARE_HELLO = {
    "type": "hello",
    "version": 3,
    "features": {"mcp": True, "aec": True, "glyph_push": True},
    "text_font": {"bundle": "noto-v1", "charset": "common", "size": 20, "bpp": 4},
    "transport": "websocket",
    "audio_params": {"format": "opus", "sample_rate": 16000, "channels": 1, "frame_duration": 60},
}


def test_parse_firmware_hello() -> None:
    """Every field of the current firmware's hello is read."""
    hello = parse_device_hello(FIRMWARE_HELLO)
    assert hello == DeviceHello(3, DeviceFeatures(True, True, True), AudioParams(16000, 60))
    assert hello.audio_params.samples_per_frame == 960


def test_minimal_hello_uses_defaults() -> None:
    """Older firmware sent less; missing fields default to v1, no features, 16 kHz / 60 ms."""
    hello = parse_device_hello({"type": "hello"})
    assert hello == DeviceHello()
    assert not hello.features.mcp


def test_device_hello_round_trip() -> None:
    """to_dict matches the firmware's layout (aec only when set)."""
    hello = DeviceHello(2, DeviceFeatures(mcp=True))
    wire = hello.to_dict()
    assert wire["features"] == {"mcp": True, "glyph_push": False}
    assert parse_device_hello(wire) == hello


@pytest.mark.parametrize(
    "patch",
    [
        {"version": 4},
        {"version": "1"},
        {"version": 1.5},
        {"features": []},
        {"features": {"mcp": "yes"}},
        {"transport": "udp"},
        {"audio_params": {"format": "pcm"}},
        {"audio_params": {"sample_rate": 44100}},
        {"audio_params": {"channels": 3}},
        {"audio_params": {"frame_duration": 7}},
        {"audio_params": {"sample_rate": True}},
        {"audio_params": {"format": "\ud800"}},
    ],
)
def test_bad_device_hello(patch: dict[str, Any]) -> None:
    """Wrong types and unsupported values raise HelloError."""
    with pytest.raises(HelloError):
        parse_device_hello(FIRMWARE_HELLO | patch)


def test_server_hello_always_complete() -> None:
    """The server hello always carries transport, session_id and full audio_params."""
    assert ServerHello("s1").to_dict() == {
        "type": "hello",
        "transport": "websocket",
        "session_id": "s1",
        "audio_params": {
            "format": "opus",
            "sample_rate": 24000,
            "channels": 1,
            "frame_duration": 60,
        },
    }


def test_parse_server_hello_like_firmware() -> None:
    """Transport is mandatory; the rest defaults like the firmware; numbers truncate."""
    assert parse_server_hello(ServerHello("x", 16000, 20).to_dict()) == ServerHello("x", 16000, 20)
    assert parse_server_hello({"transport": "websocket"}) == ServerHello("")
    odd = {"transport": "websocket", "session_id": 5, "audio_params": {"sample_rate": 16000.7}}
    assert parse_server_hello(odd) == ServerHello("", 16000, 60)
    odd["audio_params"] = {"sample_rate": float("inf"), "frame_duration": True}
    assert parse_server_hello(odd) == ServerHello("", 24000, 60)
    for bad in [
        {},
        {"transport": "udp"},
        {"transport": "websocket", "audio_params": {"sample_rate": 1}},
    ]:
        with pytest.raises(HelloError):
            parse_server_hello(bad)
