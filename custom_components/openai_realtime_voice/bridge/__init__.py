"""Speech to speech for xiaozhi devices: the bridge between a device and its Realtime session."""

from __future__ import annotations

from .actions import Actions
from .context import BridgeContext, Engine
from .core import BridgeBusyError, BridgePath, BridgePhase, SpeechBridge
from .downlink import DeviceOutput, Downlink
from .errors import async_device_action
from .media import MediaError, async_transcode, async_tts_to_pcm
from .pipeline import PipelineEngine
from .realtime_engine import RealtimeEngine
from .sentences import SentenceSplitter
from .serve import async_serve_device, serving
from .speaker import Speaker
from .tools import DEVICE_PREFIX, DeviceToolsAPI
from .uplink import BATCH_MS, Uplink, UplinkQueue

__all__ = [
    "BATCH_MS",
    "DEVICE_PREFIX",
    "Actions",
    "BridgeBusyError",
    "BridgeContext",
    "BridgePath",
    "BridgePhase",
    "DeviceOutput",
    "DeviceToolsAPI",
    "Downlink",
    "Engine",
    "MediaError",
    "PipelineEngine",
    "RealtimeEngine",
    "SentenceSplitter",
    "Speaker",
    "SpeechBridge",
    "Uplink",
    "UplinkQueue",
    "async_device_action",
    "async_serve_device",
    "async_transcode",
    "async_tts_to_pcm",
    "serving",
]
