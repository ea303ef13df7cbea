"""A monthly budget: the warning at 80 %, the action at 100 %, the monthly reset.

Usage comes from real Realtime responses of the test server (its `default_usage()` block per
response), priced with an override that makes one response cost about 0.91 USD, so a budget of
2.20 USD is at 41 % after one response, 83 % after two and 124 % after three.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp.test_utils import TestClient
from freezegun.api import FrozenDateTimeFactory
from homeassistant.components import conversation
from homeassistant.core import Context, HomeAssistant
from homeassistant.helpers import entity_registry as er, issue_registry as ir
from homeassistant.setup import async_setup_component
import homeassistant.util.dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed

from custom_components.openai_realtime_voice.bridge import BridgePath
from custom_components.openai_realtime_voice.budget import (
    exhausted_issue_id,
    next_month_start,
    warning_issue_id,
)
from custom_components.openai_realtime_voice.const import (
    BUDGET_ACTION_CHEAPER_MODEL,
    CONF_BUDGET_ACTION,
    CONF_BUDGET_MODEL,
    CONF_MONTHLY_BUDGET,
    CONF_PRICES,
    DOMAIN,
)
from custom_components.openai_realtime_voice.usage import EntryUsage, month_of
from realtime_server import RealtimeServer, ScriptedResponse, default_usage
from simulator.speech import synthesize
from tests.agent_helpers import reconfigure_agent, set_settings, submit_options
from tests.bridge_helpers import bridge_of, bridged, device_state, wait_tts
from tests.device_helpers import release_devices, setup_entry, wait_until
from tests.pipeline_providers import STT_TEXT, Providers

# 91 audio output tokens per response at 10,000 USD per 1M: 0.91 USD, plus about 0.0014 USD.
EXPENSIVE = {CONF_PRICES: "audio_out=10000"}
BUDGET = {**EXPENSIVE, CONF_MONTHLY_BUDGET: 2.2}
# A mid-month moment in Home Assistant's default test time zone (US/Pacific).
MID_MONTH = datetime(2026, 12, 10, 12, 0, tzinfo=dt_util.get_default_time_zone())


def issue(hass: HomeAssistant, issue_id: str) -> ir.IssueEntry | None:
    return ir.async_get(hass).async_get_issue(DOMAIN, issue_id)


def budget_left(hass: HomeAssistant, entry: MockConfigEntry) -> float:
    entity_id = er.async_get(hass).async_get_entity_id(
        "sensor", DOMAIN, f"{entry.entry_id}_budget_left"
    )
    assert entity_id is not None
    return float(hass.states.get(entity_id).state)


def agent_of(hass: HomeAssistant) -> str:
    """The entity id of the entry's conversation agent."""
    [entry] = hass.config_entries.async_entries(DOMAIN)
    return next(
        entity.entity_id
        for entity in er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id)
        if entity.domain == "conversation"
    )


async def ask(hass: HomeAssistant, text: str) -> conversation.ConversationResult:
    """A typed Assist request to the entry's agent, in a new conversation."""
    return await conversation.async_converse(
        hass, text, None, Context(), language="en", agent_id=agent_of(hass)
    )


async def answered(hass: HomeAssistant, server: RealtimeServer, text: str) -> str:
    """One typed turn; the agent's answer."""
    server.script(ScriptedResponse(text=text))
    result = await ask(hass, "Hello")
    return str(result.response.speech["plain"]["speech"])


async def test_warning_at_80_percent_refusal_at_100_and_a_new_month(
    hass: HomeAssistant, realtime_server: RealtimeServer, freezer: FrozenDateTimeFactory
) -> None:
    """Typed turns use the budget up: a warning, then a translated refusal without a session
    or a billed response; the month ends and everything is back."""
    freezer.move_to(MID_MONTH)
    entry = await setup_entry(hass, realtime_server, BUDGET)
    assert budget_left(hass, entry) == pytest.approx(2.2)

    assert await answered(hass, realtime_server, "One.") == "One."
    assert issue(hass, warning_issue_id(entry)) is None
    assert await answered(hass, realtime_server, "Two.") == "Two."
    warning = issue(hass, warning_issue_id(entry))
    assert warning is not None
    assert warning.severity is ir.IssueSeverity.WARNING
    assert warning.translation_key == "budget_warning_pipeline"
    assert budget_left(hass, entry) == pytest.approx(2.2 - 2 * 0.9114, abs=0.01)

    assert await answered(hass, realtime_server, "Three.") == "Three."
    assert issue(hass, warning_issue_id(entry)) is None
    exhausted = issue(hass, exhausted_issue_id(entry))
    assert exhausted is not None
    assert exhausted.severity is ir.IssueSeverity.ERROR
    assert exhausted.translation_placeholders is not None
    assert exhausted.translation_placeholders["resets"] == "2027-01-01"
    assert budget_left(hass, entry) < 0

    connections, responses = realtime_server.connections, realtime_server.responses_done
    result = await ask(hass, "Hello again")
    assert result.response.error_code is not None
    speech = result.response.speech["plain"]["speech"]
    assert "budget of 2.20 USD" in speech
    assert "2027-01-01" in speech
    assert realtime_server.connections == connections  # no new session opened
    assert realtime_server.responses_done == responses  # and nothing billed

    new_month = next_month_start(dt_util.now())
    freezer.move_to(new_month)
    async_fire_time_changed(hass, new_month)
    await hass.async_block_till_done()
    assert issue(hass, exhausted_issue_id(entry)) is None
    assert budget_left(hass, entry) == pytest.approx(2.2)
    assert await answered(hass, realtime_server, "Back.") == "Back."


