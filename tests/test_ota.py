"""The OTA boot check and activation poll, as stock firmware makes them."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient
from homeassistant.core import HomeAssistant
import pytest
import yarl

from custom_components.openai_realtime_voice.const import (
    ACTIVATE_PATH,
    CONF_DEVICE_WEBSOCKET_URL,
    OTA_PATH,
)
from custom_components.openai_realtime_voice.endpoint.hub import DATA_HUB
from custom_components.openai_realtime_voice.endpoint.ota import MAX_BODY_SIZE, websocket_url
from custom_components.openai_realtime_voice.endpoint.pairing import CODE_LIFETIME
from tests.device_helpers import pair, simulator


async def test_unknown_device_gets_activation(hass: HomeAssistant, client: TestClient) -> None:
    """An unknown device gets a 6-digit code and challenge, and no websocket or mqtt."""
    device = simulator(client, firmware_version="2.4.2")
    try:
        result = await device.check_version()
        body = result.body
        assert set(body) == {"activation", "server_time", "firmware"}
        activation = body["activation"]
        assert len(activation["code"]) == 6
        assert activation["code"].isdigit()
        assert activation["code"] in activation["message"]
        assert activation["challenge"]
        assert 0 < activation["timeout_ms"] <= CODE_LIFETIME * 1000
        assert body["firmware"] == {"version": "2.4.2", "url": ""}
        assert isinstance(body["server_time"]["timestamp"], int)
        assert isinstance(body["server_time"]["timezone_offset"], int)
        assert device.ota.firmware_upgrade_url is None
        # The code stays the same while valid, so the device keeps announcing one code.
        again = await device.check_version()
        assert again.activation == activation | {"timeout_ms": again.activation["timeout_ms"]}
        # After expiry a new check issues a new code.
        hub = hass.data[DATA_HUB]
        now = hub.pairing.clock()
        hub.pairing.clock = lambda: now + CODE_LIFETIME + 1
        renewed = await device.check_version()
        assert renewed.activation["challenge"] != activation["challenge"]
    finally:
        await device.close()


async def test_activation_poll(hass: HomeAssistant, client: TestClient) -> None:
    """202 until approved, 200 after; unknown devices, bad ids and wrong challenges refused."""
    device = simulator(client, serial_number="SN123", hmac_key=b"k")
    headers = device.ota.http_headers()
    try:
        response = await client.post(ACTIVATE_PATH, json={}, headers=headers)
        assert response.status == 404
        await device.check_version()
        body = device.ota.activation_body()
        assert body["challenge"] == device.ota.result.activation["challenge"]
        response = await client.post(ACTIVATE_PATH, json=body, headers=headers)
        assert response.status == 202
        response = await client.post(ACTIVATE_PATH, json={"challenge": "forged"}, headers=headers)
        assert response.status == 403
        response = await client.post(ACTIVATE_PATH, json={}, headers={"Device-Id": "x"})
        assert response.status == 400
        response = await client.post(ACTIVATE_PATH, data="[", headers=headers)
        assert response.status == 400
        assert not await device.activate(max_attempts=2)
    finally:
        await device.close()


async def test_paired_device_gets_websocket_and_token_once(
    hass: HomeAssistant, client: TestClient
) -> None:
    """The token goes only to the paired client, until it has been used."""
    device = simulator(client)
    try:
        await pair(hass, device)
        token = device.nvs_websocket["token"]
        assert device.nvs_websocket["version"] == 1
        assert device.ota.result is not None
        assert "mqtt" not in device.ota.result.body
        # Another client id (NVS erased, or an impostor) does not get the token.
        headers = device.ota.http_headers() | {"Client-Id": "someone-else"}
        response = await client.post(OTA_PATH, json=device.ota.system_info(), headers=headers)
        assert str(token) not in await response.text()
        # Until the device presents the token on its WebSocket, each check carries it again
        # (a lost reply must not lock the device out); once presented, none does.
        again = await device.check_version()
        assert again.websocket is not None
        assert again.websocket["token"] == token
        await device.open_audio_channel()
        await device.close_audio_channel()
        assert "token" not in (await device.check_version()).websocket
        response = await client.post(ACTIVATE_PATH, json={}, headers=device.ota.http_headers())
        assert response.status == 200
    finally:
        await device.close()


async def test_websocket_url_option(hass: HomeAssistant, client: TestClient) -> None:
    """The device WebSocket URL can be overridden in the options."""
    entry = hass.config_entries.async_entries("openai_realtime_voice")[0]
    hass.config_entries.async_update_entry(
        entry, options={**entry.options, CONF_DEVICE_WEBSOCKET_URL: "wss://voice.example/ws"}
    )
    device = simulator(client)
    try:
        await pair(hass, device)
        assert device.nvs_websocket["url"] == "wss://voice.example/ws"
    finally:
        await device.close()


def test_websocket_url_from_the_request() -> None:
    """The request's own host and port; HTTPS becomes wss; the option wins."""
    assert websocket_url(None, yarl.URL("https://ha.example:8443/api/x")) == (
        "wss://ha.example:8443/api/openai_realtime_voice/ws"
    )
    assert websocket_url(None, yarl.URL("http://10.0.0.5:8123/api/x?y=1")) == (
        "ws://10.0.0.5:8123/api/openai_realtime_voice/ws"
    )
    assert websocket_url("ws://voice:1/ws", yarl.URL("http://10.0.0.5:8123/")) == "ws://voice:1/ws"


