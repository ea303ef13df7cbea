"""The board's microphone path: 16 kHz PCM16 -> 60 ms Opus packets with DTX -> the channel.

`Microphone.enabled` is `AudioService::EnableVoiceProcessing`: the state machine turns it on
with `listen start` and off where the firmware does; frames captured while it is off are
dropped, as the firmware's disabled voice processing does.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any
import wave

import numpy as np
import opuslib_next

from custom_components.openai_realtime_voice.xiaozhi import encode_audio_frame

from .board import Board
from .errors import SimulatorError

UPLINK_SAMPLE_RATE = 16000
UPLINK_FRAME_MS = 60
UPLINK_FRAME_SAMPLES = UPLINK_SAMPLE_RATE * UPLINK_FRAME_MS // 1000


def encode_pcm16(pcm: bytes, encoder: Any) -> list[bytes]:
    """Encode 16 kHz mono PCM16 into 60 ms Opus packets, zero-padding the last frame."""
    frame_bytes = UPLINK_FRAME_SAMPLES * 2
    packets = []
    for start in range(0, len(pcm), frame_bytes):
        chunk = pcm[start : start + frame_bytes].ljust(frame_bytes, b"\0")
        packets.append(bytes(encoder.encode(chunk, UPLINK_FRAME_SAMPLES)))
    return packets


def new_uplink_encoder() -> Any:
    """An Opus encoder configured like the firmware's AS_OPUS_ENC_CONFIG."""
    encoder = opuslib_next.Encoder(UPLINK_SAMPLE_RATE, 1, opuslib_next.APPLICATION_AUDIO)
    encoder.bitrate = opuslib_next.constants.AUTO
    encoder.complexity = 0
    encoder.inband_fec = 0
    encoder.dtx = 1
    encoder.vbr = 1
    return encoder


def read_wav_as_16k(path: Path) -> bytes:
    """Read a PCM16 WAV file as 16 kHz mono (averaging channels, resampling linearly)."""
    with wave.open(str(path), "rb") as wav:
        if wav.getsampwidth() != 2:
            raise SimulatorError("only 16-bit WAV files are supported")
        channels, rate = wav.getnchannels(), wav.getframerate()
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    mono = samples.reshape(-1, channels).mean(axis=1)
    if rate != UPLINK_SAMPLE_RATE:
        count = int(len(mono) * UPLINK_SAMPLE_RATE / rate)
        mono = np.interp(np.arange(count) * rate / UPLINK_SAMPLE_RATE, np.arange(len(mono)), mono)
    pcm: bytes = np.clip(np.round(mono), -32768, 32767).astype("<i2").tobytes()
    return pcm


class Microphone:
    """The Opus encoder, the uplink timestamps and the voice processing switch of one board."""

    def __init__(self, device: Board) -> None:
        """Start with voice processing off, as the board boots."""
        self._device = device
        self.enabled = False  # AudioService::EnableVoiceProcessing
        self.frames_dropped = 0
        self.encoder = new_uplink_encoder()
        self._uplink_ms = 0

    async def send_packet(self, packet: bytes) -> None:
        """Frame one Opus packet for the NVS protocol version and send it."""
        await self._device.channel.send_bytes(
            encode_audio_frame(self._device.protocol_version, packet, timestamp=self._uplink_ms)
        )
        self._uplink_ms = (self._uplink_ms + UPLINK_FRAME_MS) & 0xFFFFFFFF

    async def send_audio(self, pcm: bytes, *, realtime: bool = False) -> int:
        """Stream 16 kHz mono PCM16 as the microphone would; returns packets sent.

        Frames captured while the microphone is off (e.g. Speaking in auto mode) are dropped,
        as the firmware's disabled voice processing does. `realtime` paces at 60 ms per frame.
        """
        loop = asyncio.get_running_loop()
        start = loop.time()
        sent = 0
        for index, packet in enumerate(encode_pcm16(pcm, self.encoder)):
            if realtime:
                await asyncio.sleep(max(0.0, start + index * UPLINK_FRAME_MS / 1000 - loop.time()))
            if not self.enabled:
                self.frames_dropped += 1
                continue
            await self.send_packet(packet)
            sent += 1
        return sent

    async def send_wav(self, path: Path, *, realtime: bool = False) -> int:
        """Stream a 16-bit WAV file (any rate, mono or stereo) through `send_audio`."""
        pcm = await asyncio.to_thread(read_wav_as_16k, path)
        return await self.send_audio(pcm, realtime=realtime)
