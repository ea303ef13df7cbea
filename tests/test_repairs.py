"""Repair issues (libopus, quota, firmware) and the "unavailable" / "back" log lines."""

from __future__ import annotations

import logging
import re
from typing import Any
from unittest.mock import patch

from aiohttp.test_utils import TestClient
from homeassistant.components import conversation
from homeassistant.components.repairs import repairs_flow_manager
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import Context, HomeAssistant
from homeassistant.helpers import device_registry as dr, intent, issue_registry as ir
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.openai_realtime_voice.audio import OpusNotFoundError
from custom_components.openai_realtime_voice.const import CONF_FIRMWARE, DOMAIN, OTA_PATH
from custom_components.openai_realtime_voice.endpoint import device_subentries
from custom_components.openai_realtime_voice.repairs import (
    ISSUE_LIBOPUS,
    AvailabilityLog,
    async_firmware_issue,
    async_quota_issue,
    firmware_issue_id,
    firmware_too_old,
    parse_version,
    quota_issue_id,
)
from realtime_server import RealtimeServer, ScriptedResponse
from tests.agent_helpers import AGENT
from tests.device_helpers import (
    NoMcpDevice,
    device_client,
    pair,
    setup_entry,
    simulator,
    wait_until,
)

PACKAGE = "custom_components.openai_realtime_voice"
MISSING = OpusNotFoundError("libopus was not found", platform_hint="apk add opus")


def _missing_libopus() -> Any:
    return patch(f"{PACKAGE}.repairs.load_opuslib", side_effect=MISSING)


async def test_libopus_missing_raises_a_fixable_issue_and_keeps_text_working(
    hass: HomeAssistant,
    realtime_server: RealtimeServer,
    issue_registry: ir.IssueRegistry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Without libopus the entry loads (text only) and the issue names the platform's fix."""
    assert await async_setup_component(hass, "repairs", {})
    with _missing_libopus():
        entry = await setup_entry(hass, realtime_server)
    assert entry.state is ConfigEntryState.LOADED
    issue = issue_registry.async_get_issue(DOMAIN, ISSUE_LIBOPUS)
    assert issue is not None
    assert issue.is_fixable
    assert issue.translation_placeholders == {"command": "apk add opus"}
    assert "apk add opus" in caplog.text

    realtime_server.script(ScriptedResponse(text="Still here"))
    result = await conversation.async_converse(
        hass, "hello", None, Context(), language="en", agent_id="conversation.mock_title"
    )
    assert result.response.response_type is intent.IntentResponseType.ACTION_DONE

    manager = repairs_flow_manager(hass)
    assert manager is not None
    # The user has not installed it yet: the check fails and the issue stays.
    flow = await manager.async_init(DOMAIN, context={"issue_id": ISSUE_LIBOPUS})
    assert flow["type"] == "form"
    assert flow["step_id"] == "confirm"
    assert flow["description_placeholders"] == {"command": "apk add opus"}
    with _missing_libopus():
        flow = await manager.async_configure(flow["flow_id"], {})
    assert flow["type"] == "abort"
    assert flow["reason"] == "still_missing"
    assert issue_registry.async_get_issue(DOMAIN, ISSUE_LIBOPUS) is not None

    # Installed now (this machine has libopus): the flow finds it and the issue goes.
    flow = await manager.async_init(DOMAIN, context={"issue_id": ISSUE_LIBOPUS})
    flow = await manager.async_configure(flow["flow_id"], {})
    assert flow["type"] == "create_entry"
    assert issue_registry.async_get_issue(DOMAIN, ISSUE_LIBOPUS) is None


async def test_libopus_found_on_reload_clears_the_issue(
    hass: HomeAssistant, realtime_server: RealtimeServer, issue_registry: ir.IssueRegistry
) -> None:
    """A reload after installing libopus clears the issue by itself."""
    with _missing_libopus():
        entry = await setup_entry(hass, realtime_server)
    assert issue_registry.async_get_issue(DOMAIN, ISSUE_LIBOPUS) is not None
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    assert issue_registry.async_get_issue(DOMAIN, ISSUE_LIBOPUS) is None


async def test_quota_issue_is_raised_and_cleared(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    realtime_server: RealtimeServer,
    issue_registry: ir.IssueRegistry,
) -> None:
    """A quota refusal raises the entry's issue; the next good answer clears it."""
    realtime_server.on_connect_error = {
        "type": "insufficient_quota",
        "code": "billing_hard_limit_reached",
        "message": "Billing hard limit reached.",
    }
    result = await conversation.async_converse(
        hass, "hello", None, Context(), language="en", agent_id=AGENT
    )
    assert result.response.response_type is intent.IntentResponseType.ERROR
    issue = issue_registry.async_get_issue(DOMAIN, quota_issue_id(entry))
    assert issue is not None
    assert issue.translation_key == "quota_exceeded"

    realtime_server.on_connect_error = None
    realtime_server.script(ScriptedResponse(text="Back"))
    await conversation.async_converse(hass, "again", None, Context(), language="en", agent_id=AGENT)
    assert issue_registry.async_get_issue(DOMAIN, quota_issue_id(entry)) is None


@pytest.mark.parametrize(
    ("code", "raised"), [("insufficient_quota", True), ("rate_limit_exceeded", False)]
)
async def test_failed_response_maps_quota_but_not_rate_limits(
    hass: HomeAssistant,
    *,
    entry: MockConfigEntry,
    realtime_server: RealtimeServer,
    issue_registry: ir.IssueRegistry,
    code: str,
    raised: bool,
) -> None:
    """A response that fails for quota raises the issue; a rate limit is retried, no issue."""
    cause = {"type": "requests", "code": code, "message": "refused"}
    realtime_server.script(
        ScriptedResponse(status="failed", error=cause), ScriptedResponse(text="Hello")
    )
    result = await conversation.async_converse(
        hass, "hello", None, Context(), language="en", agent_id=AGENT
    )
    issue = issue_registry.async_get_issue(DOMAIN, quota_issue_id(entry))
    assert (issue is not None) is raised
    if raised:
        assert result.response.response_type is intent.IntentResponseType.ERROR
    else:  # retried after a backoff: the second response answers
        assert result.response.speech["plain"]["speech"] == "Hello"
        assert len(realtime_server.of_type("response.create")) == 2


async def test_quota_issue_goes_with_the_entry(
    hass: HomeAssistant, entry: MockConfigEntry, issue_registry: ir.IssueRegistry
) -> None:
    """Removing the entry removes its quota issue."""
    async_quota_issue(hass, entry, active=True)
    assert issue_registry.async_get_issue(DOMAIN, quota_issue_id(entry)) is not None
    assert await hass.config_entries.async_remove(entry.entry_id)
    assert issue_registry.async_get_issue(DOMAIN, quota_issue_id(entry)) is None


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("1.9.2", (1, 9, 2)),
        ("v2.0", (2, 0, 0)),
        ("2.4.2-beta", (2, 4, 2)),
        ("", None),
        (None, None),
        ("latest", None),
    ],
)
def test_parse_version(text: str | None, parsed: tuple[int, int, int] | None) -> None:
    """Dotted versions with an optional v and suffix; anything else is unknown."""
    assert parse_version(text) == parsed


