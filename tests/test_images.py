"""Picture scaling (images.py) and the vision hub's tokens and parked pictures."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image
import pytest

from custom_components.openai_realtime_voice.images import (
    BOARD_PHOTO,
    MAX_PIXELS,
    ImageError,
    scale_picture,
)
from custom_components.openai_realtime_voice.vision import PARK_LIFETIME, UploadRefused, VisionHub
from simulator.camera import TAKE_PHOTO, generated_picture
from simulator.cli import Run, _parser


def _png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGBA", (width, height), (10, 20, 30, 128)).save(out, "PNG")
    return out.getvalue()


def test_scaling_keeps_the_aspect_and_never_enlarges() -> None:
    """The long side shrinks to the limit; small pictures keep their size."""
    big = scale_picture(generated_picture(1600, 900), 1024)
    assert (big.width, big.height) == (1024, 576)
    assert (big.source_width, big.source_height) == (1600, 900)
    small = scale_picture(generated_picture(320, 240), 1024)
    assert (small.width, small.height) == (320, 240)
    assert small.data_url.startswith("data:image/jpeg;base64,/9j/")


def test_metadata_is_dropped() -> None:
    """Re-encoding drops EXIF (a camera's location, its serial number)."""
    source = Image.open(io.BytesIO(generated_picture(64, 48)))
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"  # Make
    out = io.BytesIO()
    source.save(out, "JPEG", exif=exif)
    assert b"SecretCam" in out.getvalue()
    assert b"SecretCam" not in scale_picture(out.getvalue(), 1024).jpeg


def test_other_formats_are_converted_unless_jpeg_is_required() -> None:
    """A PNG snapshot (some cameras) becomes a JPEG; a camera board must send a JPEG."""
    converted = scale_picture(_png(100, 50), 1024)
    with Image.open(io.BytesIO(converted.jpeg)) as image:
        assert image.format == "JPEG"
        assert image.size == (100, 50)
    with pytest.raises(ImageError, match="expected a JPEG, got PNG"):
        scale_picture(_png(100, 50), 1024, source=BOARD_PHOTO)


@pytest.mark.parametrize(
    "data", [b"", b"not a picture", b"\xff\xd8\xff\xe0 truncated", generated_picture(64, 48)[:200]]
)
def test_broken_pictures_are_refused(data: bytes) -> None:
    """Empty, unknown or truncated data raises ImageError, never a Pillow exception."""
    with pytest.raises(ImageError):
        scale_picture(data, 1024)


def test_absurd_sizes_are_refused_before_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    """More pixels than MAX_PIXELS: refused from the header alone."""
    monkeypatch.setattr("custom_components.openai_realtime_voice.images.MAX_PIXELS", 64 * 48 - 1)
    with pytest.raises(ImageError, match="unsupported picture size 64x48"):
        scale_picture(generated_picture(64, 48), 1024)
    assert MAX_PIXELS > 4000 * 3000


@pytest.mark.parametrize(("width", "height"), [(2593, 100), (100, 2593), (2592, 1945)])
def test_sizes_no_camera_board_takes_are_refused(width: int, height: int) -> None:
    """A board photo beyond the largest sensor frame (2592x1944, either way up) is refused."""
    with pytest.raises(ImageError, match=f"unsupported picture size {width}x{height}"):
        scale_picture(generated_picture(width, height), 1024, source=BOARD_PHOTO)
    scale_picture(generated_picture(width, height), 1024)  # fine from a Home Assistant camera


def test_upload_claims_follow_the_pending_calls() -> None:
    """One upload per pending call, one at a time; a new connection starts afresh."""
    hub = VisionHub()
    mac = "aa:bb:cc:dd:ee:01"
    hub.issue(mac)
    assert hub.claim_upload(mac, []) is UploadRefused.NOT_ASKED
    assert hub.claim_upload(mac, [3]) == 3
    assert hub.claim_upload(mac, [3, 4]) is UploadRefused.BUSY
    hub.release_upload(mac)
    assert hub.claim_upload(mac, [3]) is UploadRefused.NOT_ASKED
    assert hub.claim_upload(mac, [3, 4]) == 4
    hub.release_upload(mac)
    assert hub.claim_upload("aa:bb:cc:dd:ee:02", [3]) == 3  # another device's own calls
    hub.issue(mac)  # a new connection: its MCP ids count from 1 again
    assert hub.claim_upload(mac, [3]) == 3


def test_tokens_are_per_device_and_replaced() -> None:
    """A new token ends the old one; another device's MAC cannot use it."""
    now = [0.0]
    hub = VisionHub(clock=lambda: now[0])
    first = hub.issue("aa:bb:cc:dd:ee:01")
    assert hub.check("aa:bb:cc:dd:ee:01", first)
    assert not hub.check("aa:bb:cc:dd:ee:02", first)
    assert not hub.check(None, first)
    assert not hub.check("aa:bb:cc:dd:ee:01", None)
    second = hub.issue("aa:bb:cc:dd:ee:01")
    assert second != first
    assert not hub.check("aa:bb:cc:dd:ee:01", first)
    assert hub.live_tokens == 1
    now[0] = hub.lifetime
    assert not hub.check("aa:bb:cc:dd:ee:01", second)
    assert hub.live_tokens == 0
    hub.revoke("aa:bb:cc:dd:ee:01")  # nothing left to revoke


def test_a_replaced_connection_leaves_its_successors_token_alone() -> None:
    """The old connection of a device that reconnected ends after the new one got its token:
    revoking the old token keeps the new one valid; revoking the new one ends it."""
    hub = VisionHub()
    old = hub.issue("aa:bb:cc:dd:ee:01")
    new = hub.issue("aa:bb:cc:dd:ee:01")
    hub.revoke("aa:bb:cc:dd:ee:01", old)
    assert hub.check("aa:bb:cc:dd:ee:01", new)
    assert hub.live_tokens == 1
    hub.revoke("aa:bb:cc:dd:ee:01", new)
    assert not hub.check("aa:bb:cc:dd:ee:01", new)
    assert hub.live_tokens == 0


def test_parked_pictures_are_collected_once_and_expire() -> None:
    """A tool's picture is handed out once; one nobody collects is dropped later."""
    now = [0.0]
    hub = VisionHub(clock=lambda: now[0])
    picture = scale_picture(generated_picture(64, 48), 1024)
    hub.park("call_1", picture)
    assert hub.collect("call_1") is picture
    assert hub.collect("call_1") is None
    hub.park("call_2", picture)
    now[0] = PARK_LIFETIME + 1
    hub.park("call_3", picture)
    assert hub.parked == 1
    assert hub.collect("call_2") is None


def test_simulator_cli_camera_board(tmp_path: Path) -> None:
    """`--camera` makes a camera board seeing a generated picture, `--camera FILE` that JPEG."""
    picture = tmp_path / "door.jpg"
    picture.write_bytes(generated_picture(320, 240))
    for extra, expected in (([], None), (["--camera"], b""), (["--camera", str(picture)], None)):
        args = _parser().parse_args(["--state", str(tmp_path / "state.json"), *extra])
        run = Run(args, lambda _: None)
        tools = [tool.name for tool in run.device.mcp.tools]
        if not extra:
            assert TAKE_PHOTO not in tools
            continue
        assert TAKE_PHOTO in tools
        assert run.camera is not None
        if expected is None:
            assert run.camera.picture == picture.read_bytes()
        else:
            assert Image.open(io.BytesIO(run.camera.picture)).size == (640, 480)
