"""A setting the service refuses is named, in the forms and as a repair, never retried as an
outage; quota and auth on the device path raise the same repair and reauth as the agent's
(issue 28 items 4 and 5).

The refusals are those `realtime_server/` models after the service (realtime-protocol.md
§3.1): an unknown model opens and fails its first response with `model_not_found`, a voice or a
transcription model it does not take is an `invalid_value` naming the field.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

from aiohttp.test_utils import TestClient
from homeassistant import config_entries
from homeassistant.config_entries import SOURCE_REAUTH
from homeassistant.const import CONF_API_KEY, CONF_NAME
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import intent, issue_registry as ir
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.openai_realtime_voice.bridge import BridgePath, RealtimeEngine
from custom_components.openai_realtime_voice.const import (
    CONF_BASE_URL,
    CONF_MODEL,
    CONF_TRANSCRIPTION_MODEL,
    CONF_VOICE,
    DOMAIN,
)
from realtime_server import RealtimeServer, ScriptedResponse, tone
from simulator.changes import Recorded
from tests.agent_helpers import agent_of, ask_agent, reconfigure_agent, service_entry
from tests.bridge_helpers import bridge_of, bridged, device_state, send_typed_detect
from tests.device_helpers import device_client, release_devices, wait_until

TRANSCRIBERS = {"gpt-4o-mini-transcribe", "gpt-4o-transcribe"}


def _issue(hass: HomeAssistant, issue_id: str) -> ir.IssueEntry | None:
    return ir.async_get(hass).async_get_issue(DOMAIN, issue_id)


# -- the forms check the user's own settings --------------------------------------------------


async def test_user_flow_reports_an_unknown_model_on_its_field(
    hass: HomeAssistant, realtime_server: RealtimeServer
) -> None:
    """A wrong model is found by a one-token response in the form, not at the first turn."""
    realtime_server.known_models = {"gpt-realtime-2.1"}
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": config_entries.SOURCE_USER}
    )
    good = {CONF_API_KEY: realtime_server.api_key, CONF_BASE_URL: realtime_server.url}
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {**good, CONF_MODEL: "gpt-realtime-typo"}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {CONF_MODEL: "model_refused"}
    check = realtime_server.response_params[-1]
    assert check["max_output_tokens"] == 1
    assert check["conversation"] == "none"

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {**good, CONF_MODEL: "gpt-realtime-2.1"}
    )
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.CREATE_ENTRY


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({CONF_VOICE: "nova"}, {CONF_VOICE: "voice_refused"}),
        (
            {CONF_TRANSCRIPTION_MODEL: "whisper-9"},
            {CONF_TRANSCRIPTION_MODEL: "transcription_model_refused"},
        ),
        ({CONF_MODEL: "gpt-nope"}, {CONF_MODEL: "model_refused"}),
    ],
)
async def test_agent_flow_names_the_refused_setting(
    hass: HomeAssistant,
    realtime_server: RealtimeServer,
    change: dict[str, Any],
    error: dict[str, str],
) -> None:
    """The agent settings the user chose are sent to the service; the refused one is named."""
    realtime_server.known_models = {"gpt-realtime-2.1"}
    realtime_server.transcription_models = TRANSCRIBERS
    entry = service_entry(
        {CONF_API_KEY: realtime_server.api_key, CONF_BASE_URL: realtime_server.url},
        {CONF_MODEL: "gpt-realtime-2.1"},
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    result = await reconfigure_agent(hass, entry, **change)
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == error
    assert agent_of(entry).data[CONF_MODEL] == "gpt-realtime-2.1"

    fixed = {**change, CONF_VOICE: "cedar", CONF_TRANSCRIPTION_MODEL: "gpt-4o-transcribe"}
    fixed[CONF_MODEL] = "gpt-realtime-2.1"
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {CONF_NAME: agent_of(entry).title, **agent_of(entry).data, **fixed}
    )
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    # The check sent the user's own settings (the reload's probe sends defaults after it).
    sent = [event["session"]["audio"] for event in realtime_server.of_type("session.update")]
    assert {
        "voice": "cedar",
        "transcription": sent[-2]["input"]["transcription"]["model"],
    } == {"voice": sent[-2]["output"]["voice"], "transcription": "gpt-4o-transcribe"}


# -- at runtime: a repair that names the setting -------------------------------------------------


async def test_agent_with_an_unknown_model_raises_a_repair(
    hass: HomeAssistant, entry: MockConfigEntry, realtime_server: RealtimeServer
) -> None:
    """The typed turn fails with the model named, a repair issue says so; no reconnects."""
    realtime_server.known_models = {"another-model"}
    connections = realtime_server.connections
    result = await ask_agent(hass, "Hello")
    assert result.response.response_type is intent.IntentResponseType.ERROR
    assert "model" in result.response.speech["plain"]["speech"]
    issue = _issue(hass, f"model_refused_{entry.entry_id}")
    assert issue is not None
    assert issue.translation_key == "model_refused"
    assert realtime_server.connections == connections + 1

    realtime_server.known_models = None
    realtime_server.script(ScriptedResponse(text="Fine now."))
    result = await ask_agent(hass, "Hello")
    assert result.response.speech["plain"]["speech"] == "Fine now."
    assert _issue(hass, f"model_refused_{entry.entry_id}") is None


@pytest.fixture
async def client(
    hass: HomeAssistant,
    hass_client_no_auth: Any,
    realtime_server: RealtimeServer,
    lights: None,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncGenerator[TestClient]:
    """A loaded entry whose bridges retry Realtime after 0.3 s."""
    monkeypatch.setattr(RealtimeEngine, "retry_delays", (0.3,))
    http = await device_client(hass, hass_client_no_auth, realtime_server)
    yield http
    await release_devices(hass, http)


async def test_device_unknown_model_raises_a_repair_and_stops_trying(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """Every spoken turn would fail: the device uses the pipeline and a repair names the model."""
    device = await bridged(hass, client)
    state = device_state(hass, device)
    entry = hass.config_entries.async_entries(DOMAIN)[0]
    realtime_server.known_models = {"another-model"}
    connections = realtime_server.connections
    await send_typed_detect(device, "hello")  # a typed turn: its response fails
    await wait_until(lambda: _issue(hass, f"model_refused_{entry.entry_id}") is not None, hass)
    await wait_until(lambda: bridge_of(hass, state).path is BridgePath.ASSIST_PIPELINE, state)
    # Three retry delays later, no new session was opened for the refused model.
    with pytest.raises(TimeoutError):
        await wait_until(
            lambda: realtime_server.connections > connections, realtime_server, timeout=1.0
        )


async def test_device_quota_raises_the_repair_and_retries_slowly(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """No quota on the device path: the agent's repair issue; cleared by the next answer."""
    device = await bridged(hass, client)
    state = device_state(hass, device)
    entry = hass.config_entries.async_entries(DOMAIN)[0]
    realtime_server.on_connect_error = {
        "type": "insufficient_quota",
        "code": "insufficient_quota",
        "message": "You exceeded your current quota.",
    }
    await realtime_server.close_connection(1008, "insufficient_quota")
    issue_id = f"quota_exceeded_{entry.entry_id}"
    await wait_until(lambda: _issue(hass, issue_id) is not None, hass)
    assert bridge_of(hass, state).path is BridgePath.ASSIST_PIPELINE

    realtime_server.on_connect_error = None
    await wait_until(lambda: bridge_of(hass, state).client is not None, state)
    await wait_until(lambda: bridge_of(hass, state).client.connected, state)
    realtime_server.script(ScriptedResponse(text="Back.", audio=tone(120)))
    await send_typed_detect(device, "are you there")
    await wait_until(lambda: _issue(hass, issue_id) is None, hass)


async def test_device_rejected_key_starts_reauth(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """A key rejected on the device path starts reauthentication, as on the agent path."""
    device = await bridged(hass, client)
    state = device_state(hass, device)
    realtime_server.reject_auth = True
    await realtime_server.drop()

    def reauth() -> bool:
        flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
        return any(flow["context"]["source"] == SOURCE_REAUTH for flow in flows)

    await wait_until(reauth, hass)
    assert bridge_of(hass, state).path is BridgePath.ASSIST_PIPELINE


async def test_device_waits_before_reopening_after_a_failed_session(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """A session that ended with an error is reopened after the retry delay, not at once."""
    await bridged(hass, client)
    opened: Recorded[float] = Recorded()

    async def stamp(event: dict[str, Any]) -> None:
        opened.append(hass.loop.time())

    realtime_server.hooks["session.update"] = stamp
    closed = hass.loop.time()
    await realtime_server.close_connection(4002, "refused")  # the client does not retry it
    await wait_until(lambda: len(opened) == 1, opened)
    assert opened[0] - closed >= 0.25  # the first retry delay (0.3 s)
