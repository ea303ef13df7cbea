"""Pictures for the model: validate a JPEG (or any picture HA hands us), scale it, re-encode it.

No Home Assistant imports. Every function here is blocking (Pillow decodes and encodes on the
calling thread): Home Assistant code runs them in an executor.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
import io
from typing import Final

from PIL import Image, UnidentifiedImageError

DEFAULT_MAX_SIDE: Final = 1024
"""Long side in pixels the model gets by default (its detail tiles are 512 px squares)."""

MIN_MAX_SIDE: Final = 256
MAX_MAX_SIDE: Final = 2048

JPEG_QUALITY: Final = 85
MAX_PIXELS: Final = 40_000_000
"""Pictures with more pixels than this are refused before they are decoded (a decompression
bomb guard; a 4K camera frame has 8.3 million)."""

BOARD_MAX_SIDE: Final = 2592
BOARD_MAX_PIXELS: Final = 2592 * 1944
"""The largest frame a xiaozhi camera board takes: 5 MP, the full resolution of the OV5647
(`esp_video` boards; the ESP32-P4 ones ship at 800x800, LilyGO T-Display-P4 at 1920x1080) and
above QSXGA 2560x1920, the largest `esp32-camera` frame size (OV5640; the stock configurations
use 240x240 to 800x600). Decoding such a frame costs about 20 MB; the 40 MP guard above would
allow about 300 MB."""


@dataclass(frozen=True, slots=True)
class SourceLimits:
    """What a source's pictures may be, checked from the header before anything is decoded."""

    max_side: int | None = None
    """Longest side in pixels (None: only the pixel count is bounded)."""
    max_pixels: int | None = None
    """Pixels at most (None: `MAX_PIXELS`)."""
    jpeg_only: bool = False


ANY_PICTURE: Final = SourceLimits()
"""Pictures Home Assistant hands us (camera and image entities): any format Pillow reads."""

BOARD_PHOTO: Final = SourceLimits(BOARD_MAX_SIDE, BOARD_MAX_PIXELS, jpeg_only=True)
"""A camera board's upload (`Esp32Camera::Explain`): a JPEG no larger than its sensor takes."""


class ImageError(ValueError):
    """The bytes are not a picture we can use; the message says why."""


@dataclass(frozen=True, slots=True)
class ScaledImage:
    """A re-encoded JPEG ready for the model, and the sizes before and after scaling."""

    jpeg: bytes
    width: int
    height: int
    source_width: int
    source_height: int

    @property
    def data_url(self) -> str:
        """The `image_url` of an `input_image` content part."""
        return "data:image/jpeg;base64," + base64.b64encode(self.jpeg).decode("ascii")


def scale_picture(data: bytes, max_side: int, *, source: SourceLimits = ANY_PICTURE) -> ScaledImage:
    """Decode `data`, shrink it to `max_side` on its long side, and re-encode it as JPEG.

    `Image.open` reads only the header: the format and size are checked against `source`
    before a single pixel is decoded. Re-encoding always happens, so metadata (EXIF, GPS,
    thumbnails) never reaches the model.
    """
    if not data:
        raise ImageError("the picture is empty")
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = _check(image, source)
            # JPEG decoders can skip to a reduced size (1/2, 1/4, 1/8): far less memory and
            # work for a big frame. Ask for the size it ends at, so both sides allow it.
            scale = min(1.0, max_side / max(width, height))
            image.draft("RGB", (max(1, int(width * scale)), max(1, int(height * scale))))
            picture = image.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as err:
        if isinstance(err, ImageError):
            raise
        raise ImageError("not a readable picture") from err
    # Bilinear with Pillow's antialiasing support: half the CPU of Lanczos, and the model
    # cannot tell the difference at these sizes (benchmarks/bench_vision.py).
    picture.thumbnail((max_side, max_side), Image.Resampling.BILINEAR)
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=JPEG_QUALITY, optimize=False)
    return ScaledImage(out.getvalue(), picture.width, picture.height, width, height)


def _check(image: Image.Image, source: SourceLimits) -> tuple[int, int]:
    """The picture's size; refuse the wrong format or a size the source never has."""
    if source.jpeg_only and image.format != "JPEG":
        raise ImageError(f"expected a JPEG, got {image.format or 'unknown data'}")
    width, height = image.size
    max_pixels = MAX_PIXELS if source.max_pixels is None else source.max_pixels
    too_long = source.max_side is not None and max(width, height) > source.max_side
    if width < 1 or height < 1 or width * height > max_pixels or too_long:
        raise ImageError(f"unsupported picture size {width}x{height}")
    return width, height