def test_firmware_too_old() -> None:
    """Below 1.8.0 or a hello without MCP is too old; unknown versions get the benefit."""
    assert firmware_too_old("1.7.6")
    assert not firmware_too_old("1.8.0")
    assert not firmware_too_old("2.4.2")
    assert not firmware_too_old("custom-build")
    assert not firmware_too_old(None)
    assert firmware_too_old("2.4.2", mcp=False)
    assert not firmware_too_old(None, mcp=True)


async def test_firmware_issue_is_raised_and_cleared(
    hass: HomeAssistant, issue_registry: ir.IssueRegistry
) -> None:
    """Old firmware raises the device's issue; the updated firmware clears it."""
    mac = "aa:bb:cc:dd:ee:ff"
    assert async_firmware_issue(hass, mac, "Kitchen box", "1.6.0")
    issue = issue_registry.async_get_issue(DOMAIN, firmware_issue_id(mac))
    assert issue is not None
    assert issue.translation_placeholders == {
        "name": "Kitchen box",
        "version": "1.6.0",
        "minimum": "1.8.0",
    }
    assert not async_firmware_issue(hass, mac, "Kitchen box", "2.0.1")
    assert issue_registry.async_get_issue(DOMAIN, firmware_issue_id(mac)) is None
    assert async_firmware_issue(hass, mac, "Kitchen box", mcp=False)
    issue = issue_registry.async_get_issue(DOMAIN, firmware_issue_id(mac))
    assert issue is not None
    assert issue.translation_placeholders["version"] == "unknown"


async def test_paired_device_with_old_firmware_gets_an_issue_until_removed(
    hass: HomeAssistant, client: TestClient, issue_registry: ir.IssueRegistry
) -> None:
    """A device paired with old firmware is reported at setup; removing it clears the issue."""
    device = simulator(client, firmware_version="1.7.2")
    try:
        await pair(hass, device)
        await hass.async_block_till_done()
    finally:
        await device.close()
    entry = hass.config_entries.async_entries(DOMAIN)[0]
    subentry = next(device_subentries(entry))
    assert subentry.data[CONF_FIRMWARE] == "1.7.2"
    assert issue_registry.async_get_issue(DOMAIN, firmware_issue_id(device.mac)) is not None

    hass.config_entries.async_remove_subentry(entry, subentry.subentry_id)
    await hass.async_block_till_done()
    assert issue_registry.async_get_issue(DOMAIN, firmware_issue_id(device.mac)) is None


