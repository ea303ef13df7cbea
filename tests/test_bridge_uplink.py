"""`Uplink`: the device's Opus packets decoded and batched for the service."""

from __future__ import annotations

import asyncio
import shutil

from custom_components.openai_realtime_voice.audio import OpusEncoder, load_opuslib
from custom_components.openai_realtime_voice.bridge import (
    Uplink,
)

FFMPEG = shutil.which("ffmpeg") or "ffmpeg"


async def test_uplink_batches_and_flushes() -> None:
    """Packets decode to 24 kHz and leave in ~100 ms batches; the rest is flushed."""
    await asyncio.get_running_loop().run_in_executor(None, load_opuslib)
    packet = OpusEncoder(16000, 60).encode(bytes(1920))
    uplink = Uplink(24000, 60)
    assert uplink.feed(packet) is None
    batch = uplink.feed(packet)
    assert batch is not None
    assert len(batch) == 2 * 2880
    assert uplink.flush() is None
    uplink.feed(packet)
    assert uplink.flush() is not None
    uplink.reset()
