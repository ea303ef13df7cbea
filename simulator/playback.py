"""The board's downlink: Speaking-state gating, the 40-packet decode queue, the speaker.

`AudioService` queues received Opus packets only while Speaking and only up to
`MAX_DECODE_PACKETS_IN_QUEUE`; each played packet keeps the queue busy for its frame duration,
which is what `pending_listening_start_` waits for in auto mode.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

import opuslib_next

from custom_components.openai_realtime_voice.xiaozhi import BinaryFrameError, decode_audio_frame

from .board import Board
from .firmware import DeviceState, version_newer

MAX_DECODE_PACKETS_IN_QUEUE = 2400 // 60


@dataclass(slots=True)
class DownlinkPacket:
    """One received binary frame: when it arrived and what became of it."""

    arrival: float
    payload: bytes
    outcome: str  # "played", "not_speaking", "queue_full", "bad_frame", "decode_error"
    queue_depth: int = 0


class Playback:
    """The decode queue and what the speaker played, packet by packet."""

    def __init__(self, device: Board) -> None:
        """An empty queue; the decoder is made by the server hello (`start`)."""
        self._device = device
        self.downlink: list[DownlinkPacket] = []
        self.played_pcm = bytearray()
        self.cut_at_stop = 0
        self._decoder: Any = None
        self._ends: deque[float] = deque()

    def start(self, sample_rate: int) -> None:
        """A decoder for the server hello's sample rate (mono)."""
        self._decoder = opuslib_next.Decoder(sample_rate, 1)

    def reset(self) -> None:
        """`ResetDecoder`: clears the decode and playback queues."""
        self._ends.clear()

    def drained_at(self) -> float:
        """When the last queued packet has played (the queue must not be empty)."""
        return self._ends[-1]

    def on_tts_stop(self) -> None:
        """Before v2.2.2 `tts stop` clears the playback queue at once (no
        `WaitForPlaybackQueueEmpty`): count the packets that were never heard."""
        if not version_newer(self._device.firmware_version, "2.2.1"):
            self.cut_at_stop += self.queue_depth(self._device.now())
            self._ends.clear()

    def queue_depth(self, now: float) -> int:
        """Packets still waiting in the emulated decode queue at time `now`."""
        while self._ends and self._ends[0] <= now:
            self._ends.popleft()
        return len(self._ends)

    def on_binary(self, data: bytes) -> None:
        """Queue downlink audio only while Speaking, and only up to 40 packets."""
        now = self._device.now()
        protocol_version = self._device.protocol_version
        try:
            packet = decode_audio_frame(protocol_version, data)
        except BinaryFrameError:
            self.downlink.append(DownlinkPacket(now, data, "bad_frame"))
            return
        server_hello = self._device.channel.server_hello
        if self._device.state is not DeviceState.SPEAKING or server_hello is None:
            self.downlink.append(DownlinkPacket(now, packet.payload, "not_speaking"))
            return
        depth = self.queue_depth(now)
        if depth >= MAX_DECODE_PACKETS_IN_QUEUE:
            self.downlink.append(DownlinkPacket(now, packet.payload, "queue_full", depth))
            return
        params = server_hello.audio_params
        try:
            pcm = self._decoder.decode(packet.payload, params.samples_per_frame)
        except opuslib_next.OpusError:
            self.downlink.append(DownlinkPacket(now, packet.payload, "decode_error", depth))
            return
        self.played_pcm.extend(pcm)
        start = self._ends[-1] if self._ends else now
        self._ends.append(max(start, now) + params.frame_duration / 1000)
        self.downlink.append(DownlinkPacket(now, packet.payload, "played", depth))

    def outcomes(self) -> dict[str, int]:
        """Count received binary frames by outcome."""
        counts: dict[str, int] = {}
        for packet in self.downlink:
            counts[packet.outcome] = counts.get(packet.outcome, 0) + 1
        return counts