@pytest.mark.parametrize(
    ("kwargs", "status"),
    [
        ({"data": b"x" * (MAX_BODY_SIZE + 1)}, 413),
        ({"data": b"not json"}, 400),
        ({"data": b"[1]"}, 400),
        ({"data": b"[" * 10_000}, 400),
    ],
)
async def test_bad_boot_checks(
    hass: HomeAssistant, client: TestClient, kwargs: dict[str, Any], status: int
) -> None:
    """Oversized, non-JSON and non-object bodies are refused without a traceback."""
    headers = {"Device-Id": "aa:bb:cc:dd:ee:01", "Content-Type": "application/json"}
    response = await client.post(OTA_PATH, headers=headers, **kwargs)
    assert response.status == status


async def test_chunked_oversized_body(hass: HomeAssistant, client: TestClient) -> None:
    """A body without Content-Length is still read only up to the limit."""

    async def chunks() -> Any:
        for _ in range(64):
            yield b"x" * 1024

    headers = {"Device-Id": "aa:bb:cc:dd:ee:01"}
    response = await client.post(OTA_PATH, headers=headers, data=chunks())
    assert response.status == 413


async def test_missing_device_id_and_get(hass: HomeAssistant, client: TestClient) -> None:
    """A request without a MAC or Client-Id is refused; a GET is answered but changes nothing."""
    response = await client.post(OTA_PATH, json={})
    assert response.status == 400
    response = await client.post(OTA_PATH, json={}, headers={"Device-Id": "aa:bb:cc:dd:ee:02"})
    assert response.status == 400
    response = await client.get(OTA_PATH)
    assert response.status == 400
    response = await client.get(
        OTA_PATH.rstrip("/"),
        headers={
            "Device-Id": "AA-BB-CC-DD-EE-02",
            "Client-Id": "c1",
            "User-Agent": "esp-box-3/2.0.1",
        },
    )
    body = await response.json()
    assert body["firmware"] == {"version": "2.0.1", "url": ""}
    assert "activation" not in body
    assert not hass.data[DATA_HUB].pairing.pending
    await hass.async_block_till_done()
    assert not hass.config_entries.flow.async_progress_by_handler("openai_realtime_voice")


async def test_not_ready_without_a_loaded_entry(hass: HomeAssistant, client: TestClient) -> None:
    """Without a loaded service entry, devices are asked to come back later."""
    entry = hass.config_entries.async_entries("openai_realtime_voice")[0]
    await hass.config_entries.async_unload(entry.entry_id)
    headers = {"Device-Id": "aa:bb:cc:dd:ee:03", "Client-Id": "c1"}
    response = await client.post(OTA_PATH, json={}, headers=headers)
    assert response.status == 503
