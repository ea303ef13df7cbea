"""What the speech-to-text and text-to-speech entities share: their device and turn sharing."""

from __future__ import annotations

from typing import TYPE_CHECKING, override

from homeassistant.components import conversation
from homeassistant.components.sensor import SensorDeviceClass, SensorEntity, SensorStateClass
from homeassistant.config_entries import ConfigEntry
from homeassistant.const import EntityCategory, UnitOfTime
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.device_registry import DeviceEntryType, DeviceInfo
from homeassistant.helpers.entity import Entity

from .const import CONF_MODEL, DOMAIN

if TYPE_CHECKING:
    from . import OpenAIRealtimeData

STT_KEY = "stt"
TTS_KEY = "tts"
LATENCY_KEY = "speech_latency"


class RealtimeSpeechEntity(Entity):
    """A speech entity of an entry, on the entry's service device."""

    _attr_has_entity_name = True

    def __init__(self, entry: ConfigEntry, key: str) -> None:
        """Name the entity after its kind; it belongs to the entry's service device."""
        self.entry = entry
        self._attr_unique_id = f"{entry.entry_id}_{key}"
        self._attr_translation_key = key
        self._attr_device_info = DeviceInfo(
            identifiers={(DOMAIN, entry.entry_id)},
            name=entry.title,
            manufacturer="OpenAI",
            model=entry.options.get(CONF_MODEL),
            entry_type=DeviceEntryType.SERVICE,
        )

    @property
    def data(self) -> OpenAIRealtimeData:
        """The loaded entry's runtime data."""
        data: OpenAIRealtimeData = self.entry.runtime_data
        return data


def shares_turns(hass: HomeAssistant, entry: ConfigEntry) -> bool:
    """Whether every Assist pipeline with this entry's speech-to-text also uses its agent and
    its text-to-speech: then the three share one Realtime turn.

    A pipeline that pairs it with another agent or voice gets plain transcription: an answer
    started for a turn another agent takes would be paid for and withdrawn every time.
    """
    if "assist_pipeline" not in hass.config.components:
        return False
    from homeassistant.components import assist_pipeline

    registry = er.async_get(hass)
    entry_id = entry.entry_id
    stt = registry.async_get_entity_id("stt", DOMAIN, f"{entry_id}_{STT_KEY}")
    tts = registry.async_get_entity_id("tts", DOMAIN, f"{entry_id}_{TTS_KEY}")
    agent = registry.async_get_entity_id(conversation.DOMAIN, DOMAIN, entry_id)
    using = [p for p in assist_pipeline.async_get_pipelines(hass) if p.stt_engine == stt]
    return bool(using) and all(
        p.conversation_engine == agent and p.tts_engine == tts for p in using
    )


class SpeechLatencySensor(RealtimeSpeechEntity, SensorEntity):
    """How long the last shared turn took to answer: from the end of the speech Home Assistant
    handed over to the first answer audio handed back (its conversion for the satellite, the
    network and the playback buffer not included)."""

    _attr_should_poll = False
    _attr_device_class = SensorDeviceClass.DURATION
    _attr_state_class = SensorStateClass.MEASUREMENT
    _attr_native_unit_of_measurement = UnitOfTime.MILLISECONDS
    _attr_suggested_display_precision = 0
    _attr_entity_category = EntityCategory.DIAGNOSTIC

    @override
    async def async_added_to_hass(self) -> None:
        """Follow the entry's shared turns."""
        await super().async_added_to_hass()
        self.async_on_remove(self.data.shared_turns.async_add_listener(self.async_write_ha_state))

    @property
    @override
    def native_value(self) -> float | None:
        """The last shared turn's latency in milliseconds; unknown before the first."""
        return self.data.shared_turns.last_latency_ms
