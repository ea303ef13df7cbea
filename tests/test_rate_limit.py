"""The sliding-window rate limiter the device endpoints use per source address."""

from __future__ import annotations

from custom_components.openai_realtime_voice.rate_limit import RateLimiter


def test_limit_per_key_and_window() -> None:
    """`limit` events per key within the window; refused events are not counted."""
    now = 0.0
    limiter = RateLimiter(2, 10.0, clock=lambda: now)
    assert limiter.allow("a")
    assert limiter.allow("a")
    assert not limiter.allow("a")
    assert limiter.allow("b")
    now = 9.9
    assert not limiter.allow("a")
    now = 10.0  # the first two events left the window
    assert limiter.allow("a")
    assert limiter.allow("a")
    assert not limiter.allow("a")


def test_keys_are_bounded() -> None:
    """Beyond `max_keys` the least recently used key is forgotten (and starts afresh)."""
    limiter = RateLimiter(1, 60.0, clock=lambda: 0.0, max_keys=2)
    assert limiter.allow("a")
    assert limiter.allow("b")
    assert not limiter.allow("a")  # "a" is now the most recently used
    assert limiter.allow("c")  # forgets "b"
    assert limiter.allow("b")  # forgets "a"
    assert limiter.allow("a")
