"""Release encoded frames to a device at real time, after a short pre-buffer.

xiaozhi devices queue at most 40 packets and silently drop the rest, and barge-in must cut
audio at once. The `Pacer` models the device's play-out: `play_end` is when everything sent
so far will have been played. A frame is sent only while the device holds fewer than
`prebuffer` frames, so its queue never exceeds `prebuffer` (<= 40) whatever the clock does.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
import contextlib
import logging
from typing import Final

from .clock import Clock, LoopClock
from .errors import AudioFormatError
from .pcm import DEFAULT_FRAME_MS

_LOGGER = logging.getLogger(__name__)

DEVICE_QUEUE_FRAMES: Final = 40
"""Packets a xiaozhi device buffers before it drops audio."""

DEFAULT_PREBUFFER: Final = 5
"""Frames sent at once when a stream starts, like the reference server."""

type Send = Callable[[bytes], Awaitable[None]]


class Pacer:
    """Send queued frames through `send` at real time and track what the device has played.

    `push()` queues frames (the sender task starts on demand); `drained()` waits until all
    of them have been played out; `stop()` drops the rest at once (barge-in) and returns the
    played position for `conversation.item.truncate`; `close()` ends the pacer.
    """

    def __init__(
        self,
        send: Send,
        *,
        frame_ms: int = DEFAULT_FRAME_MS,
        prebuffer: int = DEFAULT_PREBUFFER,
        device_queue: int = DEVICE_QUEUE_FRAMES,
        clock: Clock | None = None,
        name: str = "pacer",
    ) -> None:
        """Configure pacing; `prebuffer` frames go out at once and bound the device's queue."""
        if frame_ms <= 0:
            raise AudioFormatError(f"frame duration must be positive, not {frame_ms} ms")
        if not 1 <= prebuffer <= device_queue:
            raise AudioFormatError(f"prebuffer must be 1..{device_queue} frames, not {prebuffer}")
        self._send = send
        self._clock: Clock = clock or LoopClock()
        self._frame_s = frame_ms / 1000
        self._lead = (prebuffer - 1) * self._frame_s
        self.frame_ms = frame_ms
        self.prebuffer = prebuffer
        self._name = name
        self._queue: deque[bytes] = deque()
        self._task: asyncio.Task[None] | None = None
        self._wakeup: asyncio.Future[None] | None = None
        self._changed: asyncio.Future[None] | None = None
        self._play_end = float("-inf")
        self._sent = 0
        self._sending = False
        self._stream = 0
        self._error: BaseException | None = None
        self._closed = False

    @property
    def queued(self) -> int:
        """Frames waiting to be sent."""
        return len(self._queue)

    @property
    def sent(self) -> int:
        """Frames sent in the current stream (since creation or the last `stop()`)."""
        return self._sent

    @property
    def buffered_ms(self) -> float:
        """Estimated audio the device holds but has not played yet, in milliseconds."""
        return max(0.0, self._play_end - self._clock.now()) * 1000

    @property
    def played_ms(self) -> int:
        """Audio of the current stream the device has played so far, in whole milliseconds."""
        return max(0, round(self._sent * self.frame_ms - self.buffered_ms))

    def push(self, frame: bytes) -> None:
        """Queue one encoded frame; frames are sent in order, paced to real time."""
        if self._closed or self._error is not None:
            return
        self._queue.append(frame)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"{self._name} sender"
            )
        elif self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)

    async def drained(self) -> None:
        """Return once every queued frame has been sent and played out, or on `stop()`.

        Re-raises the error of a failed `send`.
        """
        stream = self._stream
        clock = self._clock
        while True:
            if self._error is not None:
                raise self._error
            idle = not self._queue and not self._sending
            if stream != self._stream or self._closed or (idle and self._play_end <= clock.now()):
                return
            changed = self._changed_future()
            if not idle:
                await changed
                continue
            timer = asyncio.ensure_future(clock.sleep_until(self._play_end))
            try:
                await asyncio.wait((timer, changed), return_when=asyncio.FIRST_COMPLETED)
            finally:
                timer.cancel()

    async def stop(self) -> int:
        """Drop queued frames and stop sending now; return the stream's played milliseconds.

        The next `push()` starts a new stream whose position counts from zero; a failed
        send is forgotten.
        """
        played = self.played_ms
        self._queue.clear()
        await self._cancel_sender()
        self._sent = 0
        self._stream += 1
        self._error = None
        self._notify()
        return played

    async def close(self) -> None:
        """Stop and refuse further frames; safe to call more than once."""
        self._closed = True
        await self.stop()

    async def _cancel_sender(self) -> None:
        """Cancel the sender task and wait for it to finish."""
        task, self._task = self._task, None
        self._sending = False
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    def _changed_future(self) -> asyncio.Future[None]:
        """Return a future resolved at the next state change (push, idle, stop, error)."""
        if self._changed is None or self._changed.done():
            self._changed = asyncio.get_running_loop().create_future()
        return self._changed

    def _notify(self) -> None:
        """Wake whoever waits in `drained()`."""
        if self._changed is not None and not self._changed.done():
            self._changed.set_result(None)

    async def _run(self) -> None:
        """Send frames whenever the device's estimated buffer has room for one more."""
        clock, queue, frame_s = self._clock, self._queue, self._frame_s
        loop = asyncio.get_running_loop()
        try:
            while True:
                if not queue:
                    self._notify()
                    self._wakeup = loop.create_future()
                    await self._wakeup
                    continue
                ready_at = self._play_end - self._lead
                if ready_at > clock.now():
                    await clock.sleep_until(ready_at)
                frame = queue.popleft()
                self._sending = True
                await self._send(frame)
                self._sending = False
                self._play_end = max(self._play_end, clock.now()) + frame_s
                self._sent += 1
        except asyncio.CancelledError:
            raise
        except Exception as err:  # noqa: BLE001 - any send failure ends the stream for the owner
            _LOGGER.debug("%s: send failed, dropping %d frames: %r", self._name, len(queue), err)
            self._error = err
            self._sending = False
            queue.clear()
            self._task = None
            self._notify()
