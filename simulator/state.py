"""The simulator's state file: the device identity, its tokens, and Home Assistant tokens.

Shared by `scripts/simulate` (which pairs and keeps the device token) and `scripts/develop`
(which keeps a Home Assistant token for the development owner, so the simulator can show the
tool calls Home Assistant ran and check entity states).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
import random
from typing import Any
import urllib.parse
import uuid

DEFAULT_STATE = (
    Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    / "openai_realtime_voice"
    / "simulator.json"
)


def new_mac() -> str:
    """A random locally administered MAC address."""
    octets = [0x02, *(random.randrange(256) for _ in range(5))]
    return ":".join(f"{o:02x}" for o in octets)


def load_state(path: Path, mac: str | None) -> dict[str, Any]:
    """The saved identity (or a new one); a different `--mac` starts a fresh identity."""
    try:
        state = json.loads(path.read_text())
    except OSError, ValueError:
        state = {}
    if not isinstance(state, dict):
        state = {}
    if mac and state.get("mac") != mac.lower():
        state = {"home_assistant": state.get("home_assistant", {})}
    if not state.get("mac"):
        state["mac"] = (mac or new_mac()).lower()
    state.setdefault("client_id", str(uuid.uuid5(uuid.NAMESPACE_URL, state["mac"])))
    state.setdefault("websocket", {})
    if not isinstance(state.get("home_assistant"), dict):
        state["home_assistant"] = {}
    return state


def new_identity(state: dict[str, Any]) -> dict[str, Any]:
    """A fresh device identity (new MAC, no device tokens), keeping Home Assistant tokens."""
    mac = new_mac()
    return {
        "mac": mac,
        "client_id": str(uuid.uuid5(uuid.NAMESPACE_URL, mac)),
        "websocket": {},
        "home_assistant": state.get("home_assistant", {}),
    }


def save_state(path: Path, state: dict[str, Any]) -> None:
    """Write the state file (owner-only: it holds tokens)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(state, indent=2))
    path.chmod(0o600)


def base_url(url: str) -> str:
    """`scheme://host:port` of a URL (the Home Assistant an OTA URL belongs to)."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
