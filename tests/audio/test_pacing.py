"""Tests for the Pacer, driven by a manual clock (no real sleeps)."""

from __future__ import annotations

import asyncio

import pytest

from custom_components.openai_realtime_voice.audio import (
    DEVICE_QUEUE_FRAMES,
    AudioFormatError,
    LoopClock,
    Pacer,
)
from tests.manual_clock import ManualClock

FRAME = 0.06


class Device:
    """Records what the pacer sends and models a device playing 60 ms per frame."""

    def __init__(self, clock: ManualClock) -> None:
        """Start with nothing received."""
        self.clock = clock
        self.times: list[float] = []
        self.frames: list[bytes] = []
        self.play_end = 0.0
        self.max_queue = 0

    async def send(self, frame: bytes) -> None:
        """Receive one frame and track the device's queue length."""
        now = self.clock.now()
        self.play_end = max(self.play_end, now) + FRAME
        queued = round((self.play_end - now) / FRAME)
        self.max_queue = max(self.max_queue, queued)
        self.times.append(now)
        self.frames.append(frame)


def frames(n: int) -> list[bytes]:
    """Return n distinct frames."""
    return [i.to_bytes(2, "big") for i in range(n)]


async def test_prebuffer_then_real_time_release() -> None:
    """The first `prebuffer` frames go out at once, the rest one per frame duration."""
    clock = ManualClock()
    device = Device(clock)
    pacer = Pacer(device.send, clock=clock)
    for frame in frames(20):
        pacer.push(frame)
    await clock.advance(0)
    assert device.times == [0.0] * 5
    assert pacer.queued == 15
    await clock.advance(2)
    assert device.frames == frames(20)
    expected = [0.0] * 5 + [(i - 4) * FRAME for i in range(5, 20)]
    assert device.times == pytest.approx(expected)
    assert device.max_queue <= 5
    await pacer.close()


@pytest.mark.parametrize("prebuffer", [1, 3, DEVICE_QUEUE_FRAMES])
async def test_device_queue_never_exceeds_bound(prebuffer: int) -> None:
    """However frames arrive, the device never holds more than `prebuffer` (<= 40) frames."""
    clock = ManualClock()
    device = Device(clock)
    pacer = Pacer(device.send, clock=clock, prebuffer=prebuffer)
    for burst in range(10):
        for frame in frames(30):
            pacer.push(frame)
        await clock.advance(0.5 + 0.13 * burst)
    await clock.advance(30)
    assert len(device.frames) == 300
    assert device.max_queue <= prebuffer <= DEVICE_QUEUE_FRAMES
    await pacer.close()


async def test_played_position_follows_the_clock() -> None:
    """played_ms is what was sent minus what the device still buffers."""
    clock = ManualClock()
    device = Device(clock)
    pacer = Pacer(device.send, clock=clock)
    for frame in frames(20):
        pacer.push(frame)
    await clock.advance(0)
    assert pacer.played_ms == 0
    assert pacer.buffered_ms == pytest.approx(300)
    await clock.advance(0.5)
    assert pacer.played_ms == pytest.approx(500, abs=1)
    await clock.advance(5)
    assert pacer.played_ms == 1200
    assert pacer.sent == 20
    assert pacer.buffered_ms == 0
    await pacer.close()


async def test_underrun_restarts_with_prebuffer() -> None:
    """After the device ran dry, new frames go out immediately again."""
    clock = ManualClock()
    device = Device(clock)
    pacer = Pacer(device.send, clock=clock, prebuffer=2)
    for frame in frames(3):
        pacer.push(frame)
    await clock.advance(1)
    assert device.times == pytest.approx([0.0, 0.0, 0.06])
    for frame in frames(2):
        pacer.push(frame)
    await clock.advance(0)
    assert device.times[3:] == [1.0, 1.0]
    assert pacer.played_ms == 180
    await pacer.close()


async def test_stop_drops_queue_at_once_and_reports_position() -> None:
    """Barge-in: stop() returns without the clock moving, and nothing is sent afterwards."""
    clock = ManualClock()
    device = Device(clock)
    pacer = Pacer(device.send, clock=clock)
    for frame in frames(100):
        pacer.push(frame)
    await clock.advance(1.0)
    sent = len(device.frames)
    played = await pacer.stop()
    assert played == pytest.approx(1000, abs=1)
    assert pacer.queued == 0
    await clock.advance(10)
    assert len(device.frames) == sent
    assert pacer.played_ms == 0  # a new stream starts from zero
    pacer.push(b"new")
    await clock.advance(0)
    assert device.frames[-1] == b"new"
    assert pacer.sent == 1
    await pacer.close()


