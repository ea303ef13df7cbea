"""Tests for usage aggregation and cost estimates."""

from __future__ import annotations

import pytest

from custom_components.openai_realtime_voice.realtime import Usage, prices_for
from realtime_server import default_usage


def test_prices_lookup() -> None:
    """Longest prefix wins; dated snapshots share their family's price; unknown is None."""
    assert prices_for("gpt-realtime").text_out == 16.0  # type: ignore[union-attr]
    assert prices_for("gpt-realtime-2025-08-28").audio_in == 32.0  # type: ignore[union-attr]
    assert prices_for("gpt-realtime-mini-2025-12-15").text_in == 0.60  # type: ignore[union-attr]
    assert prices_for("gpt-realtime-2.1-mini").audio_out == 20.0  # type: ignore[union-attr]
    assert prices_for("gpt-realtime-2.1").text_out == 24.0  # type: ignore[union-attr]
    assert prices_for("my-azure-deployment") is None


def test_usage_and_cost() -> None:
    """Cached tokens are a subset of input and billed at the cached rate."""
    usage = Usage()
    usage.add(default_usage())
    usage.add(None)
    usage.add({"input_token_details": "junk", "output_token_details": {"text_tokens": True}})
    assert usage.responses == 2
    assert (usage.text_in, usage.text_cached, usage.audio_in) == (119, 64, 13)
    assert (usage.text_out, usage.audio_out) == (30, 91)
    prices = prices_for("gpt-realtime")
    assert prices is not None
    expected = (55 * 4.0 + 64 * 0.4 + 13 * 32.0 + 30 * 16.0 + 91 * 64.0) / 1e6
    assert usage.cost(prices) == pytest.approx(expected)
