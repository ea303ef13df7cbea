"""Which assist satellite entity stands for each paired device.

The satellite platform sits above the bridge: its entity registers itself here while it is
added, and the Assist pipeline engine and the chat log record look it up by MAC. They only
need what `PipelineSatellite` names, so this module imports nothing of the platform.
"""

from __future__ import annotations

from collections.abc import AsyncIterable
from typing import Protocol

from homeassistant.components.assist_pipeline.models import PipelineStage
from homeassistant.core import CALLBACK_TYPE, Context, callback
from homeassistant.util.hass_dict import HassKey

from ..const import DOMAIN


class PipelineSatellite(Protocol):
    """What the Assist pipeline engine needs from a device's satellite entity."""

    @property
    def entity_id(self) -> str:
        """The entity's id (the agent id of the device conversation's chat log)."""

    async def async_accept_pipeline_from_satellite(
        self,
        audio_stream: AsyncIterable[bytes],
        start_stage: PipelineStage = PipelineStage.STT,
        end_stage: PipelineStage = PipelineStage.TTS,
        wake_word_phrase: str | None = None,
        *,
        context: Context | None = None,
    ) -> None:
        """Run an Assist pipeline on the device's audio (Home Assistant's satellite entity)."""

    def tts_response_finished(self) -> None:
        """The device has played the pipeline's spoken answer."""


class SatelliteRegistry:
    """The satellite entity of each paired device, by MAC, while it is added to Home Assistant."""

    def __init__(self) -> None:
        """Start empty."""
        self._satellites: dict[str, PipelineSatellite] = {}

    def satellite(self, mac: str) -> PipelineSatellite | None:
        """The device's satellite entity, if one is added."""
        return self._satellites.get(mac)

    @callback
    def async_register(self, mac: str, satellite: PipelineSatellite) -> CALLBACK_TYPE:
        """Make `satellite` the device's entity; returns the remover.

        The remover forgets only this entity: one that replaced it stays registered.
        """
        self._satellites[mac] = satellite

        @callback
        def remove() -> None:
            if self._satellites.get(mac) is satellite:
                del self._satellites[mac]

        return remove


DATA_SATELLITES: HassKey[SatelliteRegistry] = HassKey(f"{DOMAIN}_satellites")
