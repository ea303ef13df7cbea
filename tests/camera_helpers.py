"""Cameras for the vision tests: Home Assistant still cameras and camera boards."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp.test_utils import TestClient
from homeassistant.components.camera import Camera
from homeassistant.core import HomeAssistant
from yarl import URL

from custom_components.openai_realtime_voice.xiaozhi import McpError, McpToolResult
from simulator.camera import TAKE_PHOTO, Camera as BoardCamera
from simulator.device import DeviceSimulator
from tests.device_helpers import bridge_at, device_home, live, pair, simulator, wait_until

GARAGE = "camera.garage"


PORCH = "camera.porch"


BROKEN = "camera.broken"


class StillCamera(Camera):
    """A camera whose snapshot is a fixed JPEG."""

    def __init__(self, name: str, picture: bytes) -> None:
        super().__init__()
        self._attr_name = name
        self._attr_unique_id = name
        self._picture = picture
        self.snapshots = 0

    async def async_camera_image(
        self, width: int | None = None, height: int | None = None
    ) -> bytes:
        self.snapshots += 1
        return self._picture


class FirmwareHostBoard(DeviceSimulator):
    """A board whose WebSocket handshake sends `Host` without the port, as the firmware does.

    esp-ml307 `WebSocket::Connect` writes `"Host: " + host` (its HTTP client, used for the OTA
    check and the photo upload, sends `host:port`).
    """

    def ws_headers(self) -> dict[str, str]:
        """The handshake headers with the firmware's port-less `Host`."""
        url = URL(str(self.nvs_websocket["url"]))
        assert url.host is not None
        return {**super().ws_headers(), "Host": url.host}


async def camera_board(
    hass: HomeAssistant,
    client: TestClient,
    camera: BoardCamera | None = None,
    device: DeviceSimulator | None = None,
) -> tuple[DeviceSimulator, BoardCamera]:
    """A paired camera board with an open channel and a Realtime session."""
    camera = camera or BoardCamera()
    if device is None:
        device = simulator(client, board_type="esp32s3-korvo2-v3", board_name="esp32s3-korvo2-v3")
    camera.attach(device)  # the firmware registers the camera tool at boot
    await pair(hass, device)
    await device.open_audio_channel()
    state = device_home(hass, device.mac).state
    await wait_until(lambda: any(t.name == TAKE_PHOTO for t in state.tools), state)
    await wait_until(
        lambda: (
            (bridge := bridge_at(hass, state.mac)) is not None
            and bridge.client is not None
            and bridge.client.connected
        ),
        state,
    )
    return device, camera


async def take_photo(hass: HomeAssistant, device: DeviceSimulator, question: str) -> str:
    """Call the board's `self.camera.take_photo` as the model does; its result (or error)."""
    try:
        result: McpToolResult = await live(hass, device.mac).mcp.call_tool(
            TAKE_PHOTO, {"question": question}
        )
    except McpError as err:
        return f"error: {err}"
    return result.text


@dataclass
class HeldCamera(BoardCamera):
    """A board camera whose `take_photo` stays pending until the test lets it end.

    The test makes the uploads itself while the call is pending (the firmware's tool blocks
    the board's main task for the whole upload, `McpServer::DoToolCall`).
    """

    taking: asyncio.Event = field(default_factory=asyncio.Event)
    done: asyncio.Event = field(default_factory=asyncio.Event)

    async def explain(self, device: DeviceSimulator, question: str) -> str:
        """Wait for the test instead of uploading."""
        self.taking.set()
        await self.done.wait()
        return "held"


@asynccontextmanager
async def photo_pending(
    hass: HomeAssistant, device: DeviceSimulator, camera: HeldCamera, question: str = "What?"
) -> AsyncIterator[asyncio.Task[str]]:
    """A `take_photo` call in flight on the board for the duration of the block."""
    call = asyncio.create_task(take_photo(hass, device, question))
    await camera.taking.wait()
    try:
        yield call
    finally:
        camera.done.set()
        await call
