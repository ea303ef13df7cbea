"""Camera boards: vision token in MCP `initialize`, the firmware's photo upload, the picture in the
Realtime conversation, and the refusals (wrong or expired token, oversized or bad uploads)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
import io
import json
import logging
from typing import Any

from aiohttp.test_utils import TestClient
from homeassistant.core import HomeAssistant
from homeassistant.helpers import llm
from PIL import Image
import pytest

from custom_components.openai_realtime_voice.const import (
    CONF_DEVICE_WEBSOCKET_URL,
    CONF_LLM_HASS_API,
    DEVICE_WS_PATH,
    DOMAIN,
    OTA_PATH,
    VISION_PATH,
)
from custom_components.openai_realtime_voice.diagnostics import async_get_config_entry_diagnostics
from custom_components.openai_realtime_voice.endpoint.hub import DATA_HUB
from custom_components.openai_realtime_voice.profile import CONF_PROFILE
from custom_components.openai_realtime_voice.services_api import API_ID
from custom_components.openai_realtime_voice.services_api.camera import LOOK_AT_CAMERA_TOOL
from custom_components.openai_realtime_voice.vision import (
    CONF_CAMERA,
    image_input_allowed,
)
from custom_components.openai_realtime_voice.vision_view import MAX_UPLOAD_BYTES
from realtime_server import RealtimeServer, ScriptedCall, ScriptedResponse, tone
from simulator.camera import BOUNDARY, TAKE_PHOTO, Camera, generated_picture, multipart_parts
from simulator.device import DeviceSimulator
from tests.agent_helpers import set_settings
from tests.bridge_helpers import say
from tests.camera_helpers import (
    GARAGE,
    FirmwareHostBoard,
    HeldCamera,
    camera_board,
    photo_pending,
    take_photo,
)
from tests.device_helpers import (
    bridge_at,
    device_client,
    device_home,
    pair,
    release_devices,
    simulator,
    wait_until,
)

pytestmark = pytest.mark.usefixtures("lights")

PHOTO_TOOL = "device__self_camera_take_photo"  # device tools have their own name space


@pytest.fixture
async def client(
    hass: HomeAssistant, hass_client_no_auth: Any, realtime_server: RealtimeServer
) -> AsyncIterator[TestClient]:
    """A loaded entry and an HTTP client; the simulators are closed afterwards."""
    http = await device_client(hass, hass_client_no_auth, realtime_server)
    yield http
    await release_devices(hass, http)


def size_of(jpeg: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(jpeg)) as image:
        assert image.format == "JPEG"
        return image.size


async def test_camera_board_photo_reaches_the_model(
    hass: HomeAssistant,
    client: TestClient,
    realtime_server: RealtimeServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """take_photo -> chunked multipart upload -> input_image item -> the scripted answer plays."""
    caplog.set_level(logging.DEBUG)
    picture = generated_picture(1600, 1200)
    device, camera = await camera_board(hass, client, Camera(picture))
    # The device got a vision URL beside its WebSocket and a token that is not its main token.
    assert device.mcp.vision is not None
    assert device.mcp.vision["url"] == str(client.make_url(VISION_PATH))
    assert device.mcp.vision["token"]
    assert device.mcp.vision["token"] != device.nvs_websocket["token"]
    realtime_server.script(
        ScriptedResponse(calls=[ScriptedCall(PHOTO_TOOL, '{"question": "What do you see?"}')]),
        ScriptedResponse(text="I see a white square.", audio=tone(600)),
    )
    await say(device)
    await wait_until(lambda: realtime_server.responses_done >= 2, realtime_server, timeout=10)
    await device.wait_for_message(lambda m: m["type"] == "tts" and m["state"] == "stop")

    assert camera.uploads[-1]["status"] == 200
    images = realtime_server.images()
    assert len(images) == 1
    width, height = size_of(images[0])
    assert (width, height) == (1024, 768)  # scaled to the default long side, aspect kept
    assert not realtime_server.violations
    # The image item came before the tool's output, which tells the model where the photo is.
    created = [e["item"] for e in realtime_server.of_type("conversation.item.create")]
    kinds = [item["type"] for item in created]
    assert kinds.index("message") < kinds.index("function_call_output")
    output = next(i for i in created if i["type"] == "function_call_output")["output"]
    assert "photo is now in the conversation" in output
    assert "What do you see?" in output
    assert "sentence_start" in {m.get("state") for m in device.messages if m["type"] == "tts"}
    assert device.assistant_lines[-1] == "I see a white square."
    assert hass.data[DATA_HUB].vision.device_images[device.mac] == 1
    assert device.mcp.vision["token"] not in caplog.text  # never logged, even at debug level


async def test_photo_reaches_the_model_from_a_board_on_a_non_default_port(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """The firmware's handshake has no port in `Host`: the vision URL keeps the port it reached.

    Home Assistant listens on a random port here (8123 at home); a URL built from the `Host`
    header alone would send the board to port 80 ("Failed to connect to explain URL").
    """
    board = FirmwareHostBoard(
        str(client.make_url(OTA_PATH)),
        board_type="esp32s3-korvo2-v3",
        activation_retry_delay=0.0,
        activation_error_delay=0.0,
    )
    try:
        device, camera = await camera_board(hass, client, device=board)
        assert client.port not in (80, None)
        assert device.mcp.vision is not None
        assert device.mcp.vision["url"] == str(client.make_url(VISION_PATH))
        realtime_server.script(
            ScriptedResponse(calls=[ScriptedCall(PHOTO_TOOL, '{"question": "Who is it?"}')]),
            ScriptedResponse(text="A courier with a parcel.", audio=tone(300)),
        )
        await say(device)
        await wait_until(lambda: realtime_server.responses_done >= 2, realtime_server, timeout=10)
        await device.wait_for_message(lambda m: m["type"] == "tts" and m["state"] == "stop")
        assert camera.uploads[-1]["status"] == 200
        assert len(realtime_server.images()) == 1
        assert device.assistant_lines[-1] == "A courier with a parcel."
    finally:
        await board.close()


async def test_vision_url_follows_the_device_websocket_url(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """With `device_websocket_url` set (a proxy, a port mapping), photos go to its origin."""
    entry = hass.config_entries.async_entries(DOMAIN)[0]
    hass.config_entries.async_update_entry(
        entry,
        options={
            **entry.options,
            CONF_DEVICE_WEBSOCKET_URL: "wss://voice.example.com/api/openai_realtime_voice/ws",
        },
    )
    await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    device = FirmwareHostBoard(str(client.make_url(OTA_PATH)), activation_retry_delay=0.0)
    try:
        Camera().attach(device)
        await pair(hass, device)
        assert device.nvs_websocket["url"] == entry.options[CONF_DEVICE_WEBSOCKET_URL]
        # What the proxy at voice.example.com would forward to reaches Home Assistant here.
        device.nvs_websocket["url"] = str(client.make_url(DEVICE_WS_PATH).with_scheme("ws"))
        await device.open_audio_channel()
        await wait_until(lambda: device.mcp.vision is not None, device)
        assert device.mcp.vision is not None
        assert (
            device.mcp.vision["url"] == "https://voice.example.com/api/openai_realtime_voice/vision"
        )
    finally:
        await device.close()


async def test_small_picture_is_not_enlarged(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """A QVGA frame (what most camera boards send) reaches the model at its own size."""
    device, _ = await camera_board(hass, client, Camera(generated_picture(320, 240)))
    answer = await take_photo(hass, device, "Is the door open?")
    assert "photo is now in the conversation" in answer
    assert size_of(realtime_server.images()[0]) == (320, 240)


async def test_without_vision_the_tool_fails_like_the_firmware(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """Image input switched off: no vision URL, so take_photo fails with the firmware's text."""
    entry = hass.config_entries.async_entries("openai_realtime_voice")[0]
    set_settings(hass, entry, image_input=False)
    await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    device, camera = await camera_board(hass, client)
    assert device.mcp.vision is None
    with pytest.raises(Exception, match="Image explain URL or token is not set"):
        await camera.explain(device, "anything?")
    assert not camera.uploads


