"""What the parts of a simulated board use of one another (`DeviceSimulator` on top).

The firmware's parts reach each other through `Application::GetInstance()`; here each part
holds the `Board` it belongs to, and `Board` names just what the parts use of the device and
of each other. `DeviceSimulator` (`device.py`) is the one board: it owns the parts and
imports them, none of them imports it.
"""

from __future__ import annotations

from collections.abc import Coroutine, Sequence
from typing import Any, Protocol

import aiohttp

from custom_components.openai_realtime_voice.xiaozhi import DeviceHello, ServerHello

from .changes import Changes
from .firmware import DeviceState, MainTask


class OtaPart(Protocol):
    """What the other parts use of the OTA client (`ota.py`)."""

    uses_mqtt: bool

    def system_info(self) -> dict[str, Any]:
        """The version check's body (`GetSystemInfoJson`)."""


class ChannelPart(Protocol):
    """What the other parts use of the audio channel (`channel.py`)."""

    @property
    def ws(self) -> aiohttp.ClientWebSocketResponse | None:
        """The WebSocket, while one is connected."""

    @property
    def server_hello(self) -> ServerHello | None:
        """The server hello of the open channel."""

    async def send_text(self, text: str) -> None:
        """Send one text frame."""

    async def send_bytes(self, data: bytes) -> None:
        """Send one binary frame."""


class StateMachinePart(Protocol):
    """What the other parts use of the state machine (`state_machine.py`)."""

    state: DeviceState


class MicrophonePart(Protocol):
    """What the other parts use of the microphone (`microphone.py`)."""

    enabled: bool


class PlaybackPart(Protocol):
    """What the other parts use of the downlink (`playback.py`)."""

    @property
    def downlink(self) -> Sequence[object]:
        """Every received binary frame."""

    def start(self, sample_rate: int) -> None:
        """A decoder for the server hello's sample rate."""

    def on_binary(self, data: bytes) -> None:
        """One received binary frame."""

    def reset(self) -> None:
        """`ResetDecoder`."""

    def queue_depth(self, now: float) -> int:
        """Packets still waiting in the decode queue at `now`."""

    def drained_at(self) -> float:
        """When the last queued packet has played."""


class Board(Protocol):
    """The device as its parts see it: its identity, its services and its other parts."""

    mac: str
    client_id: str
    board_type: str
    board_name: str
    firmware_version: str
    language: str
    serial_number: str | None
    hmac_key: bytes
    has_screen: bool
    glyph_push: bool
    ws_host_with_port: bool
    nvs_websocket: dict[str, str | int]
    reboot_requested: bool
    main_task: MainTask
    changes: Changes
    """Told where a part records something (for event-driven waits in tests)."""

    @property
    def ota(self) -> OtaPart:
        """The OTA client."""

    @property
    def channel(self) -> ChannelPart:
        """The audio channel."""

    @property
    def state_machine(self) -> StateMachinePart:
        """The device state."""

    @property
    def microphone(self) -> MicrophonePart:
        """The uplink."""

    @property
    def playback(self) -> PlaybackPart:
        """The downlink."""

    @property
    def protocol_version(self) -> int:
        """NVS `websocket/version`."""

    @property
    def state(self) -> DeviceState:
        """The device state."""

    @property
    def session_id(self) -> str:
        """The session id of the last server hello."""

    def now(self) -> float:
        """Current time on the device's clock."""

    async def http(self) -> aiohttp.ClientSession:
        """The device's HTTP session."""

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run `coro` as a job of the device."""

    def ws_headers(self) -> dict[str, str]:
        """The WebSocket handshake's headers."""

    def hello(self) -> DeviceHello:
        """The client hello."""

    async def on_incoming_json(self, obj: dict[str, Any]) -> bool:
        """`OnIncomingJson` for a message that is not the hello."""

    def on_audio_channel_closed(self) -> None:
        """`on_audio_channel_closed_`."""
