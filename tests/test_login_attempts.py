"""Refused device requests and Home Assistant's failed-login bookkeeping (issue 29, item 8).

Raw WebSocket upgrades and photo uploads against the real Home Assistant HTTP server, counted
by HA's own ban middleware (`process_wrong_login`: a warning, a reverse-DNS lookup, the "Login
attempt failed" notification and the per-address counter for bans).
"""

from __future__ import annotations

import logging
import secrets

from aiohttp.test_utils import TestClient
from homeassistant.components.http.ban import KEY_FAILED_LOGIN_ATTEMPTS
from homeassistant.core import HomeAssistant
import pytest

from custom_components.openai_realtime_voice.const import DEVICE_WS_PATH, VISION_PATH
from custom_components.openai_realtime_voice.endpoint.hub import DATA_HUB
from tests.device_helpers import pair, simulator

LOGIN_WINDOW = 600.0
"""Seconds in which one address is counted once (`endpoint/logins.py`)."""


def ha_login_warnings(caplog: pytest.LogCaptureFixture) -> int:
    """Warnings Home Assistant's ban middleware logged for failed logins."""
    return sum(
        1
        for record in caplog.records
        if record.name == "homeassistant.components.http.ban"
        and record.getMessage().startswith("Login attempt")
    )


def counted(client: TestClient) -> int:
    """Failed logins HA counted towards a ban of the test client's address."""
    return sum(client.app[KEY_FAILED_LOGIN_ATTEMPTS].values())


async def refuse(client: TestClient, headers: dict[str, str]) -> None:
    """One refused WebSocket upgrade and one refused photo upload with these headers."""
    assert (await client.get(DEVICE_WS_PATH, headers=headers)).status == 401
    response = await client.post(VISION_PATH, data=b"", headers=headers)
    assert response.status == 401


async def test_what_is_not_a_guess_is_never_counted(
    hass: HomeAssistant, client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    """No token, garbage, a bad Device-Id, or a MAC nobody paired: refused, never counted.

    Before the fix each of these 400 refusals was a failed login.
    """
    well_formed = secrets.token_urlsafe(32)
    kinds = [
        {"Device-Id": "aa:bb:cc:dd:ee:01"},
        {"Device-Id": "aa:bb:cc:dd:ee:01", "Authorization": "Bearer nope"},
        {"Device-Id": "aa:bb:cc:dd:ee:01", "Authorization": "Bearer " + "x" * 4000},
        {"Device-Id": "not-a-mac", "Authorization": f"Bearer {well_formed}"},
        {"Device-Id": "aa:bb:cc:dd:ee:02", "Authorization": f"Bearer {well_formed}"},
    ]
    for i in range(200):
        await refuse(client, kinds[i % len(kinds)])
    assert counted(client) == 0
    assert ha_login_warnings(caplog) == 0


async def test_guesses_count_once_per_address_and_window(
    hass: HomeAssistant, client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    """Well-formed wrong tokens for a paired MAC could be guesses: counted, once a window."""
    hub = hass.data[DATA_HUB]
    device = simulator(client)
    try:
        await pair(hass, device)
        for _ in range(100):
            headers = {
                "Device-Id": device.mac,
                "Authorization": f"Bearer {secrets.token_urlsafe(32)}",
            }
            await refuse(client, headers)
        assert counted(client) == 1
        assert ha_login_warnings(caplog) == 1
        now = hub.pairing.clock()
        hub.pairing.clock = lambda: now + LOGIN_WINDOW
        await refuse(client, headers)
        assert counted(client) == 2
        assert ha_login_warnings(caplog) == 2
        assert not [r for r in caplog.records if headers["Authorization"][7:] in r.getMessage()]
    finally:
        await device.close()


async def test_a_replaced_token_is_not_a_guess(
    hass: HomeAssistant, client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    """The old board keeps waking with the token its reset twin replaced: refused, not counted."""
    caplog.set_level(logging.INFO)
    old = simulator(client)
    new = simulator(client, mac=old.mac)
    try:
        await pair(hass, old)
        new.erase_settings()
        await pair(hass, new)
        await hass.async_block_till_done()
        for _ in range(20):
            with pytest.raises(Exception, match="401"):
                await old.open_audio_channel()
        assert counted(client) == 0
        assert ha_login_warnings(caplog) == 0
        await new.open_audio_channel()
        assert new.channel_open
    finally:
        await old.close()
        await new.close()