async def _post(client: TestClient, device: DeviceSimulator, token: str, body: Any) -> Any:
    return await client.post(
        VISION_PATH,
        data=body,
        headers={
            "Device-Id": device.mac,
            "Client-Id": device.client_id,
            "Authorization": f"Bearer {token}",
            "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
        },
    )


async def test_wrong_expired_and_revoked_tokens_get_401(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """Only the live connection's own token opens the endpoint, and only until it expires."""
    device, _ = await camera_board(hass, client)
    assert device.mcp.vision is not None
    token = device.mcp.vision["token"]
    body = b"".join(multipart_parts("q", generated_picture(64, 48)))
    for wrong in ("nope", device.nvs_websocket["token"], ""):
        resp = await _post(client, device, str(wrong), body)
        assert resp.status == 401
    resp = await client.post(VISION_PATH, data=body)  # no headers at all
    assert resp.status == 401
    # Another device's MAC with this token: refused.
    resp = await client.post(
        VISION_PATH,
        data=body,
        headers={"Device-Id": "02:00:00:00:00:01", "Authorization": f"Bearer {token}"},
    )
    assert resp.status == 401
    vision = hass.data[DATA_HUB].vision
    now = vision.clock()
    vision.clock = lambda: now + vision.lifetime + 1
    resp = await _post(client, device, token, body)
    assert resp.status == 401
    assert realtime_server.images() == []


async def test_token_ends_with_the_connection(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """A closed channel revokes its vision token; the next connection gets a new one."""
    device, _ = await camera_board(hass, client)
    assert device.mcp.vision is not None
    old = device.mcp.vision["token"]
    vision = hass.data[DATA_HUB].vision
    await device.close_audio_channel()
    # The view revokes the token, then detaches the connection (which tells the device state).
    await wait_until(lambda: vision.live_tokens == 0, device_home(hass, device.mac).state)
    body = b"".join(multipart_parts("q", generated_picture(64, 48)))
    assert (await _post(client, device, old, body)).status == 401
    await device.open_audio_channel()
    await wait_until(
        lambda: device.mcp.vision is not None and device.mcp.vision["token"] != old, device
    )


async def test_oversized_upload_is_refused_unread(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """A Content-Length over the cap gets 413 and the connection closes without the body."""
    device, _ = await camera_board(hass, client)
    assert device.mcp.vision is not None
    url = client.make_url(VISION_PATH)
    reader, writer = await asyncio.open_connection(url.host, url.port)
    writer.write(
        (
            f"POST {VISION_PATH} HTTP/1.1\r\nHost: {url.host}\r\n"
            f"Device-Id: {device.mac}\r\nAuthorization: Bearer {device.mcp.vision['token']}\r\n"
            f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
            f"Content-Length: {MAX_UPLOAD_BYTES * 10}\r\n\r\n"
        ).encode()
    )
    await writer.drain()
    async with asyncio.timeout(3):  # aiohttp would linger 10 s reading a body it refused
        answer = await reader.read()  # to EOF: the server closed without reading the body
    writer.close()
    assert answer.startswith(b"HTTP/1.1 413")


async def test_oversized_chunked_upload_is_cut_off(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """A chunked upload that grows past the cap is refused once it crosses it."""
    camera = HeldCamera()
    device, _ = await camera_board(hass, client, camera)
    assert device.mcp.vision is not None
    sent = 0

    async def endless() -> Any:
        nonlocal sent
        for part in multipart_parts("q", b"")[:2]:
            yield part
        while sent < MAX_UPLOAD_BYTES * 4:
            chunk = b"\xff" * 65536
            sent += len(chunk)
            yield chunk

    async with photo_pending(hass, device, camera):
        try:
            resp = await _post(client, device, device.mcp.vision["token"], endless())
            status = resp.status
        except OSError:  # the server may close while the client still writes
            status = 413
    assert status == 413
    assert sent < MAX_UPLOAD_BYTES * 4
    assert realtime_server.images() == []


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"".join(multipart_parts("q", b"GIF89a not a jpeg")), 400),
        (b"".join(multipart_parts("q", b"\xff\xd8\xff broken")), 400),
        (b"".join(multipart_parts("q", b"")[:1]) + f"--{BOUNDARY}--\r\n".encode(), 400),
        (b"not multipart at all", 400),
    ],
)
async def test_bad_uploads_get_400(
    hass: HomeAssistant,
    client: TestClient,
    realtime_server: RealtimeServer,
    body: bytes,
    status: int,
) -> None:
    """Not a JPEG, a broken JPEG, no file part, a malformed body: 400, nothing sent."""
    camera = HeldCamera()
    device, _ = await camera_board(hass, client, camera)
    assert device.mcp.vision is not None
    async with photo_pending(hass, device, camera):
        resp = await _post(client, device, device.mcp.vision["token"], body)
    assert resp.status == status
    assert realtime_server.images() == []


async def test_profile_turns_the_camera_off(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """A device whose profile has the camera off gets no vision URL (and no token exists)."""
    device = simulator(client, board_type="esp32s3-korvo2-v3")
    Camera().attach(device)
    await pair(hass, device)
    entry = hass.config_entries.async_entries(DOMAIN)[0]
    subentry = next(s for s in entry.subentries.values() if s.unique_id == device.mac)
    hass.config_entries.async_update_subentry(
        entry, subentry, data={**subentry.data, CONF_PROFILE: {CONF_CAMERA: False}}
    )
    await hass.async_block_till_done()
    await device.open_audio_channel()
    state = device_home(hass, device.mac).state
    await wait_until(lambda: any(t.name == TAKE_PHOTO for t in state.tools), state)
    assert device.mcp.vision is None
    assert hass.data[DATA_HUB].vision.live_tokens == 0


async def test_diagnostics_count_pictures_never_hold_them(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """Entry and device diagnostics show how many pictures were sent; no picture, no token."""
    device, _ = await camera_board(hass, client)
    assert "photo is now in the conversation" in await take_photo(hass, device, "What is it?")
    entry = hass.config_entries.async_entries(DOMAIN)[0]
    diagnostics = await async_get_config_entry_diagnostics(hass, entry)
    assert diagnostics["images_sent"] == 1
    assert diagnostics["devices"][0]["photos_sent"] == 1
    text = json.dumps(diagnostics)
    assert "base64" not in text
    assert device.mcp.vision is not None
    assert device.mcp.vision["token"] not in text


async def test_photo_without_a_conversation_gets_503(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """No Realtime session to show the photo to: 503, which fails the device's tool."""
    device, camera = await camera_board(hass, client)
    bridge = bridge_at(hass, device.mac)
    live, bridge.client = bridge.client, None
    try:
        assert await take_photo(hass, device, "Anything?") == "error: Failed to upload photo"
    finally:
        bridge.client = live
    assert camera.uploads[-1]["status"] == 503
    assert realtime_server.images() == []


async def test_device_looks_at_a_home_assistant_camera(
    hass: HomeAssistant,
    cameras: dict[str, Any],
    client: TestClient,
    realtime_server: RealtimeServer,
) -> None:
    """Spoken to a device: look_at_camera's snapshot reaches the device's conversation."""
    entry = hass.config_entries.async_entries(DOMAIN)[0]
    set_settings(hass, entry, **{CONF_LLM_HASS_API: [llm.LLM_API_ASSIST, API_ID]})
    await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    device, _ = await camera_board(hass, client)

    def offered() -> list[str]:
        tools = realtime_server.session.session["tools"]
        return [t["name"] for t in tools if t["name"].endswith(LOOK_AT_CAMERA_TOOL)]

    await wait_until(lambda: len(offered()) == 1, realtime_server)
    realtime_server.script(
        ScriptedResponse(calls=[ScriptedCall(offered()[0], json.dumps({"entity_id": GARAGE}))]),
        ScriptedResponse(text="The garage door is open.", audio=tone(300)),
    )
    await say(device)
    await wait_until(lambda: realtime_server.responses_done >= 2, realtime_server, timeout=10)
    await device.wait_for_message(lambda m: m["type"] == "tts" and m["state"] == "stop")
    assert cameras[GARAGE].snapshots == 1
    assert size_of(realtime_server.images()[0]) == (1024, 768)
    assert device.assistant_lines[-1] == "The garage door is open."
    assert hass.data[DATA_HUB].vision.images_sent[entry.entry_id] == 1


async def test_beta_dialect_gets_no_camera(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """The beta dialect has no input_image content: no vision URL is handed out."""
    entry = hass.config_entries.async_entries(DOMAIN)[0]
    assert image_input_allowed(entry)
    hass.config_entries.async_update_entry(entry, data={**entry.data, "dialect": "beta"})
    assert not image_input_allowed(entry)
