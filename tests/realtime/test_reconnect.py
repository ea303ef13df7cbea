"""The one retry policy: exponential or scheduled delays, caps, jitter, limits and resets."""

from __future__ import annotations

import pytest

from custom_components.openai_realtime_voice.realtime import ClientOptions, ReconnectPolicy


def test_exponential_delays_double_up_to_the_cap() -> None:
    """base, 2 base, 4 base, ... never above the cap; unlimited without max_attempts."""
    policy = ReconnectPolicy(base=0.5, cap=3.0)
    assert [policy.next_delay() for _ in range(6)] == [0.5, 1.0, 2.0, 3.0, 3.0, 3.0]
    assert policy.attempts == 6
    assert not policy.exhausted


def test_a_schedule_repeats_its_last_delay_forever() -> None:
    """The speech bridge's schedule: 5, 10, 30, 60, 120, then 300 s for as long as it fails."""
    policy = ReconnectPolicy(schedule=(5, 10, 30, 60, 120, 300))
    delays = [policy.next_delay() for _ in range(9)]
    assert delays == [5, 10, 30, 60, 120, 300, 300, 300, 300]
    policy.reset()
    assert policy.next_delay() == 5


def test_retries_are_bounded_by_max_attempts() -> None:
    """After max_attempts retries the policy gives up until a success resets it."""
    policy = ReconnectPolicy(base=1.0, cap=8.0, max_attempts=2)
    assert policy.next_delay() == 1.0
    assert policy.next_delay() == 2.0
    assert policy.exhausted
    assert policy.next_delay() is None
    assert policy.attempts == 2
    policy.reset()
    assert policy.next_delay() == 1.0


@pytest.mark.parametrize(("draw", "factor"), [(0.0, 1.0), (0.5, 0.875), (1.0, 0.75)])
def test_jitter_takes_up_to_its_fraction_off(draw: float, factor: float) -> None:
    """jitter 0.25 waits 75-100 % of the delay, never more than the delay."""
    policy = ReconnectPolicy(base=2.0, cap=2.0, jitter=0.25, rng=lambda: draw)
    assert policy.next_delay() == pytest.approx(2.0 * factor)


async def test_wait_sleeps_the_delay_and_says_when_to_give_up() -> None:
    """wait() sleeps each delay through the injected sleep; False once exhausted, at once."""
    slept: list[float] = []

    async def sleep(delay: float) -> None:
        slept.append(delay)

    policy = ReconnectPolicy(base=0.1, cap=1.0, max_attempts=3, sleep=sleep)
    assert await policy.wait()
    assert await policy.wait()
    assert await policy.wait(at_least=2.0)  # the other side's retry-after is longer
    assert not await policy.wait(at_least=2.0)
    assert slept == [0.1, 0.2, 2.0]


def test_bad_settings_are_refused() -> None:
    """A jitter outside 0-1 or a negative delay is a programming error."""
    with pytest.raises(ValueError, match="jitter"):
        ReconnectPolicy(jitter=1.5)
    with pytest.raises(ValueError, match="negative"):
        ReconnectPolicy(schedule=(1.0, -1.0))
    assert "attempts=0/inf" in repr(ReconnectPolicy())


def test_client_options_build_the_clients_backoff() -> None:
    """The client's reconnects, create retries and the agent's rate-limit retries share it."""
    options = ClientOptions(backoff_base=0.25, backoff_max=1.0)
    policy = options.retry_policy(3)
    assert policy.max_attempts == 3
    assert policy.jitter == 0.25
    assert policy.delay(1) == 0.25
    assert policy.delay(4) == 1.0
