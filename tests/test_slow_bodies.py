"""Slow request bodies on the unauthenticated OTA endpoints and the photo upload, over raw
sockets: headers and part of a body, then nothing. Each read has a deadline and the reads one
address keeps open at once are bounded."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
import json

from aiohttp.test_utils import TestClient
from homeassistant.core import HomeAssistant
import pytest

from custom_components.openai_realtime_voice import vision_view
from custom_components.openai_realtime_voice.const import ACTIVATE_PATH, OTA_PATH, VISION_PATH
from custom_components.openai_realtime_voice.endpoint import ota
from custom_components.openai_realtime_voice.endpoint.hub import DATA_HUB
from simulator.camera import BOUNDARY, multipart_parts
from simulator.device import DeviceSimulator
from tests.camera_helpers import HeldCamera, camera_board, photo_pending
from tests.device_helpers import CallWatcher, release_devices, simulator, wait_until

SOURCE = "127.0.0.1"


@pytest.fixture
async def devices(hass: HomeAssistant, client: TestClient) -> AsyncIterator[TestClient]:
    """The test client; its simulators are closed afterwards."""
    yield client
    await release_devices(hass, client)


class SlowRequest:
    """A raw HTTP/1.1 request that sends its headers and part of its body, then stalls."""

    def __init__(self, client: TestClient, path: str, headers: dict[str, str]) -> None:
        self.url = client.make_url(path)
        self.path = path
        self.headers = headers
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def start(self, body: bytes, length: int) -> None:
        """Connect and send the headers (announcing `length` bytes) and `body`."""
        self.reader, self.writer = await asyncio.open_connection(self.url.host, self.url.port)
        head = "".join(f"{name}: {value}\r\n" for name, value in self.headers.items())
        self.writer.write(
            (
                f"POST {self.path} HTTP/1.1\r\nHost: {self.url.host}:{self.url.port}\r\n{head}"
                f"Content-Length: {length}\r\n\r\n"
            ).encode()
            + body
        )
        await self.writer.drain()

    async def answer(self, timeout: float = 5.0) -> bytes:
        """Everything the server sends until it closes the connection."""
        assert self.reader is not None
        async with asyncio.timeout(timeout):
            return await self.reader.read()

    def close(self) -> None:
        """Drop the connection."""
        if self.writer is not None:
            self.writer.close()


def boot_check(device: DeviceSimulator) -> tuple[dict[str, str], bytes]:
    """A board's boot check headers and body."""
    return device.ota.http_headers(), json.dumps(device.ota.system_info()).encode()


async def test_slow_boot_check_body_times_out(
    hass: HomeAssistant, devices: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Headers and part of a body, then nothing: 408 and closed once the deadline passes."""
    # raising=False: before the fix there was no deadline to shorten (the read never ended).
    monkeypatch.setattr(ota, "BODY_TIMEOUT", 0.2, raising=False)
    headers, body = boot_check(simulator(devices))
    for path in (OTA_PATH, ACTIVATE_PATH):
        request = SlowRequest(devices, path, headers)
        await request.start(body[:100], len(body))
        answer = await request.answer()
        request.close()
        assert answer.startswith(b"HTTP/1.1 408"), answer
    assert hass.data[DATA_HUB].pairing.body_reads.open(SOURCE) == 0


async def test_slow_bodies_count_against_the_address(
    hass: HomeAssistant, devices: TestClient
) -> None:
    """Two stalled bodies from one address: its next request is refused at once, unread.

    Before the fix every stalled request stayed open (15 OTA requests still open after 90 s).
    """
    pairing = hass.data[DATA_HUB].pairing
    reads = CallWatcher(pairing.body_reads, "acquire", "release")
    device = simulator(devices)
    headers, body = boot_check(device)
    stalled = [SlowRequest(devices, OTA_PATH, headers) for _ in range(2)]
    for request in stalled:
        await request.start(body[:100], len(body))
    await wait_until(lambda: pairing.body_reads.open(SOURCE) == 2, reads)
    for path in (OTA_PATH, ACTIVATE_PATH):
        refused = SlowRequest(devices, path, headers)
        await refused.start(body, len(body))
        answer = await refused.answer()
        refused.close()
        assert answer.startswith(b"HTTP/1.1 429"), answer
    # Another address is not affected, and the stalled ones free their slots when they go.
    assert pairing.body_reads.open("192.0.2.1") == 0
    for request in stalled:
        request.close()
    await wait_until(lambda: pairing.body_reads.open(SOURCE) == 0, reads)
    assert (await device.check_version()).activation is not None


async def test_slow_photo_upload_times_out(
    hass: HomeAssistant,
    devices: TestClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A board's upload that stalls mid-body is answered 408 and closed; nothing is kept."""
    # raising=False: before the fix there was no deadline to shorten (the read never ended).
    monkeypatch.setattr(vision_view, "UPLOAD_TIMEOUT", 0.2, raising=False)
    camera = HeldCamera()
    device, _ = await camera_board(hass, devices, camera)
    assert device.mcp.vision is not None
    vision = hass.data[DATA_HUB].vision
    parts = b"".join(multipart_parts("q", camera.picture))
    request = SlowRequest(
        devices,
        VISION_PATH,
        {
            "Device-Id": device.mac,
            "Client-Id": device.client_id,
            "Authorization": f"Bearer {device.mcp.vision['token']}",
            "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
        },
    )
    async with photo_pending(hass, device, camera):
        await request.start(parts[:300], len(parts))
        answer = await request.answer()
        request.close()
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert not vision.uploading(device.mac)
    assert hass.data[DATA_HUB].pairing.body_reads.open(SOURCE) == 0
