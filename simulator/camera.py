"""A camera board for the simulator: `self.camera.take_photo` and the firmware's photo upload.

Modelled on the firmware's `main/mcp_server.cc` (the tool, offered when the board has a camera)
and `Esp32Camera::Explain` (`main/boards/common/esp32_camera.cc`): the vision URL and token come
from MCP `initialize` (`capabilities.vision`); without a URL the tool fails with "Image explain
URL or token is not set". The upload is a chunked `multipart/form-data` POST with the boundary
`----ESP32_CAMERA_BOUNDARY`, headers `Device-Id`, `Client-Id` and `Authorization: Bearer <token>`
(only when a token was given), written as the firmware writes it: the `question` part, the `file`
part's header, the JPEG in 512-byte chunks, the closing boundary. Any status but 200 fails the
tool; the body is the tool's result, verbatim.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
import io
from pathlib import Path
from typing import Any, Final

import aiohttp
import numpy as np
from PIL import Image

from .device import DeviceSimulator
from .errors import SimulatorError
from .mcp import Tool

TAKE_PHOTO: Final = "self.camera.take_photo"
BOUNDARY: Final = "----ESP32_CAMERA_BOUNDARY"
JPEG_CHUNK: Final = 512
"""The firmware's JPEG encoder hands the uploader chunks of about this size."""


def generated_picture(width: int = 640, height: int = 480) -> bytes:
    """A JPEG test picture: a colour gradient with a white square."""
    xs = np.linspace(0, 255, width, dtype=np.uint8)[np.newaxis, :].repeat(height, axis=0)
    ys = np.linspace(0, 255, height, dtype=np.uint8)[:, np.newaxis].repeat(width, axis=1)
    pixels = np.dstack((xs, ys, np.full((height, width), 128, dtype=np.uint8)))
    pixels[height // 3 : height // 2, width // 3 : width // 2] = 255
    out = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(out, "JPEG", quality=80)
    return out.getvalue()


def multipart_parts(question: str, jpeg: bytes) -> list[bytes]:
    """The upload body in the firmware's write order (each item is one `http->Write`)."""
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="question"\r\n\r\n{question}\r\n'
    ).encode()
    file_header = (
        f"--{BOUNDARY}\r\n"
        'Content-Disposition: form-data; name="file"; filename="camera.jpg"\r\n'
        "Content-Type: image/jpeg\r\n"
        "\r\n"
    ).encode()
    chunks = [jpeg[i : i + JPEG_CHUNK] for i in range(0, len(jpeg), JPEG_CHUNK)]
    return [head, file_header, *chunks, f"\r\n--{BOUNDARY}--\r\n".encode()]


@dataclass
class Camera:
    """The board's camera: what it "sees" (a JPEG file or a generated picture)."""

    picture: bytes = b""
    uploads: list[dict[str, Any]] = field(default_factory=list)
    """Each upload's status and response body, newest last."""

    @classmethod
    def from_file(cls, path: Path) -> Camera:
        """A camera that always sees this JPEG file."""
        return cls(path.read_bytes())

    def attach(self, device: DeviceSimulator) -> None:
        """Offer `self.camera.take_photo` among the device's tools (before user-only ones)."""
        if not self.picture:
            self.picture = generated_picture()
        tool = Tool(
            TAKE_PHOTO,
            "Take a photo with the camera and explain it. Use this tool when the user asks "
            "you to look at or see something.\nArgs:\n  `question`: The question that you "
            "want to ask about the photo.\nReturn:\n  A JSON object that provides the photo "
            "information.",
            {"question": {"type": "string"}},
            lambda args: self.explain(device, str(args["question"])),
        )
        tools = device.mcp.tools
        index = next((i for i, t in enumerate(tools) if t.user_only), len(tools))
        tools.insert(index, tool)

    async def explain(self, device: DeviceSimulator, question: str) -> str:
        """`Esp32Camera::Explain`: upload the photo and return the server's answer."""
        vision = device.mcp.vision or {}
        url = vision.get("url")
        token = vision.get("token")
        if not isinstance(url, str) or not url:
            raise SimulatorError("Image explain URL or token is not set")
        headers = {
            "Device-Id": device.mac,
            "Client-Id": device.client_id,
            "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
        }
        if isinstance(token, str) and token:
            headers["Authorization"] = f"Bearer {token}"
        parts = multipart_parts(question, self.picture)

        async def body() -> AsyncIterator[bytes]:
            for part in parts:
                yield part

        session = await device.http()  # the device's own HTTP client
        try:
            async with session.post(url, data=body(), headers=headers, chunked=True) as resp:
                text = await resp.text()
                self.uploads.append({"status": resp.status, "body": text})
                if resp.status != 200:
                    raise SimulatorError("Failed to upload photo")
        except (aiohttp.ClientError, TimeoutError) as err:
            raise SimulatorError("Failed to connect to explain URL") from err
        return text
