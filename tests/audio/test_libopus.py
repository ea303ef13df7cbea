"""Tests for finding libopus and loading opuslib-next against it, on the real library."""

from __future__ import annotations

import ctypes.util
import sys

import pytest

from custom_components.openai_realtime_voice.audio import (
    OpusDecoder,
    OpusNotFoundError,
    find_libopus,
    libopus,
    load_opuslib,
)
from custom_components.openai_realtime_voice.audio.libopus import (
    LINUX_CANDIDATES,
    MACOS_CANDIDATES,
    candidates,
    platform_hint,
)


@pytest.fixture
def no_find_library(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make `ctypes.util.find_library` fail, as it does on musl (Alpine)."""
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: None)


@pytest.fixture
def fresh_opuslib(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forget the loaded opuslib-next for one test; the original modules come back afterwards."""
    monkeypatch.setattr(libopus, "_module", None)
    for name in [m for m in sys.modules if m.startswith("opuslib_next")]:
        monkeypatch.delitem(sys.modules, name)


@pytest.mark.usefixtures("no_find_library")
def test_fallback_finds_real_library_when_find_library_fails() -> None:
    """With find_library failing, a known soname or path still loads the real libopus."""
    found = find_libopus()
    assert found in LINUX_CANDIDATES
    assert ctypes.CDLL(found).opus_get_version_string


def test_find_library_answer_is_preferred() -> None:
    """When find_library works its answer is used first."""
    assert find_libopus() == ctypes.util.find_library("opus")


def test_extra_paths_come_first() -> None:
    """A configured path is tried before anything else."""
    real = find_libopus()
    tried: list[str] = []

    def loadable(name: str) -> bool:
        tried.append(name)
        return name == real

    assert find_libopus(["/nonexistent/libopus.so.0", real], loadable=loadable) == real
    assert tried[:2] == ["/nonexistent/libopus.so.0", real]


@pytest.mark.usefixtures("no_find_library")
def test_macos_homebrew_order() -> None:
    """On macOS, Homebrew's Apple-silicon path comes before the Intel one."""
    tried: list[str] = []

    def loadable(name: str) -> bool:
        tried.append(name)
        return name == "/usr/local/lib/libopus.0.dylib"

    assert find_libopus(system="Darwin", loadable=loadable) == "/usr/local/lib/libopus.0.dylib"
    assert tried[0] == "/opt/homebrew/lib/libopus.dylib"


@pytest.mark.usefixtures("no_find_library")
@pytest.mark.parametrize(
    ("system", "hint", "names"),
    [
        ("Darwin", "brew install opus", MACOS_CANDIDATES),
        ("Linux", None, LINUX_CANDIDATES),
        ("Windows", "install the Opus codec library (libopus)", candidates("Windows")),
    ],
)
def test_not_found_raises_typed_error_with_hint(
    system: str, hint: str | None, names: tuple[str, ...]
) -> None:
    """When nothing loads, OpusNotFoundError names the install command and what was tried."""
    with pytest.raises(OpusNotFoundError) as exc:
        find_libopus(system=system, loadable=lambda name: False)
    assert exc.value.tried == names
    assert exc.value.platform_hint == (hint or platform_hint("Linux"))
    assert exc.value.platform_hint in str(exc.value)


def test_platform_hints() -> None:
    """Alpine, Debian/Ubuntu and macOS each get their package manager's command."""
    assert platform_hint("Linux", alpine=True) == "apk add opus"
    assert platform_hint("Linux", alpine=False) == "apt install libopus0"
    assert platform_hint("Darwin") == "brew install opus"
    assert platform_hint() in {"apk add opus", "apt install libopus0", "brew install opus"}


def test_loadable_checks_symbols() -> None:
    """Only a library exporting the Opus API counts."""
    assert libopus._loadable(find_libopus())
    assert not libopus._loadable("/nonexistent/libopus.so.0")
    assert not libopus._loadable("libc.so.6")


@pytest.mark.usefixtures("fresh_opuslib", "no_find_library")
def test_load_opuslib_without_find_library() -> None:
    """opuslib-next imports against the library we found even though find_library fails."""
    patched = ctypes.util.find_library
    module = load_opuslib()
    assert ctypes.util.find_library is patched  # the import-time answer was removed again
    assert "opuslib_next" in sys.modules
    assert load_opuslib() is module
    decoder = OpusDecoder(24000, 60)
    assert len(decoder.decode(b"")) == 2880


@pytest.mark.usefixtures("fresh_opuslib")
def test_load_opuslib_reuses_an_imported_module() -> None:
    """An opuslib-next imported elsewhere first is reused."""
    import opuslib_next

    assert load_opuslib() is opuslib_next


@pytest.mark.usefixtures("fresh_opuslib")
def test_load_opuslib_wrong_library(monkeypatch: pytest.MonkeyPatch) -> None:
    """A library without the Opus API makes the import fail: typed error, no half import."""
    monkeypatch.setattr(libopus, "find_libopus", lambda extra=(): "libc.so.6")
    with pytest.raises(OpusNotFoundError) as exc:
        load_opuslib()
    assert exc.value.tried == ("libc.so.6",)
    assert not [m for m in sys.modules if m.startswith("opuslib_next")]
    assert libopus._module is None