async def test_stop_interrupts_a_blocked_send() -> None:
    """A send stuck on back-pressure does not delay stop()."""
    clock = ManualClock()
    blocked = asyncio.Event()
    started = asyncio.Event()

    async def send(frame: bytes) -> None:
        started.set()
        await blocked.wait()

    pacer = Pacer(send, clock=clock)
    pacer.push(b"x")
    await started.wait()
    assert await pacer.stop() == 0
    await pacer.close()


async def test_drained_waits_for_play_out() -> None:
    """drained() returns only when the last frame has been played, so `tts stop` can follow."""
    clock = ManualClock()
    device = Device(clock)
    pacer = Pacer(device.send, clock=clock)
    for frame in frames(10):
        pacer.push(frame)
    waiter = asyncio.create_task(pacer.drained())
    await clock.advance(0.59)
    assert not waiter.done()
    # Frames pushed while waiting extend the wait.
    pacer.push(b"late")
    await clock.advance(0.02)
    assert not waiter.done()
    await clock.advance(0.06)
    assert waiter.done()
    assert clock.now() >= 0.66
    assert pacer.played_ms == 660
    await pacer.close()


async def test_drained_returns_at_once_when_idle_or_stopped() -> None:
    """Nothing queued means drained; stop() releases a waiter without waiting for play-out."""
    clock = ManualClock()
    device = Device(clock)
    pacer = Pacer(device.send, clock=clock)
    await pacer.drained()
    for frame in frames(10):
        pacer.push(frame)
    waiter = asyncio.create_task(pacer.drained())
    await clock.advance(0.1)
    await pacer.stop()
    await asyncio.wait_for(waiter, 1)
    await pacer.close()


async def test_drained_waits_while_a_frame_is_queued() -> None:
    """A waiter started while frames are pending wakes when the queue empties."""
    clock = ManualClock()
    device = Device(clock)
    pacer = Pacer(device.send, clock=clock, prebuffer=1)
    pacer.push(b"a")
    pacer.push(b"b")
    waiter = asyncio.create_task(pacer.drained())
    await clock.advance(0.06)
    assert not waiter.done()
    await clock.advance(0.06)
    assert waiter.done()
    await pacer.close()


async def test_send_failure_surfaces_in_drained() -> None:
    """A failing send ends the stream; drained() re-raises it and later pushes are dropped."""
    clock = ManualClock()
    calls = 0

    async def send(frame: bytes) -> None:
        nonlocal calls
        calls += 1
        raise ConnectionResetError("gone")

    pacer = Pacer(send, clock=clock)
    for frame in frames(5):
        pacer.push(frame)
    await clock.advance(0)
    with pytest.raises(ConnectionResetError):
        await pacer.drained()
    pacer.push(b"more")
    await clock.advance(1)
    assert calls == 1
    assert pacer.queued == 0
    await pacer.stop()  # a new stream forgets the failure
    await pacer.drained()
    await pacer.close()


async def test_close_refuses_frames_and_is_idempotent() -> None:
    """After close() pushes are ignored and no task is left running."""
    clock = ManualClock()
    device = Device(clock)
    pacer = Pacer(device.send, clock=clock)
    pacer.push(b"a")
    await pacer.close()
    await pacer.close()
    pacer.push(b"b")
    await clock.advance(1)
    assert device.frames in ([], [b"a"])
    await pacer.drained()


async def test_with_loop_clock() -> None:
    """The default clock paces on the event loop (tiny frames keep this fast)."""
    sent: list[float] = []
    loop = asyncio.get_running_loop()

    async def send(frame: bytes) -> None:
        sent.append(loop.time())

    pacer = Pacer(send, frame_ms=2, prebuffer=1)
    for frame in frames(4):
        pacer.push(frame)
    await pacer.drained()
    assert len(sent) == 4
    assert sent[-1] - sent[0] >= 0.005
    await pacer.close()


async def test_loop_clock_past_deadline_returns() -> None:
    """Sleeping until a past deadline does not wait."""
    clock = LoopClock()
    await clock.sleep_until(clock.now() - 1)


@pytest.mark.parametrize(
    "kwargs",
    [{"frame_ms": 0}, {"prebuffer": 0}, {"prebuffer": 41}, {"prebuffer": 3, "device_queue": 2}],
)
def test_invalid_settings(kwargs: dict[str, int]) -> None:
    """Impossible pacing settings are typed errors."""

    async def send(frame: bytes) -> None:
        """Never called."""

    with pytest.raises(AudioFormatError):
        Pacer(send, **kwargs)  # type: ignore[arg-type]
