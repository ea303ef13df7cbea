"""Entry usage: token totals, the cost estimate, price overrides and persistence."""

from __future__ import annotations

from datetime import timedelta
import logging
from types import MappingProxyType
from typing import Any

from homeassistant.config_entries import ConfigSubentry
from homeassistant.const import STATE_UNKNOWN
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
import homeassistant.util.dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed

from custom_components.openai_realtime_voice.const import DOMAIN, SUBENTRY_CONVERSATION
from custom_components.openai_realtime_voice.realtime import ModelPrices, Usage
from custom_components.openai_realtime_voice.settings import recommended_agent
from custom_components.openai_realtime_voice.usage import (
    PRICE_FIELDS,
    SAVE_DELAY,
    EntryUsage,
    InvalidPricesError,
    effective_prices,
    parse_prices,
)
from realtime_server import RealtimeServer, ScriptedResponse, default_usage
from realtime_server.discipline import DURATION_USAGE, TOKEN_USAGE
from tests.agent_helpers import agent_of, ask_agent, reconfigure_agent, set_settings

STORE_KEY = "openai_realtime_voice.usage.entry1"

# default_usage(): text in 119 (64 cached), audio in 13, text out 30, audio out 91.
# gpt-realtime-2.1 (USD per 1M): text 4 / 0.40 / 24, audio 32 / 0.40 / 64.
ONE_RESPONSE_USD = ((119 - 64) * 4 + 64 * 0.40 + 13 * 32 + 30 * 24 + 91 * 64) / 1_000_000


def test_parse_prices_accepts_pairs_on_lines_or_commas() -> None:
    """Names and values are trimmed; commas and new lines both separate pairs."""
    assert parse_prices("text_in=4, audio_out = 64\ntext_cached=0.4,") == {
        "text_in": 4.0,
        "audio_out": 64.0,
        "text_cached": 0.4,
    }
    assert parse_prices(None) == {}
    assert parse_prices("  ") == {}


@pytest.mark.parametrize(
    "text",
    ["text_in", "video_in=3", "text_in=cheap", "text_in=-1", "text_in=nan", "text_in=1,text_in=2"],
)
def test_parse_prices_rejects_bad_pairs(text: str) -> None:
    """Unknown names, non-numbers, negative or non-finite values and repeats are refused."""
    with pytest.raises(InvalidPricesError):
        parse_prices(text)


def test_effective_prices_overrides_list_prices() -> None:
    """Overrides replace single list prices; an unknown model needs all six."""
    prices = effective_prices("gpt-realtime-2.1", {"audio_out": 50.0})
    assert prices is not None
    assert prices.audio_out == 50.0
    assert prices.text_out == 24.0
    assert effective_prices("my-azure-deployment", {"audio_out": 50.0}) is None
    everything = dict.fromkeys(PRICE_FIELDS, 1.0)
    assert effective_prices("my-azure-deployment", everything) == ModelPrices(**everything)


async def test_record_adds_tokens_and_cost(hass: HomeAssistant) -> None:
    """Each usage object adds its tokens; the cost follows the model's price table."""
    usage = EntryUsage(hass, "entry1", "gpt-realtime-2.1")
    calls: list[None] = []
    remove = usage.async_add_listener(lambda: calls.append(None))
    usage.record(default_usage())
    usage.record(default_usage())
    assert usage.responses == 2
    assert usage.text_input_tokens == 238
    assert usage.audio_input_tokens == 26
    assert usage.cached_input_tokens == 128
    assert usage.text_output_tokens == 60
    assert usage.audio_output_tokens == 182
    assert usage.cost_usd == pytest.approx(2 * ONE_RESPONSE_USD)
    assert len(calls) == 2
    remove()
    usage.record(default_usage())
    assert len(calls) == 2


