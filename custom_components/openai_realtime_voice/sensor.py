"""Sensors: token usage and estimated cost per entry; last seen and latency per paired device."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import override

from homeassistant.components.sensor import (
    RestoreSensor,
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.const import EntityCategory, UnitOfTime
from homeassistant.core import HomeAssistant
from homeassistant.helpers.device_registry import DeviceEntryType, DeviceInfo
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .budget import Budget
from .const import DOMAIN
from .entity import XiaozhiDeviceEntity, async_add_device_entities
from .models import OpenAIRealtimeConfigEntry
from .speech_entity import LATENCY_KEY, SpeechLatencySensor
from .usage import EntryUsage

PARALLEL_UPDATES = 0

TOKENS = "tokens"
CURRENCY_USD = "USD"

LAST_SEEN = SensorEntityDescription(
    key="last_seen",
    translation_key="last_seen",
    device_class=SensorDeviceClass.TIMESTAMP,
    entity_category=EntityCategory.DIAGNOSTIC,
)

LATENCY = SensorEntityDescription(
    key="latency",
    translation_key="latency",
    device_class=SensorDeviceClass.DURATION,
    state_class=SensorStateClass.MEASUREMENT,
    native_unit_of_measurement=UnitOfTime.MILLISECONDS,
    suggested_display_precision=0,
    entity_category=EntityCategory.DIAGNOSTIC,
)


@dataclass(frozen=True, kw_only=True)
class UsageSensorDescription(SensorEntityDescription):
    """A usage sensor and how it reads the entry's totals."""

    value_fn: Callable[[EntryUsage], float | int | None]


def _tokens(key: str, value_fn: Callable[[EntryUsage], int]) -> UsageSensorDescription:
    return UsageSensorDescription(
        key=key,
        translation_key=key,
        state_class=SensorStateClass.TOTAL_INCREASING,
        native_unit_of_measurement=TOKENS,
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=value_fn,
    )


USAGE_SENSORS: tuple[UsageSensorDescription, ...] = (
    _tokens("text_input_tokens", lambda usage: usage.text_input_tokens),
    _tokens("audio_input_tokens", lambda usage: usage.audio_input_tokens),
    _tokens("image_input_tokens", lambda usage: usage.image_input_tokens),
    _tokens("cached_input_tokens", lambda usage: usage.cached_input_tokens),
    _tokens("text_output_tokens", lambda usage: usage.text_output_tokens),
    _tokens("audio_output_tokens", lambda usage: usage.audio_output_tokens),
    _tokens("transcription_tokens", lambda usage: usage.transcription_tokens),
    UsageSensorDescription(
        key="estimated_cost",
        translation_key="estimated_cost",
        device_class=SensorDeviceClass.MONETARY,
        state_class=SensorStateClass.TOTAL,
        native_unit_of_measurement=CURRENCY_USD,
        suggested_display_precision=4,
        # No estimate while an agent's model has no known prices (give all six in its settings).
        value_fn=lambda usage: usage.cost_usd if usage.estimated else None,
    ),
)


def _budget_left(budget: Budget) -> UsageSensorDescription:
    """This month's budget minus this month's estimated cost (negative once overspent)."""
    return UsageSensorDescription(
        key="budget_left",
        translation_key="budget_left",
        device_class=SensorDeviceClass.MONETARY,
        native_unit_of_measurement=CURRENCY_USD,
        suggested_display_precision=2,
        value_fn=lambda usage: budget.left,
    )


async def async_setup_entry(
    hass: HomeAssistant,
    entry: OpenAIRealtimeConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the entry's usage sensors (and what is left of its budget, when it has one), and
    last-seen and latency sensors per paired device."""
    async_add_entities(UsageSensor(entry, description) for description in USAGE_SENSORS)
    async_add_entities([SpeechLatencySensor(entry, LATENCY_KEY)])
    if (budget := entry.runtime_data.budget).limit is not None:
        async_add_entities([UsageSensor(entry, _budget_left(budget))])
    async_add_device_entities(
        entry,
        async_add_entities,
        lambda home: [
            XiaozhiLastSeenSensor(home, LAST_SEEN),
            XiaozhiLatencySensor(home, LATENCY),
        ],
    )


class UsageSensor(SensorEntity):
    """A running total of the entry's Realtime usage, on the agent's service device."""

    _attr_has_entity_name = True
    _attr_should_poll = False
    entity_description: UsageSensorDescription

    def __init__(
        self, entry: OpenAIRealtimeConfigEntry, description: UsageSensorDescription
    ) -> None:
        """Attach to the entry's service device."""
        self.entity_description = description
        self.usage = entry.runtime_data.usage
        self._attr_unique_id = f"{entry.entry_id}_{description.key}"
        self._attr_device_info = DeviceInfo(
            identifiers={(DOMAIN, entry.entry_id)},
            name=entry.title,
            manufacturer="OpenAI",
            entry_type=DeviceEntryType.SERVICE,
        )

    @override
    async def async_added_to_hass(self) -> None:
        """Update after every recorded response."""
        await super().async_added_to_hass()
        self.async_on_remove(self.usage.async_add_listener(self.async_write_ha_state))

    @property
    @override
    def native_value(self) -> float | int | None:
        """The current total."""
        return self.entity_description.value_fn(self.usage)


class XiaozhiLastSeenSensor(XiaozhiDeviceEntity, RestoreSensor):
    """The last OTA check, connection or disconnection; kept across restarts."""

    @override
    async def async_added_to_hass(self) -> None:
        """Restore the last known time if the device has not been seen since the start."""
        await super().async_added_to_hass()
        last = await self.async_get_last_sensor_data()
        if self.device.last_seen is None and last and isinstance(last.native_value, datetime):
            self.device.last_seen = last.native_value

    @property
    @override
    def native_value(self) -> datetime | None:
        """When the device was last seen."""
        return self.device.last_seen


class XiaozhiLatencySensor(XiaozhiDeviceEntity, RestoreSensor):
    """How long the last reply took to start: end of the user's speech to the first audio.

    Kept across restarts: the last figure stays until the device's next reply.
    """

    @override
    async def async_added_to_hass(self) -> None:
        """Restore the last latency if the device has not replied since the start."""
        await super().async_added_to_hass()
        last = await self.async_get_last_sensor_data()
        if (
            self.device.last_latency_ms is None
            and last is not None
            and isinstance(last.native_value, (int, float, Decimal))
        ):
            self.device.last_latency_ms = float(last.native_value)

    @property
    @override
    def native_value(self) -> float | None:
        """The last response latency in milliseconds; unknown before the first reply."""
        return self.device.last_latency_ms