async def test_cheaper_model_answers_once_the_budget_is_used_up(
    hass: HomeAssistant, realtime_server: RealtimeServer, freezer: FrozenDateTimeFactory
) -> None:
    """With the cheaper-model action, the next session opens with the budget model."""
    freezer.move_to(MID_MONTH)
    entry = await setup_entry(
        hass,
        realtime_server,
        {
            **BUDGET,
            CONF_MONTHLY_BUDGET: 0.5,
            CONF_BUDGET_ACTION: BUDGET_ACTION_CHEAPER_MODEL,
            CONF_BUDGET_MODEL: "gpt-realtime-2.1-mini",
        },
    )
    assert await answered(hass, realtime_server, "Dear.") == "Dear."
    exhausted = issue(hass, exhausted_issue_id(entry))
    assert exhausted is not None
    assert exhausted.translation_key == "budget_exhausted_model"
    # A new conversation opens a new session, on the cheaper model, priced at its list prices.
    assert await answered(hass, realtime_server, "Cheap.") == "Cheap."
    assert realtime_server.models[-1] == "gpt-realtime-2.1-mini"
    assert realtime_server.models[0] != "gpt-realtime-2.1-mini"
    usage = entry.runtime_data.usage
    assert usage.prices is not None
    assert usage.prices.audio_out < 10000


@pytest.mark.usefixtures("lights", "fast_retries")
async def test_a_device_switches_to_the_assist_pipeline(
    hass: HomeAssistant,
    hass_client_no_auth: Any,
    realtime_server: RealtimeServer,
    providers: Providers,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """At 100 % a connected board's Realtime session closes and its next spoken request is
    answered through the Assist pipeline; no new session opens while the budget is used up."""
    assert await async_setup_component(hass, "http", {"http": {"login_attempts_threshold": 1000}})
    entry = await setup_entry(hass, realtime_server, BUDGET)
    client: TestClient = await hass_client_no_auth()
    hass.config.internal_url = str(client.make_url("/"))
    try:
        device = await bridged(hass, client)
        state = device_state(hass, device)

        # Responses elsewhere (say, typed turns) use the budget up.
        for _ in range(3):
            entry.runtime_data.usage.record(default_usage())
        await wait_until(lambda: bridge_of(hass, state).path is BridgePath.ASSIST_PIPELINE, state)
        # The log says why, not that the service is down.
        assert "this month's budget of 2.20 USD is used up" in caplog.text
        connections = realtime_server.connections

        speech = await synthesize(STT_TEXT, 16000)
        start = len(device.messages)
        await device.start_listening()
        await device.send_audio(speech + bytes(32000 * 2))
        await wait_tts(device, "stop", start)
        assert len(providers.stt.requests) == 1
        assert hass.states.get("light.kitchen_lights").state == "on"
        # The engine keeps trying Realtime (every 50 ms here) but opens no session, and the
        # service is not taken for unreachable (no probes, no repair).
        assert realtime_server.connections == connections
        assert entry.runtime_data.service.available
        assert bridge_of(hass, state).path is BridgePath.ASSIST_PIPELINE
    finally:
        await release_devices(hass, client)


async def test_month_counting_survives_a_restart_within_the_month_only(
    hass: HomeAssistant, hass_storage: dict[str, Any], freezer: FrozenDateTimeFactory
) -> None:
    """This month's cost is restored from the store; a store from an earlier month is not."""
    freezer.move_to(MID_MONTH)
    usage = EntryUsage(hass, "entry1", "gpt-realtime-2.1")
    usage.record(default_usage())
    assert usage.month == month_of() == "2026-12"
    spent = usage.month_cost_usd
    assert spent > 0
    await usage.async_save()

    again = EntryUsage(hass, "entry1", "gpt-realtime-2.1")
    await again.async_load()
    assert again.month_cost_usd == pytest.approx(spent)

    freezer.move_to(next_month_start(dt_util.now()))
    later = EntryUsage(hass, "entry1", "gpt-realtime-2.1")
    await later.async_load()
    assert later.month == "2027-01"
    assert later.month_cost_usd == 0
    assert later.cost_usd == pytest.approx(spent)  # the running total keeps counting


async def test_options_flow_needs_prices_for_a_budget(
    hass: HomeAssistant, realtime_server: RealtimeServer
) -> None:
    """A budget while an agent's model has no prices is refused on the budget field; a priced
    one is kept, and an emptied one is dropped. With a budget, an agent must stay priced."""
    entry = await setup_entry(hass, realtime_server)
    set_settings(hass, entry, model="my-deployment")
    result = await submit_options(hass, entry, monthly_budget=10)
    assert result["type"] == "form"
    assert result["errors"] == {CONF_MONTHLY_BUDGET: "budget_needs_prices"}

    set_settings(hass, entry, model="gpt-realtime-2.1")
    result = await submit_options(hass, entry, monthly_budget=10)
    await hass.async_block_till_done()
    assert result["type"] == "create_entry"
    assert entry.options[CONF_MONTHLY_BUDGET] == 10
    assert entry.runtime_data.budget.limit == 10

    result = await reconfigure_agent(hass, entry, model="my-deployment")
    assert result["type"] == "form"
    assert result["errors"] == {CONF_PRICES: "budget_needs_prices"}

    result = await submit_options(hass, entry, monthly_budget=None)
    await hass.async_block_till_done()
    assert result["type"] == "create_entry"
    assert CONF_MONTHLY_BUDGET not in entry.options
    assert entry.runtime_data.budget.limit is None
