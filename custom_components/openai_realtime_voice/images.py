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


def scale_picture(data: bytes, max_side: int, *, jpeg_only: bool = False) -> ScaledImage:
    """Decode `data`, shrink it to `max_side` on its long side, and re-encode it as JPEG.

    Re-encoding always happens, so metadata (EXIF, GPS, thumbnails) never reaches the model.
    `jpeg_only` refuses anything but a JPEG (the camera boards' upload format).
    """
    if not data:
        raise ImageError("the picture is empty")
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = _check(image, jpeg_only)
            # JPEG decoders can skip to a reduced size: far less work for a big frame.
            image.draft("RGB", (max_side, max_side))
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


def _check(image: Image.Image, jpeg_only: bool) -> tuple[int, int]:
    """The picture's size; refuse the wrong format or an absurd size before decoding."""
    if jpeg_only and image.format != "JPEG":
        raise ImageError(f"expected a JPEG, got {image.format or 'unknown data'}")
    width, height = image.size
    if width < 1 or height < 1 or width * height > MAX_PIXELS:
        raise ImageError(f"unsupported picture size {width}x{height}")
    return width, height
