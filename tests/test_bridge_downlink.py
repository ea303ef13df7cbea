"""`Downlink`: tts start/stop, sentences and Opus frames to the device."""

from __future__ import annotations

import asyncio
import shutil

from custom_components.openai_realtime_voice.audio import load_opuslib
from custom_components.openai_realtime_voice.bridge import (
    Downlink,
)

FFMPEG = shutil.which("ffmpeg") or "ffmpeg"


class _Session:
    """A device session that records what the downlink queued, in order."""

    def __init__(self) -> None:
        self.speaking = False
        self.sent: list[str] = []

    def send_tts_start(self) -> None:
        self.speaking = True
        self.sent.append("start")

    def send_tts_stop(self) -> None:
        self.speaking = False
        self.sent.append("stop")

    def send_sentence(self, text: str) -> None:
        self.sent.append(f"sentence:{text}")

    def send_emotion(self, emotion: str, text: str | None = None) -> None:
        self.sent.append(f"emotion:{emotion}")

    def send_stt(self, text: str) -> None:
        self.sent.append(f"stt:{text}")

    def send_alert(self, status: str, message: str, emotion: str) -> None:
        self.sent.append("alert")


class _Link:
    """A device link that counts the audio frames it carried."""

    def __init__(self) -> None:
        self.session = _Session()
        self.closed = False

    async def flush(self) -> None:
        """Nothing to transmit."""

    async def send_audio(self, opus_packet: bytes) -> bool:
        self.session.sent.append("frame")
        return True


async def test_downlink_shows_late_sentences_before_tts_stop() -> None:
    """Sentences whose audio already played are shown at the play-out, before `tts stop`;
    `stop_guard` waits after the reply (firmware that clears its queue at `tts stop`)."""
    await asyncio.get_running_loop().run_in_executor(None, load_opuslib)
    link = _Link()
    downlink = Downlink(link, sample_rate=24000, frame_ms=60, stop_guard=0.3)
    await downlink.start()
    downlink.audio(bytes(2880))  # one frame of audio for a two-sentence text
    await downlink.text("Great. It is done.")
    await downlink.finish()
    loop = asyncio.get_running_loop()
    began = loop.time()
    await downlink.drained()
    assert loop.time() - began >= 0.3  # the play-out alone is 60 ms
    await downlink.end()
    await downlink.close()
    assert link.session.sent == [
        "start",
        "emotion:happy",
        "sentence:Great.",
        "frame",
        "sentence:It is done.",
        "stop",
    ]
