"""Tests for RealtimeResponse stream bookkeeping."""

from __future__ import annotations

from custom_components.openai_realtime_voice.realtime import (
    AudioDelta,
    RealtimeResponse,
    ServerError,
    TextDelta,
)


async def test_push_after_cancel_or_done_is_dropped() -> None:
    """Deltas after a local cancel or after the end are ignored."""
    response = RealtimeResponse("resp_1")
    assert response.audio_ms == 0
    response.push(AudioDelta(bytes(96), "item_1"))
    assert AudioDelta(bytes(96), "i").duration_ms == 2
    response.cancelled = True
    response.push(AudioDelta(bytes(96), "item_1"))
    response.finish("cancelled")
    response.finish("completed")
    response.push(TextDelta("late", "item_1"))
    assert response.status == "cancelled"
    assert response.audio_ms == 2
    assert [chunk async for chunk in response.audio()] == [bytes(96)]
    assert await response.wait() is response


def test_server_error_from_malformed_event() -> None:
    """Malformed error events still give a ServerError."""
    error = ServerError.from_event({"type": "error", "error": "nope"})
    assert error == ServerError(type="", code=None, message="", event_id=None)
