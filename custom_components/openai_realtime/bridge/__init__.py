"""Speech to speech for xiaozhi devices: the bridge between a device and its Realtime session."""

from __future__ import annotations

from .core import BridgeBusyError, BridgePath, BridgePhase, SpeechBridge, async_link_device
from .downlink import DeviceLink, Downlink
from .errors import async_device_action
from .media import MediaError, async_transcode, async_tts_to_pcm
from .sentences import SentenceSplitter
from .tools import TOOL_TIMEOUT, BridgeTools, ToolRun
from .uplink import BATCH_MS, Uplink

__all__ = [
    "BATCH_MS",
    "TOOL_TIMEOUT",
    "BridgeBusyError",
    "BridgePath",
    "BridgePhase",
    "BridgeTools",
    "DeviceLink",
    "Downlink",
    "MediaError",
    "SentenceSplitter",
    "SpeechBridge",
    "ToolRun",
    "Uplink",
    "async_device_action",
    "async_link_device",
    "async_transcode",
    "async_tts_to_pcm",
]
