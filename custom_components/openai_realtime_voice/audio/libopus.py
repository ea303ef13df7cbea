"""Find libopus on Debian/Ubuntu, Alpine (musl) and macOS, then import opuslib-next against it.

opuslib-next resolves the library once, at import, through `ctypes.util.find_library("opus")`
and raises a bare `Exception` when that fails, which it always does on musl. We locate and
`dlopen` libopus ourselves first, then import opuslib-next while `find_library` is wrapped so
that it answers "opus" with the path we proved loadable (every other name is passed through).
The wrapper is removed as soon as the import returns, so no global state is left behind.

Loading a shared library blocks: call `load_opuslib()` once from an executor at setup.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
import contextlib
import ctypes
import ctypes.util
import importlib
import logging
import os
import platform
import sys
import threading
from types import ModuleType

from .errors import OpusNotFoundError

_LOGGER = logging.getLogger(__name__)

LINUX_CANDIDATES: tuple[str, ...] = (
    "libopus.so.0",
    "/usr/lib/libopus.so.0",
    "/usr/local/lib/libopus.so.0",
    "/lib/libopus.so.0",
    "/usr/lib/x86_64-linux-gnu/libopus.so.0",
    "/lib/x86_64-linux-gnu/libopus.so.0",
    "/usr/lib/aarch64-linux-gnu/libopus.so.0",
    "/lib/aarch64-linux-gnu/libopus.so.0",
    "/usr/lib/arm-linux-gnueabihf/libopus.so.0",
    "/usr/lib64/libopus.so.0",
    "libopus.so",
)
"""Sonames and paths tried on Linux after `find_library`; Alpine keeps it in /usr/lib."""

MACOS_CANDIDATES: tuple[str, ...] = (
    "/opt/homebrew/lib/libopus.dylib",
    "/opt/homebrew/lib/libopus.0.dylib",
    "/usr/local/lib/libopus.0.dylib",
    "/usr/local/lib/libopus.dylib",
    "/opt/local/lib/libopus.0.dylib",
    "libopus.0.dylib",
)
"""Homebrew (Apple silicon and Intel) and MacPorts locations tried on macOS."""

WINDOWS_CANDIDATES: tuple[str, ...] = ("opus.dll", "libopus-0.dll")
"""DLL names tried on Windows (development machines only)."""

_lock = threading.Lock()
_module: ModuleType | None = None


def platform_hint(system: str | None = None, alpine: bool | None = None) -> str:
    """Return the command that installs libopus on this platform."""
    system = system or platform.system()
    if system == "Darwin":
        return "brew install opus"
    if system == "Linux":
        if alpine is None:
            alpine = os.path.exists("/etc/alpine-release")
        return "apk add opus" if alpine else "apt install libopus0"
    return "install the Opus codec library (libopus)"


def candidates(system: str | None = None) -> tuple[str, ...]:
    """Return the names and paths tried after `find_library`, most likely first."""
    system = system or platform.system()
    if system == "Darwin":
        return MACOS_CANDIDATES
    if system == "Windows":
        return WINDOWS_CANDIDATES
    return LINUX_CANDIDATES


def _loadable(name: str) -> bool:
    """Tell whether `name` dlopens and really is libopus."""
    try:
        lib = ctypes.CDLL(name)
    except OSError:
        return False
    return hasattr(lib, "opus_decoder_create") and hasattr(lib, "opus_encoder_create")


def find_libopus(
    extra: Iterable[str] = (),
    *,
    system: str | None = None,
    loadable: Callable[[str], bool] = _loadable,
) -> str:
    """Return a name or path from which libopus loads; raise `OpusNotFoundError` if none does.

    Order: `extra` (e.g. a user setting), `ctypes.util.find_library("opus")`, then the
    platform's known sonames and paths.
    """
    tried: list[str] = []
    found: str | None = ctypes.util.find_library("opus")
    names: list[str] = [*extra, *([found] if found else []), *candidates(system)]
    for name in names:
        if name in tried:
            continue
        tried.append(name)
        if loadable(name):
            _LOGGER.debug("Using libopus from %s", name)
            return name
    hint = platform_hint(system)
    raise OpusNotFoundError(
        f"libopus (the Opus codec) was not found; install it with `{hint}`",
        platform_hint=hint,
        tried=tuple(tried),
    )


@contextlib.contextmanager
def _find_library_answers_opus(path: str) -> Iterator[None]:
    """Make `ctypes.util.find_library("opus")` return `path` inside the block only."""
    original = ctypes.util.find_library

    def find_library(name: str) -> str | None:
        return path if name == "opus" else original(name)

    ctypes.util.find_library = find_library
    try:
        yield
    finally:
        ctypes.util.find_library = original


def load_opuslib(extra: Iterable[str] = ()) -> ModuleType:
    """Return the `opuslib_next` module, loaded against a libopus found by `find_libopus`.

    Cached after the first success; raises `OpusNotFoundError` when libopus cannot be loaded.
    """
    global _module  # noqa: PLW0603 - one process-wide handle, like the library itself
    with _lock:
        if _module is not None:
            return _module
        if (loaded := sys.modules.get("opuslib_next")) is not None:
            _module = loaded
            return loaded
        path = find_libopus(extra)
        try:
            with _find_library_answers_opus(path):
                module = importlib.import_module("opuslib_next")
        except Exception as err:  # opuslib-next raises a bare Exception on failure
            for name in [m for m in sys.modules if m.startswith("opuslib_next")]:
                del sys.modules[name]
            hint = platform_hint()
            raise OpusNotFoundError(
                f"opuslib-next could not load libopus from {path}: {err}",
                platform_hint=hint,
                tried=(path,),
            ) from err
        _module = module
        return module
