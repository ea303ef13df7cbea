"""Security: what an attacker on the network, or a hostile device, cannot do.

Covered elsewhere and not repeated here: a token replayed with another `Device-Id`, wrong and
missing tokens, and failed-login counting (`test_device_view.py`); the token handed only to
the pairing Client-Id and only once (`test_ota.py`); a LAN attacker against pairing, the
endpoints' rate limits, discovery floods and spoofed boot checks (`test_pairing_attacks.py`);
wrong codes refused after five in the discovery flow (`test_pairing.py`); diagnostics
redaction (`test_diagnostics.py`); debug logs without audio dumps (`test_repairs.py`); hostile
frames (`xiaozhi/test_fuzz.py`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
import json
import logging
from typing import Any

from aiohttp import ClientError
from aiohttp.test_utils import TestClient
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)

from custom_components.openai_realtime_voice.const import (
    ACTIVATE_PATH,
    CONF_CODE,
    CONF_MAC,
    CONF_TOKEN_HASH,
    DEVICE_WS_PATH,
    DOMAIN,
    OTA_PATH,
    SUBENTRY_DEVICE,
)
from custom_components.openai_realtime_voice.endpoint import device_subentries
from custom_components.openai_realtime_voice.endpoint.hub import DATA_HUB
from custom_components.openai_realtime_voice.endpoint.ota import MAX_BODY_SIZE
from custom_components.openai_realtime_voice.endpoint.pairing import MAX_WRONG_CODES
from realtime_server import RealtimeServer, ScriptedCall, ScriptedResponse, tone
from tests.bridge_helpers import say
from tests.device_helpers import (
    bridge_at,
    connected_device,
    device_client,
    device_home,
    discovery_flow,
    pair,
    simulator,
    wait_until,
)

TURN_ON = "intent__HassTurnOn"


@pytest.fixture
async def client(
    hass: HomeAssistant, hass_client_no_auth: Any, realtime_server: RealtimeServer, lights: None
) -> TestClient:
    """A loaded entry with lights (some not exposed) and a client without credentials."""
    assert await async_setup_component(hass, "diagnostics", {})
    return await device_client(hass, hass_client_no_auth, realtime_server)


async def test_pairing_guesses_are_limited_across_both_forms(
    hass: HomeAssistant, client: TestClient
) -> None:
    """Wrong codes typed in the discovery flow and in "Add device" share one budget of five."""
    device = simulator(client)
    try:
        result = await device.check_version()
        code = result.activation["code"]
        wrong = f"{(int(code) + 1) % 1_000_000:06d}"
        await hass.async_block_till_done()
        flow = discovery_flow(hass, device.mac)
        for _ in range(MAX_WRONG_CODES - 2):
            step = await hass.config_entries.flow.async_configure(
                flow["flow_id"], {CONF_CODE: wrong}
            )
            assert step["errors"] == {"base": "invalid_code"}
        entry = hass.config_entries.async_entries(DOMAIN)[0]
        step = await hass.config_entries.subentries.async_init(
            (entry.entry_id, SUBENTRY_DEVICE), context={"source": "user"}
        )
        for _ in range(2):
            step = await hass.config_entries.subentries.async_configure(
                step["flow_id"], {CONF_MAC: device.mac, CONF_CODE: wrong}
            )
            assert step["errors"] == {"base": "invalid_code"}
        # Six guesses out of a million: the right code is now refused in both forms.
        step = await hass.config_entries.subentries.async_configure(
            step["flow_id"], {CONF_MAC: device.mac, CONF_CODE: code}
        )
        assert step["errors"] == {"base": "too_many_attempts"}
        again = await hass.config_entries.flow.async_configure(flow["flow_id"], {CONF_CODE: code})
        assert again["errors"] == {"base": "too_many_attempts"}
        # The device asking again within the window gets the same code, not a fresh budget.
        assert (await device.check_version()).activation["code"] == code
        assert not list(device_subentries(entry))
        response = await client.post(ACTIVATE_PATH, json={}, headers=device.ota.http_headers())
        assert response.status == 202
    finally:
        await device.close()


async def test_every_device_endpoint_refuses_without_credentials(
    hass: HomeAssistant, client: TestClient
) -> None:
    """No token over OTA without the pairing Client-Id, no WebSocket without a token."""
    device = simulator(client)
    try:
        await pair(hass, device)
        token = str(device.nvs_websocket["token"])
        # OTA: a stranger who knows the MAC (it is printed on the board) gets no token: without
        # a Client-Id the request is refused, with another one it is a pairing (of a device
        # that was reset) that the user must approve with the code only the sender sees.
        for headers, status in (
            ({"Device-Id": device.mac}, 400),
            ({"Device-Id": device.mac, "Client-Id": ""}, 400),
            ({"Device-Id": device.mac.upper(), "Client-Id": device.client_id.upper()}, 200),
            ({"Device-Id": device.mac, "Client-Id": "impostor"}, 409),
        ):
            response = await client.post(OTA_PATH, json={}, headers=headers)
            assert response.status == status, headers
            text = await response.text()
            assert token not in text
            if status == 200:
                assert "websocket" not in json.loads(text)
        # WebSocket: 401 before any upgrade, whatever else is sent.
        for headers in (
            {},
            {"Device-Id": device.mac},
            {"Device-Id": device.mac, "Authorization": f"Basic {token}"},
            {"Device-Id": device.mac, "Authorization": "Bearer"},
            {"Device-Id": device.mac, "Authorization": f"Bearer {token[:-1]}"},
            {"Authorization": f"Bearer {token}"},
        ):
            response = await client.get(DEVICE_WS_PATH, headers=headers)
            assert response.status == 401, headers
    finally:
        await device.close()


async def test_activation_needs_the_issued_challenge(
    hass: HomeAssistant, client: TestClient
) -> None:
    """A forged challenge is refused and never turns into an approval."""
    device = simulator(client)
    try:
        await device.check_version()
        headers = device.ota.http_headers()
        for forged in ("", "x" * 32, device.ota.result.activation["challenge"][:-1], None, 1):
            body = {"challenge": forged} if forged is not None else {"challenge": []}
            response = await client.post(ACTIVATE_PATH, json=body, headers=headers)
            assert response.status == 403, forged
        assert not hass.data[DATA_HUB].pairing.is_approved(device.mac, device.client_id)
    finally:
        await device.close()


@pytest.mark.parametrize("path", [OTA_PATH, ACTIVATE_PATH])
async def test_oversized_bodies_are_not_read_whole(
    hass: HomeAssistant, client: TestClient, path: str
) -> None:
    """A streamed 4 MiB body is cut off after the limit: the rest is never read."""
    sent = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(1024):
            sent += 4096
            yield b" " * 4096

    headers = {"Device-Id": "aa:bb:cc:dd:ee:10"}
    try:
        response = await client.post(path, data=body(), headers=headers)
    except ClientError:
        pass  # the server may close before the client finishes writing
    else:
        assert response.status == 413
    assert sent < 1024 * 4096
    declared = await client.post(
        path, data=b"{}", headers=headers | {"Content-Length": str(MAX_BODY_SIZE + 1)}
    )
    assert declared.status in (400, 413)
    assert not hass.data[DATA_HUB].pairing.pending


async def test_no_secret_in_logs_over_a_whole_journey(
    hass: HomeAssistant,
    client: TestClient,
    hass_client: Any,
    realtime_server: RealtimeServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Pairing, a turn, a tool call, a drop and a reconnect at DEBUG: no key, token or code."""
    caplog.set_level(logging.DEBUG)
    device = simulator(client)
    try:
        check = await device.check_version()
        secrets = {
            "pairing code": str(check.activation["code"]),
            "challenge": str(check.activation["challenge"]),
            "api key": realtime_server.api_key,
            "api key tail": realtime_server.api_key[-8:],
        }
        await hass.async_block_till_done()
        flow = discovery_flow(hass, device.mac)
        done = await hass.config_entries.flow.async_configure(
            flow["flow_id"], {CONF_CODE: secrets["pairing code"]}
        )
        assert done["type"] is FlowResultType.ABORT
        assert await device.activate(max_attempts=1)
        await hass.async_block_till_done()
        await device.check_version()
        await device.open_audio_channel()
        state = device_home(hass, device.mac).state
        await wait_until(
            lambda: (
                (bridge := bridge_at(hass, state.mac)) is not None
                and bridge.client is not None
                and bridge.client.connected
            ),
            state,
        )
        realtime_server.script(
            ScriptedResponse(calls=[ScriptedCall(TURN_ON, '{"name": "Kitchen Lights"}')]),
            ScriptedResponse(text="Done.", audio=tone(120)),
        )
        await say(device)
        await wait_until(lambda: realtime_server.responses_done >= 2, realtime_server)
        await realtime_server.drop()
        await realtime_server.wait_connections(2)
        entry = hass.config_entries.async_entries(DOMAIN)[0]
        subentry = next(device_subentries(entry))
        secrets["device token"] = str(device.nvs_websocket["token"])
        secrets["token hash"] = str(subentry.data[CONF_TOKEN_HASH])
        diagnostics = json.dumps(await get_diagnostics_for_config_entry(hass, hass_client, entry))
    finally:
        await device.close()
    assert hass.states.get("light.kitchen_lights").state == "on"
    logged = caplog.text
    assert "Sending response.create" in logged  # the debug log did run
    for what, secret in secrets.items():
        assert secret not in logged, what
        assert secret not in diagnostics, what


