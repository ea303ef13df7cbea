"""The per-address limits of the device endpoints (events per sliding window, reads open at once)
and the token bucket of a device's frame budget."""

from __future__ import annotations

from custom_components.openai_realtime_voice.rate_limit import OpenLimiter, RateLimiter, TokenBucket


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


def test_open_limiter_counts_what_is_open_per_key() -> None:
    """At most `limit` open per key; closing frees a slot; idle keys are forgotten."""
    limiter = OpenLimiter(2)
    assert limiter.acquire("a")
    assert limiter.acquire("a")
    assert not limiter.acquire("a")
    assert limiter.acquire("b")
    assert (limiter.open("a"), limiter.open("b")) == (2, 1)
    limiter.release("a")
    assert limiter.acquire("a")
    for key in ("a", "a", "b"):
        limiter.release(key)
    assert (limiter.open("a"), limiter.open("b")) == (0, 0)
    assert not limiter._open  # nothing kept for keys with nothing open


def test_token_bucket_bursts_refills_and_keeps_its_debt() -> None:
    """A full bucket allows a burst; it refills at its rate, never above the burst, and an
    overspender waits for its debt to be repaid."""
    now = 0.0
    bucket = TokenBucket(10.0, 100.0, clock=lambda: now)
    assert bucket.spend(100)
    assert not bucket.spend(50)  # 50 in debt
    now = 5.0  # +50: back to zero
    assert bucket.spend(0)
    assert not bucket.spend(1)
    now = 1000.0  # refilled, but only up to the burst
    assert bucket.spend(99)
    assert bucket.spend(1)
    assert not bucket.spend(1)
