"""Still cameras for the camera tool and vision tests."""

from __future__ import annotations

from homeassistant.components.camera import Camera

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
