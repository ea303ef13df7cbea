"""The hello exchange: the device's hello in, the server's hello out (and back, for clients)."""

from __future__ import annotations

from dataclasses import dataclass, field
import math
from typing import Any

from . import _fields as f
from .errors import HelloError, InvalidFieldError

OPUS_SAMPLE_RATES = frozenset({8000, 12000, 16000, 24000, 48000})
"""Sample rates libopus can encode and decode at."""

OPUS_FRAME_DURATIONS_MS = frozenset({5, 10, 20, 40, 60, 80, 100, 120})
"""Whole-millisecond Opus frame durations."""

BINARY_PROTOCOL_VERSIONS = frozenset({1, 2, 3})
"""Binary framing versions the firmware knows (hello `version`, header `Protocol-Version`)."""

TRANSPORT_WEBSOCKET = "websocket"


@dataclass(frozen=True, slots=True)
class AudioParams:
    """Opus stream parameters announced in a hello."""

    sample_rate: int = 16000
    frame_duration: int = 60
    channels: int = 1
    format: str = "opus"

    @property
    def samples_per_frame(self) -> int:
        """Samples per channel in one packet, the decoder's buffer size."""
        return self.sample_rate * self.frame_duration // 1000

    def to_dict(self) -> dict[str, Any]:
        """Wire form, in the firmware's key order."""
        return {
            "format": self.format,
            "sample_rate": self.sample_rate,
            "channels": self.channels,
            "frame_duration": self.frame_duration,
        }


@dataclass(frozen=True, slots=True)
class DeviceFeatures:
    """Optional capabilities from the device hello's `features` object."""

    mcp: bool = False
    aec: bool = False
    glyph_push: bool = False


@dataclass(frozen=True, slots=True)
class DeviceHello:
    """The device's hello: binary protocol version, features and uplink audio format."""

    version: int = 1
    features: DeviceFeatures = field(default_factory=DeviceFeatures)
    audio_params: AudioParams = field(default_factory=AudioParams)
    transport: str = TRANSPORT_WEBSOCKET

    def to_dict(self) -> dict[str, Any]:
        """Wire form as the firmware builds it (`aec` only when set, `glyph_push` always)."""
        features: dict[str, Any] = {"mcp": self.features.mcp}
        if self.features.aec:
            features["aec"] = True
        features["glyph_push"] = self.features.glyph_push
        return {
            "type": "hello",
            "version": self.version,
            "features": features,
            "transport": self.transport,
            "audio_params": self.audio_params.to_dict(),
        }


@dataclass(frozen=True, slots=True)
class ServerHello:
    """The server's hello; `transport` is always `websocket`, or the device crashes."""

    session_id: str
    sample_rate: int = 24000
    frame_duration: int = 60

    @property
    def audio_params(self) -> AudioParams:
        """Downlink audio parameters the device will decode with."""
        return AudioParams(sample_rate=self.sample_rate, frame_duration=self.frame_duration)

    def to_dict(self) -> dict[str, Any]:
        """Wire form with every field the firmware reads, and the full audio_params."""
        return {
            "type": "hello",
            "transport": TRANSPORT_WEBSOCKET,
            "session_id": self.session_id,
            "audio_params": self.audio_params.to_dict(),
        }


def _parse_audio_params(obj: dict[str, Any] | None) -> AudioParams:
    """Parse the device's audio_params, defaulting missing keys to the firmware's values."""
    if obj is None:
        return AudioParams()
    fmt = f.opt_str(obj, "format") or "opus"
    sample_rate = f.opt_int(obj, "sample_rate") or 16000
    channels = f.opt_int(obj, "channels") or 1
    frame_duration = f.opt_int(obj, "frame_duration") or 60
    if fmt != "opus":
        raise HelloError(f"unsupported audio format {fmt!r}")
    if sample_rate not in OPUS_SAMPLE_RATES:
        raise HelloError(f"unsupported sample rate {sample_rate}")
    if channels not in (1, 2):
        raise HelloError(f"unsupported channel count {channels}")
    if frame_duration not in OPUS_FRAME_DURATIONS_MS:
        raise HelloError(f"unsupported frame duration {frame_duration}")
    return AudioParams(sample_rate, frame_duration, channels, fmt)


def parse_device_hello(obj: dict[str, Any]) -> DeviceHello:
    """Parse a decoded device hello; only `type` is mandatory, as older firmware sent less."""
    try:
        version = f.opt_int(obj, "version") or 1
        features = f.opt_obj(obj, "features") or {}
        transport = f.opt_str(obj, "transport") or TRANSPORT_WEBSOCKET
        audio = _parse_audio_params(f.opt_obj(obj, "audio_params"))
        parsed_features = DeviceFeatures(
            mcp=f.opt_bool(features, "mcp") or False,
            aec=f.opt_bool(features, "aec") or False,
            glyph_push=f.opt_bool(features, "glyph_push") or False,
        )
    except InvalidFieldError as err:
        raise HelloError(f"bad device hello: {err}") from err
    if version not in BINARY_PROTOCOL_VERSIONS:
        raise HelloError(f"unsupported binary protocol version {version}")
    if transport != TRANSPORT_WEBSOCKET:
        raise HelloError(f"unsupported transport {transport!r}")
    return DeviceHello(version, parsed_features, audio, transport)


def _cjson_int(value: object, default: int) -> int:
    """Read a number like cJSON's `valueint`: any finite number truncates, others keep default."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return default
    if isinstance(value, float):
        return int(value) if math.isfinite(value) else default
    return value


def parse_server_hello(obj: dict[str, Any]) -> ServerHello:
    """Parse a server hello the way the firmware does (used by clients and the simulator).

    `transport` must equal "websocket"; `session_id` and the audio numbers are optional and
    default to "" and 24000 Hz / 60 ms. Values libopus cannot decode are refused.
    """
    transport = obj.get("transport")
    if transport != TRANSPORT_WEBSOCKET:
        raise HelloError(f"server hello transport is {transport!r}, not 'websocket'")
    session_id = obj.get("session_id")
    audio = obj.get("audio_params")
    sample_rate, frame_duration = 24000, 60
    if isinstance(audio, dict):
        sample_rate = _cjson_int(audio.get("sample_rate"), sample_rate)
        frame_duration = _cjson_int(audio.get("frame_duration"), frame_duration)
    if sample_rate not in OPUS_SAMPLE_RATES or frame_duration not in OPUS_FRAME_DURATIONS_MS:
        raise HelloError(f"server audio {sample_rate} Hz / {frame_duration} ms is not decodable")
    return ServerHello(
        session_id if isinstance(session_id, str) else "", sample_rate, frame_duration
    )