async def test_device_cannot_reach_unexposed_entities(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """Tool calls naming entities not exposed to Assist fail; the prompt never lists them."""
    device = await connected_device(hass, client)
    state = device_home(hass, device.mac).state
    await wait_until(
        lambda: (
            (bridge := bridge_at(hass, state.mac)) is not None
            and bridge.client is not None
            and bridge.client.connected
        ),
        state,
    )
    instructions = realtime_server.session.session["instructions"]
    assert "Kitchen Lights" in instructions
    assert "input_boolean" not in instructions
    realtime_server.script(
        ScriptedResponse(
            calls=[
                ScriptedCall(TURN_ON, '{"name": "kitchen"}'),
                ScriptedCall(TURN_ON, '{"name": "input_boolean.kitchen"}'),
                ScriptedCall(TURN_ON, '{"domain": ["input_boolean"]}'),
                ScriptedCall("homeassistant_turn_on", '{"entity_id": "input_boolean.kitchen"}'),
            ]
        ),
        ScriptedResponse(text="I can't.", audio=tone(120)),
    )
    try:
        await say(device)
        await wait_until(lambda: realtime_server.responses_done >= 2, realtime_server)
        await hass.async_block_till_done()
        outputs = [
            json.loads(event["item"]["output"])
            for event in realtime_server.of_type("conversation.item.create")
            if event["item"]["type"] == "function_call_output"
        ]
        assert len(outputs) == 4
        assert all(output["error"] is True for output in outputs)
        assert "exposed" in outputs[1]["data"]["error_text"]
        assert "exposed" in outputs[2]["data"]["error_text"]
        assert "not found" in outputs[3]["data"]["error_text"]
        assert hass.states.get("input_boolean.kitchen").state == "off"
        assert hass.states.get("input_boolean.bedroom").state == "off"
    finally:
        await device.close()
