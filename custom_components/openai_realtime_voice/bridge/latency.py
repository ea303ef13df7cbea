"""Where a device turn's latency starts: the end of the user's speech at the device.

The *Response latency* of a device runs from the end of the user's speech at the device to the
first reply audio sent to it, turn detection (VAD) window included, the same figure the
simulator prints. Home Assistant never hears the end of speech itself: the Realtime service
reports where its turn detection stopped as a position in the session's input audio
(`input_audio_buffer.speech_stopped.audio_end_ms`, which "includes the min_silence_duration_ms",
as the openai SDK documents the event). With server VAD the speech ended
`silence_duration_ms` before that position. Semantic VAD does not say how long it waited, so
its figure starts at the position itself and leaves that wait out.

`UplinkClock` remembers when each stretch of a session's input audio arrived from the device,
which turns such a position into a moment.
"""

from __future__ import annotations

from collections import deque
from typing import Final

from ..realtime import ServerVad, TurnDetection

KEPT_BATCHES: Final = 600
"""Uplink batches remembered (about a minute of audio): turns end well within that."""


class UplinkClock:
    """When the audio at a position of a session's input buffer arrived from the device."""

    __slots__ = ("_end_ms", "_marks", "_session")

    def __init__(self) -> None:
        """Nothing appended yet."""
        self._session: object = None
        self._end_ms = 0
        self._marks: deque[tuple[int, float]] = deque(maxlen=KEPT_BATCHES)

    def appended(self, session: object, duration_ms: int, arrived: float) -> None:
        """`duration_ms` of audio that arrived at `arrived` went to `session` (a new one resets)."""
        if session != self._session:
            self._session, self._end_ms = session, 0
            self._marks.clear()
        self._end_ms += duration_ms
        self._marks.append((self._end_ms, arrived))

    def arrival(self, session: object, position_ms: int) -> float | None:
        """When the audio at `position_ms` of `session` arrived; None if not remembered."""
        if (batch := self._batch(session, position_ms)) is None:
            return None
        end_ms, arrived = batch
        # Audio streams in at real time: the position came this long before the batch end.
        return arrived - (end_ms - position_ms) / 1000

    def received(self, session: object, position_ms: int) -> float | None:
        """When the batch holding `position_ms` of `session` had arrived whole (no estimate
        within the batch: never earlier than the audio really came); None if not remembered."""
        batch = self._batch(session, position_ms)
        return batch[1] if batch is not None else None

    def _batch(self, session: object, position_ms: int) -> tuple[int, float] | None:
        """The (end position, arrival) of the batch holding `position_ms`."""
        if session != self._session or not self._marks or position_ms < 0:
            return None
        first_end, _ = self._marks[0]
        if position_ms < first_end - 1000:  # older than what is kept
            return None
        for end_ms, arrived in self._marks:
            if end_ms >= position_ms:
                return end_ms, arrived
        return None


def speech_end(
    clock: UplinkClock,
    session: object,
    audio_end_ms: int,
    detection: TurnDetection | None,
    now: float,
) -> float:
    """The moment the user's speech ended at the device, for a `speech_stopped` event.

    Without a remembered arrival (audio older than kept) the service's silence window is
    counted back from now.
    """
    silence_ms = detection.silence_duration_ms if isinstance(detection, ServerVad) else 0
    arrived = clock.arrival(session, max(0, audio_end_ms - silence_ms))
    return arrived if arrived is not None else now - silence_ms / 1000


def speech_start(
    clock: UplinkClock,
    session: object,
    audio_start_ms: int,
    detection: TurnDetection | None,
    now: float,
) -> float:
    """When the start of the user's speech had reached Home Assistant, for `speech_started`.

    The position "includes the `prefix_padding_ms`" (openai SDK, InputAudioBufferSpeechStarted
    Event): server VAD heard speech that much later. The moment is the arrival of the uplink
    batch that holds it: never before the user really spoke (a device that sends its audio
    in a burst is not credited with an earlier start), at most one batch after. Without a
    remembered arrival, now (the event came after the speech began).
    """
    padding_ms = detection.prefix_padding_ms if isinstance(detection, ServerVad) else 0
    received = clock.received(session, audio_start_ms + padding_ms)
    return received if received is not None else now