@pytest.mark.parametrize(
    "bad",
    [None, {}, {"input_tokens": 3}, {"input_token_details": "text"}, ["usage"], "usage", 7],
)
async def test_record_ignores_missing_and_malformed_usage(
    hass: HomeAssistant, bad: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Nothing is counted, nothing raises, and listeners are not bothered."""
    usage = EntryUsage(hass, "entry1", "gpt-realtime-2.1")
    calls: list[None] = []
    usage.async_add_listener(lambda: calls.append(None))
    with caplog.at_level(logging.DEBUG, "custom_components.openai_realtime_voice"):
        usage.record(bad)
    assert usage.responses == 0
    assert usage.cost_usd == 0
    assert calls == []


async def test_record_counts_malformed_parts_as_zero(hass: HomeAssistant) -> None:
    """A usage with some broken counters still counts the good ones."""
    usage = EntryUsage(hass, "entry1", "gpt-realtime-2.1")
    usage.record(
        {
            "input_token_details": {"text_tokens": "ten", "audio_tokens": 5},
            "output_token_details": {"text_tokens": True, "audio_tokens": 7},
        }
    )
    assert usage.text_input_tokens == 0
    assert usage.audio_input_tokens == 5
    assert usage.text_output_tokens == 0
    assert usage.audio_output_tokens == 7


async def test_unknown_model_counts_tokens_without_cost(hass: HomeAssistant) -> None:
    """A model without list prices has no estimate unless all six prices are given."""
    usage = EntryUsage(hass, "entry1", "local-model")
    usage.record(default_usage())
    assert usage.prices is None
    assert usage.text_input_tokens == 119
    assert usage.cost_usd == 0
    priced = EntryUsage(hass, "entry1", "local-model", dict.fromkeys(PRICE_FIELDS, 1.0))
    priced.record(default_usage())
    # 55 + 64 cached + 13 audio in + 30 + 91 out, all at 1 USD per 1M tokens.
    assert priced.cost_usd == pytest.approx((55 + 64 + 13 + 30 + 91) / 1_000_000)


async def test_totals_survive_a_restart(hass: HomeAssistant, hass_storage: dict[str, Any]) -> None:
    """A delayed save writes the totals; a new object for the entry loads them."""
    usage = EntryUsage(hass, "entry1", "gpt-realtime-2.1")
    usage.record(default_usage())
    assert STORE_KEY not in hass_storage
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=SAVE_DELAY + 1))
    await hass.async_block_till_done()
    assert hass_storage[STORE_KEY]["data"]["text_in"] == 119

    restored = EntryUsage(hass, "entry1", "gpt-realtime-2.1")
    await restored.async_load()
    assert restored.as_dict() == usage.as_dict()
    restored.record(default_usage())
    assert restored.responses == 2
    assert restored.cost_usd == pytest.approx(2 * ONE_RESPONSE_USD)

    await restored.async_remove()
    assert STORE_KEY not in hass_storage


async def test_damaged_store_starts_from_zero(
    hass: HomeAssistant, hass_storage: dict[str, Any]
) -> None:
    """Values of the wrong type or sign are ignored; good ones are kept."""
    hass_storage[STORE_KEY] = {
        "version": 1,
        "key": STORE_KEY,
        "data": {"text_in": -5, "audio_in": "x", "text_out": 12, "cost_usd": True},
    }
    usage = EntryUsage(hass, "entry1", "gpt-realtime-2.1")
    await usage.async_load()
    assert usage.text_input_tokens == 0
    assert usage.audio_input_tokens == 0
    assert usage.text_output_tokens == 12
    assert usage.cost_usd == 0


async def test_store_that_is_not_a_mapping_is_ignored(
    hass: HomeAssistant, hass_storage: dict[str, Any]
) -> None:
    """A store holding a list loads as zero."""
    hass_storage[STORE_KEY] = {"version": 1, "key": STORE_KEY, "data": [1, 2]}
    usage = EntryUsage(hass, "entry1", "gpt-realtime-2.1")
    await usage.async_load()
    assert usage.responses == 0


async def test_unload_saves_and_removal_deletes(
    hass: HomeAssistant, entry: MockConfigEntry, hass_storage: dict[str, Any]
) -> None:
    """Unloading writes the totals at once; removing the entry deletes them."""
    key = f"openai_realtime_voice.usage.{entry.entry_id}"
    entry.runtime_data.usage.record(default_usage())
    assert await hass.config_entries.async_unload(entry.entry_id)
    assert hass_storage[key]["data"]["responses"] == 1
    assert await hass.config_entries.async_remove(entry.entry_id)
    await hass.async_block_till_done()
    assert key not in hass_storage


async def test_invalid_stored_overrides_fall_back_to_list_prices(
    hass: HomeAssistant, entry: MockConfigEntry, caplog: pytest.LogCaptureFixture
) -> None:
    """Settings edited outside the flow cannot break setup: the overrides are ignored."""
    set_settings(hass, entry, prices="text_in=free")
    await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    prices = entry.runtime_data.usage.prices
    assert prices is not None
    assert prices.text_in == 4.0
    assert "Ignoring invalid price overrides" in caplog.text


@pytest.mark.parametrize(
    ("model", "prices", "error"),
    [
        ("gpt-realtime-2.1", "text_in=free", "invalid_prices"),
        ("gpt-realtime-2.1", "video_in=1", "invalid_prices"),
        ("my-deployment", "audio_out=50", "prices_incomplete"),
    ],
)
async def test_agent_flow_refuses_bad_prices_on_their_field(
    hass: HomeAssistant, entry: MockConfigEntry, model: str, prices: str, error: str
) -> None:
    """Unparsable overrides, and partial ones for a model without list prices, are refused."""
    result = await reconfigure_agent(hass, entry, model=model, prices=prices)
    assert result["type"] == "form"
    assert result["errors"] == {"prices": error}


async def test_agent_flow_stores_prices_that_apply_after_reload(
    hass: HomeAssistant, entry: MockConfigEntry
) -> None:
    """Valid overrides are stored as typed and priced from the reload on; empty means none."""
    result = await reconfigure_agent(hass, entry, prices="audio_out = 50\n")
    await hass.async_block_till_done()
    assert result["type"] == "abort"
    assert result["reason"] == "reconfigure_successful"
    assert agent_of(entry).data["prices"] == "audio_out = 50"
    prices = entry.runtime_data.usage.prices
    assert prices is not None
    assert prices.audio_out == 50.0

    result = await reconfigure_agent(hass, entry, prices="  ")
    await hass.async_block_till_done()
    assert result["reason"] == "reconfigure_successful"
    assert "prices" not in agent_of(entry).data


async def test_image_tokens_are_counted_and_priced(hass: HomeAssistant) -> None:
    """Image input tokens get their own total and their own (cached) price."""
    usage = EntryUsage(hass, "entry1", "gpt-realtime-2.1")
    with_image = default_usage()
    with_image["input_token_details"]["image_tokens"] = 765
    with_image["input_token_details"]["cached_tokens_details"]["image_tokens"] = 65
    usage.record(with_image)
    assert usage.image_input_tokens == 765
    assert usage.cached_input_tokens == 64 + 65
    image_usd = (700 * 5.00 + 65 * 0.50) / 1_000_000
    assert usage.cost_usd == pytest.approx(ONE_RESPONSE_USD + image_usd)


def test_unknown_model_is_priced_without_image_prices() -> None:
    """A model without list prices needs the six text and audio prices; images default to 0."""
    six = {
        "text_in": 1.0,
        "text_cached": 0.1,
        "text_out": 2.0,
        "audio_in": 3.0,
        "audio_cached": 0.3,
        "audio_out": 4.0,
    }
    prices = effective_prices("my-deployment", six)
    assert prices is not None
    assert prices.image_in == 0.0
    assert effective_prices("my-deployment", {**six, "image_in": 5.0}) == ModelPrices(
        **six, image_in=5.0
    )
    del six["audio_out"]
    assert effective_prices("my-deployment", six) is None


async def test_transcription_usage_has_its_own_totals(hass: HomeAssistant) -> None:
    """Transcription is billed apart: tokens (gpt-4o transcribe) or seconds (whisper-1)."""
    usage = EntryUsage(hass, "entry1", "gpt-realtime-2.1")
    calls: list[None] = []
    usage.async_add_listener(lambda: calls.append(None))
    usage.record_transcription(TOKEN_USAGE)
    usage.record_transcription(DURATION_USAGE)
    usage.record_transcription(None)
    usage.record_transcription({"type": "tokens", "input_tokens": "many"})
    assert usage.transcription_tokens == TOKEN_USAGE["total_tokens"]
    assert usage.totals.transcription_audio_in == 25
    assert usage.totals.transcription_text_in == 2
    assert usage.totals.transcription_text_out == 9
    assert usage.totals.transcription_ms == 1000
    assert usage.responses == 0
    assert usage.text_input_tokens == usage.audio_input_tokens == 0
    assert usage.cost_usd == 0.0
    assert len(calls) == 2
    assert usage.as_dict()["transcription_ms"] == 1000


@pytest.mark.parametrize(
    ("model", "expected_usd"),
    [
        # 25 audio in at 3, 2 text in at 1.25, 9 text out at 5 (USD per 1M); 1 s of whisper-1 at
        # 0.006 USD a minute is priced by the same list, not by token.
        ("gpt-4o-mini-transcribe", (25 * 3.00 + 2 * 1.25 + 9 * 5.00) / 1_000_000),
        ("gpt-4o-transcribe", (25 * 6.00 + 2 * 2.50 + 9 * 10.00) / 1_000_000),
        ("whisper-1", 0.006 / 60),
        ("my-transcriber", 0.0),  # no list prices: counted, not priced
    ],
)
async def test_transcription_is_in_the_cost_estimate(
    hass: HomeAssistant, model: str, expected_usd: float
) -> None:
    """Input transcription is billed apart, so the estimate (and a monthly budget) adds it at
    the transcription model's list prices."""
    usage = EntryUsage(hass, "entry1", "gpt-realtime-2.1")
    usage.transcription_model = model
    usage.record_transcription(DURATION_USAGE if model == "whisper-1" else TOKEN_USAGE)
    assert usage.cost_usd == pytest.approx(expected_usd)
    assert usage.month_cost_usd == pytest.approx(expected_usd)


async def test_each_agent_is_priced_at_its_own_prices(
    hass: HomeAssistant, entry: MockConfigEntry, realtime_server: RealtimeServer
) -> None:
    """The entry counts every agent's responses, each at that agent's model and prices."""
    hass.config_entries.async_add_subentry(
        entry,
        ConfigSubentry(
            data=MappingProxyType(
                {**recommended_agent(), "model": "gpt-realtime-2.1-mini", "prices": "text_in=1000"}
            ),
            subentry_type=SUBENTRY_CONVERSATION,
            title="Kids' room",
            unique_id=None,
        ),
    )
    await hass.async_block_till_done()
    usage = entry.runtime_data.usage
    one = Usage()
    one.add(default_usage())
    first = effective_prices("gpt-realtime-2.1", {})
    kids = effective_prices("gpt-realtime-2.1-mini", {"text_in": 1000.0})
    assert first is not None
    assert kids is not None

    realtime_server.script(ScriptedResponse(text="One", usage=default_usage()))
    await ask_agent(hass, "Hello")
    assert usage.cost_usd == pytest.approx(one.cost(first))
    realtime_server.script(ScriptedResponse(text="Two", usage=default_usage()))
    await ask_agent(hass, "Hello", agent_id="conversation.kids_room")
    assert realtime_server.models[-1] == "gpt-realtime-2.1-mini"
    assert usage.cost_usd == pytest.approx(one.cost(first) + one.cost(kids))
    assert usage.responses == 2


async def test_cost_is_unknown_while_an_agent_has_no_prices(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    realtime_server: RealtimeServer,
    entity_registry: er.EntityRegistry,
) -> None:
    """An agent whose model has no prices makes the entry's estimate unknown (its responses
    would be left out); removing that agent makes it known again, without a reload."""
    cost = entity_registry.async_get_entity_id("sensor", DOMAIN, f"{entry.entry_id}_estimated_cost")
    assert cost is not None
    realtime_server.script(ScriptedResponse(text="One", usage=default_usage()))
    await ask_agent(hass, "Hello")
    await hass.async_block_till_done()
    known = hass.states.get(cost).state
    assert float(known) > 0
    azure = ConfigSubentry(
        data=MappingProxyType({**recommended_agent(), "model": "my-deployment"}),
        subentry_type=SUBENTRY_CONVERSATION,
        title="Azure",
        unique_id=None,
    )
    hass.config_entries.async_add_subentry(entry, azure)
    await hass.async_block_till_done()
    assert hass.states.get(cost).state == STATE_UNKNOWN
    assert hass.config_entries.async_remove_subentry(entry, azure.subentry_id)
    await hass.async_block_till_done()
    assert hass.states.get(cost).state == known