def test_availability_is_logged_once_each_way(caplog: pytest.LogCaptureFixture) -> None:
    """A flood of failures logs "unavailable" once; recovery logs "back" once."""
    log = AvailabilityLog("Realtime service of Home")
    with caplog.at_level(logging.INFO, "custom_components.openai_realtime_voice"):
        for attempt in range(50):
            log.failed(f"connection refused #{attempt}")
        log.succeeded()
        log.succeeded()
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "Realtime service of Home is unavailable: connection refused #0",
        "Realtime service of Home is back",
    ]


async def test_agent_logs_the_service_unavailable_once(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    realtime_server: RealtimeServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Many failed Assist requests while the service is down: one line down, one line back."""
    await realtime_server.refuse_connections()
    caplog.clear()
    with caplog.at_level(logging.INFO, "custom_components.openai_realtime_voice"):
        for _ in range(5):
            result = await conversation.async_converse(
                hass, "hello", None, Context(), language="en", agent_id=AGENT
            )
            assert result.response.response_type is intent.IntentResponseType.ERROR
    ours = [r for r in caplog.records if r.name.startswith(PACKAGE)]
    unavailable = [r for r in ours if "unavailable" in r.getMessage()]
    assert len(unavailable) == 1
    assert unavailable[0].levelno == logging.INFO
    assert not [r for r in ours if r.levelno >= logging.WARNING]


async def test_debug_logs_hold_no_secret_and_no_audio_dump(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    realtime_server: RealtimeServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A turn at debug level logs event types, never the key or base64 payloads."""
    realtime_server.script(ScriptedResponse(text="Hello there", audio=b"\x01\x02" * 4800))
    with caplog.at_level(logging.DEBUG):
        await conversation.async_converse(
            hass, "hello", None, Context(), language="en", agent_id=AGENT
        )
    ours = "\n".join(
        r.getMessage() for r in caplog.records if r.name.startswith("custom_components")
    )
    assert "response.create" in ours or "Sending" in ours
    assert realtime_server.api_key not in caplog.text
    assert re.search(r"[A-Za-z0-9+/]{200,}", ours) is None


async def test_updated_device_clears_its_firmware_issue_when_it_connects(
    hass: HomeAssistant,
    hass_client_no_auth: Any,
    realtime_server: RealtimeServer,
    issue_registry: ir.IssueRegistry,
    device_registry: dr.DeviceRegistry,
) -> None:
    """Old, then new firmware reported over the device's connection raises, then clears.

    The version comes from the MCP `initialize` answer (`McpServer::ParseMessage` sends the
    running firmware's version); the unauthenticated boot check alone changes nothing.
    """

    client = await device_client(hass, hass_client_no_auth, realtime_server)
    device = simulator(client, firmware_version="1.7.0")
    try:
        await pair(hass, device)
        issue_id = firmware_issue_id(device.mac)
        assert issue_registry.async_get_issue(DOMAIN, issue_id) is not None
        device.firmware_version = "2.4.2"
        await device.check_version()
        assert issue_registry.async_get_issue(DOMAIN, issue_id) is not None
        await device.open_audio_channel()
        await wait_until(lambda: issue_registry.async_get_issue(DOMAIN, issue_id) is None, hass)
        entry = hass.config_entries.async_entries(DOMAIN)[0]
        (subentry,) = device_subentries(entry)
        assert subentry.data["firmware"] == "2.4.2"
        ha_device = device_registry.async_get_device_by_identifier(
            (DOMAIN, device.mac), entry.entry_id
        )
        assert ha_device is not None
        assert ha_device.sw_version == "2.4.2"
        await device.close_audio_channel()
        device.firmware_version = "1.7.9"
        await device.open_audio_channel()
        await wait_until(lambda: issue_registry.async_get_issue(DOMAIN, issue_id) is not None, hass)
    finally:
        await device.close()


async def test_device_without_mcp_raises_its_firmware_issue_when_it_connects(
    hass: HomeAssistant,
    hass_client_no_auth: Any,
    realtime_server: RealtimeServer,
    issue_registry: ir.IssueRegistry,
) -> None:
    """A hello without `features.mcp` (firmware before 1.8) raises the issue, whatever the
    unauthenticated boot check claimed."""
    client = await device_client(hass, hass_client_no_auth, realtime_server)
    device = NoMcpDevice(
        str(client.make_url(OTA_PATH)), activation_retry_delay=0.0, activation_error_delay=0.0
    )
    try:
        await pair(hass, device)
        issue_id = firmware_issue_id(device.mac)
        assert issue_registry.async_get_issue(DOMAIN, issue_id) is None
        await device.open_audio_channel()
        await wait_until(lambda: issue_registry.async_get_issue(DOMAIN, issue_id) is not None, hass)
    finally:
        await device.close()
