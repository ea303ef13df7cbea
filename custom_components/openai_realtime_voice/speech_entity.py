"""What the speech entities share: their devices, their subentries and whether turns are shared."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, override

from homeassistant.components.assist_pipeline import PipelineEventType
from homeassistant.components.assist_pipeline.pipeline import async_get_pipeline
from homeassistant.components.sensor import SensorDeviceClass, SensorEntity, SensorStateClass
from homeassistant.config_entries import (
    SIGNAL_CONFIG_ENTRY_CHANGED,
    ConfigEntry,
    ConfigEntryChange,
    ConfigSubentry,
)
from homeassistant.const import EntityCategory, UnitOfTime
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.device_registry import DeviceEntryType, DeviceInfo
from homeassistant.helpers.dispatcher import async_dispatcher_connect
from homeassistant.helpers.entity import Entity
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .const import CONF_TRANSCRIPTION_MODEL, DOMAIN, SUBENTRY_CONVERSATION
from .models import OpenAIRealtimeData
from .pipeline_shim import keep_out_of_tts_cache, pipeline_runs
from .speech_flow import async_offer_pipeline

LATENCY_KEY = "speech_latency"
FRESH_OPTION = "shared_turn"
"""The text-to-speech option that makes a shared turn's speech its own (see run_shares_turn)."""


class RealtimeSpeechEntity(Entity):
    """An entity of the entry (its unique id and translation key from `key`)."""

    _attr_has_entity_name = True

    def __init__(self, entry: ConfigEntry, key: str) -> None:
        """The entity on the entry's service device (the agent's)."""
        self.entry = entry
        self._attr_unique_id = f"{entry.entry_id}_{key}"
        self._attr_translation_key = key
        self._attr_device_info = DeviceInfo(
            identifiers={(DOMAIN, entry.entry_id)},
            name=entry.title,
            manufacturer="OpenAI",
            entry_type=DeviceEntryType.SERVICE,
        )

    @property
    def data(self) -> OpenAIRealtimeData:
        """The loaded entry's runtime data."""
        data: OpenAIRealtimeData = self.entry.runtime_data
        return data


class RealtimeSpeechSubentryEntity(RealtimeSpeechEntity):
    """The speech-to-text or text-to-speech of a subentry, on a service device of its own."""

    # A text-to-speech engine needs a name of its own (Home Assistant's OpenAI does the same).
    _attr_has_entity_name = False

    def __init__(self, entry: ConfigEntry, subentry: ConfigSubentry) -> None:
        """Named by the subentry's title."""
        super().__init__(entry, subentry.subentry_type)
        self.subentry_id = subentry.subentry_id
        self._attr_unique_id = subentry.subentry_id
        self._attr_translation_key = None
        self._attr_name = subentry.title
        self._attr_device_info = DeviceInfo(
            identifiers={(DOMAIN, subentry.subentry_id)},
            name=subentry.title,
            manufacturer="OpenAI",
            model=subentry.data.get(CONF_TRANSCRIPTION_MODEL),  # none for text to speech
            entry_type=DeviceEntryType.SERVICE,
        )

    @property
    def subentry_data(self) -> Mapping[str, Any]:
        """The subentry's settings as they are now (a reconfigure replaces the subentry)."""
        subentry = self.entry.subentries.get(self.subentry_id)
        return subentry.data if subentry is not None else {}


@callback
def async_add_speech_entities(
    hass: HomeAssistant,
    entry: ConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
    kind: str,
    factory: Callable[[ConfigEntry, ConfigSubentry], Entity],
) -> None:
    """Add an entity for each subentry of a kind, now and when one is added while loaded."""
    added: set[str] = set()

    @callback
    def _add() -> None:
        for subentry in entry.subentries.values():
            if subentry.subentry_type == kind and subentry.subentry_id not in added:
                added.add(subentry.subentry_id)
                async_add_entities(
                    [factory(entry, subentry)], config_subentry_id=subentry.subentry_id
                )
        async_offer_pipeline(hass, entry)

    @callback
    def _changed(change: ConfigEntryChange, changed: ConfigEntry) -> None:
        if change is ConfigEntryChange.UPDATED and changed.entry_id == entry.entry_id:
            _add()

    _add()
    entry.async_on_unload(async_dispatcher_connect(hass, SIGNAL_CONFIG_ENTRY_CHANGED, _changed))


def _registered(
    hass: HomeAssistant, entry: ConfigEntry, entity_id: str | None
) -> er.RegistryEntry | None:
    """The registry entry of one of this entry's entities."""
    registered = er.async_get(hass).async_get(entity_id) if entity_id else None
    if (
        registered is None
        or registered.platform != DOMAIN
        or registered.config_entry_id != entry.entry_id
    ):
        return None
    return registered


def shared_turn_agent(
    hass: HomeAssistant, entry: ConfigEntry, conversation_id: str, stt: str
) -> ConfigSubentry | None:
    """The agent whose turn the pipeline run transcribing with `stt` in this conversation
    shares, if it does: the run goes on to text-to-speech, and its pipeline has one of the
    entry's agents (that one) and the entry's text-to-speech. The run's speech is then kept
    out of Home Assistant's cache folder.

    The run is found by what Home Assistant records of every run for its pipeline debug view
    (the events the frontend shows; `pipeline_shim` reads them): its run-start names the
    pipeline and the conversation, and has a `tts_output` only when the run ends with
    text-to-speech. A run that stops at speech-to-text (`assist_satellite.ask_question`) or at
    the agent gets no answer started.
    """
    for pipeline_id, events in pipeline_runs(hass):
        if not events or events[0].type is not PipelineEventType.RUN_START:
            continue
        start = events[0].data or {}
        if start.get("conversation_id") != conversation_id or any(
            event.type is PipelineEventType.RUN_END for event in events
        ):
            continue
        if not any(
            event.type is PipelineEventType.STT_START and (event.data or {}).get("engine") == stt
            for event in events
        ):
            continue
        if "tts_output" not in start:
            return None
        pipeline = async_get_pipeline(hass, pipeline_id)
        agent = _registered(hass, entry, pipeline.conversation_engine)
        subentry = entry.subentries.get(agent.config_subentry_id or "") if agent else None
        if (
            subentry is None
            or subentry.subentry_type != SUBENTRY_CONVERSATION
            or _registered(hass, entry, pipeline.tts_engine) is None
        ):
            return None
        # The run's speech is this turn's audio. Home Assistant keeps speech by its words and
        # options: an option of this turn alone keeps an earlier answer in the same words from
        # being served, and the answer stays out of the cache folder.
        keep_out_of_tts_cache(hass, start["tts_output"]["token"], FRESH_OPTION)
        return subentry
    return None


class SpeechLatencySensor(RealtimeSpeechEntity, SensorEntity):
    """How long the last shared turn took to answer, as a device's *Response latency*: from
    the end of the user's speech (the voice detection's silence window counted in) to the first
    answer audio. That audio is the one handed back to Home Assistant: its conversion for the
    satellite, the network and the playback buffer are not included (Home Assistant and the
    satellite's integration send it, not this integration)."""

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
