"""The xiaozhi device endpoint on Home Assistant's HTTP server: OTA, pairing, the audio channel.

- `ota.py`: the boot-time OTA check and activation polls (pairing codes, token hand-over);
- `pairing.py`: `DevicePairing` (pending devices, codes, wrong-code limits, token hand-over);
- `hub.py`: the hass-wide `DeviceHub` (paired devices, their live state and connections);
- `logins.py`: which refused requests count as failed logins in Home Assistant;
- `view.py`: the authenticated WebSocket upgrade;
- `connection.py`: one live channel, a transport over `xiaozhi/` that hands typed events to its
  listeners and to the `DeviceLink` plugged in from above (the speech bridge).

Nothing here imports the bridge or the Home Assistant platforms.
"""

from __future__ import annotations

from .connection import MCP_TIMEOUT, VOLUME_TOOL, DeviceConnection, DeviceLink
from .hub import DATA_HUB, DeviceHub, DeviceState
from .ota import ActivateView, OtaView, refuse_unread
from .pairing import PairingResult, bearer_token, device_subentries, normalize_mac
from .view import DeviceWebSocketView

__all__ = [
    "DATA_HUB",
    "MCP_TIMEOUT",
    "VOLUME_TOOL",
    "ActivateView",
    "DeviceConnection",
    "DeviceHub",
    "DeviceLink",
    "DeviceState",
    "DeviceWebSocketView",
    "OtaView",
    "PairingResult",
    "bearer_token",
    "device_subentries",
    "normalize_mac",
    "refuse_unread",
]
