"""The token hand-over survives a lost boot-check reply (issue 27, item 5).

The firmware stores the token only from a reply it read to the end (`Ota::CheckVersion`); a
reply lost to a Wi-Fi drop or a power cut leaves the board without it. The token stays
available to the approved Client-Id until the board first presents it on its WebSocket.
"""

from __future__ import annotations

from aiohttp.test_utils import TestClient
from homeassistant.components.http.ban import KEY_FAILED_LOGIN_ATTEMPTS
from homeassistant.core import HomeAssistant
import pytest

from custom_components.openai_realtime_voice.const import CONF_CODE, OTA_PATH
from custom_components.openai_realtime_voice.endpoint.hub import DATA_HUB
from custom_components.openai_realtime_voice.endpoint.pairing import APPROVAL_GUARD
from simulator.device import DeviceSimulator
from simulator.errors import OtaError
from tests.device_helpers import device_home, discovery_flow, simulator


async def approve(hass: HomeAssistant, device: DeviceSimulator) -> None:
    """Boot check, the user types the code the board speaks, the board's poll gets 200."""
    code = (await device.check_version()).activation["code"]
    await hass.async_block_till_done()
    flow = discovery_flow(hass, device.mac)
    done = await hass.config_entries.flow.async_configure(flow["flow_id"], {CONF_CODE: code})
    assert done["reason"] == "device_paired"
    assert await device.activate(max_attempts=1)
    await hass.async_block_till_done()


async def test_lost_token_reply_is_handed_over_again(
    hass: HomeAssistant, client: TestClient
) -> None:
    """The reply carrying the token is lost: the next boot check carries it again.

    Before the fix the token went out once; the board then got 401 at every wake (each a
    failed login) and could only be deleted and paired again.
    """
    device = simulator(client)
    try:
        await approve(hass, device)
        device.ota.lose_replies = 1
        with pytest.raises(OtaError, match="lost"):
            await device.check_version()
        assert "token" not in device.nvs_websocket

        # Another Client-Id with the board's MAC (an impostor, or the board after an erase)
        # never gets the token, however often it asks.
        impostor = device.ota.http_headers() | {"Client-Id": "someone-else"}
        for _ in range(3):
            response = await client.post(OTA_PATH, json=device.ota.system_info(), headers=impostor)
            assert '"token"' not in await response.text()

        # The board retries its boot check (10 s later, `CheckNewVersion`): the token is there.
        result = await device.check_version()
        assert result.websocket is not None
        assert "token" in result.websocket
        await device.open_audio_channel()
        assert device_home(hass, device.mac).state.connected
        await device.close_audio_channel()
        # Presented once on the WebSocket: no boot check carries it any more.
        again = await device.check_version()
        assert again.websocket is not None
        assert "token" not in again.websocket
        assert not hass.http.app[KEY_FAILED_LOGIN_ATTEMPTS]
    finally:
        await device.close()


async def test_token_waits_for_a_board_that_stays_off(
    hass: HomeAssistant, client: TestClient
) -> None:
    """A board switched off before it stored its token gets it when it boots hours later."""
    hub = hass.data[DATA_HUB]
    device = simulator(client)
    try:
        await approve(hass, device)
        device.ota.lose_replies = 1
        with pytest.raises(OtaError):
            await device.check_version()
        now = hub.pairing.clock()
        hub.pairing.clock = lambda: now + 3 * APPROVAL_GUARD
        result = await device.check_version()
        assert result.websocket is not None
        assert "token" in result.websocket
        await device.open_audio_channel()
        assert device_home(hass, device.mac).state.connected
    finally:
        await device.close()
