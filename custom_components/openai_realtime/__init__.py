"""OpenAI Realtime Voice: Realtime speech-to-speech for Home Assistant."""

from __future__ import annotations

from dataclasses import dataclass

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ConfigEntryAuthFailed, ConfigEntryNotReady
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers.typing import ConfigType

from .const import CONF_MODEL, DOMAIN, LOGGER, PROBE_TIMEOUT
from .realtime import (
    RealtimeAuthError,
    RealtimeEndpoint,
    RealtimeError,
    async_probe,
)
from .settings import endpoint_from_config

CONFIG_SCHEMA = cv.config_entry_only_config_schema(DOMAIN)


@dataclass(kw_only=True)
class OpenAIRealtimeData:
    """What a loaded entry holds: the endpoint every Realtime session connects to."""

    endpoint: RealtimeEndpoint


type OpenAIRealtimeConfigEntry = ConfigEntry[OpenAIRealtimeData]


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Set up the integration (actions are registered here in later versions)."""
    return True


async def async_setup_entry(hass: HomeAssistant, entry: OpenAIRealtimeConfigEntry) -> bool:
    """Check that the Realtime service accepts us, then load the entry."""
    endpoint = endpoint_from_config(entry.data, entry.options.get(CONF_MODEL))
    try:
        await async_probe(endpoint, timeout=PROBE_TIMEOUT)
    except RealtimeAuthError as err:
        raise ConfigEntryAuthFailed(
            translation_domain=DOMAIN, translation_key="invalid_auth"
        ) from err
    except RealtimeError as err:
        LOGGER.debug("Realtime service not ready: %s", err)
        raise ConfigEntryNotReady(
            translation_domain=DOMAIN,
            translation_key="cannot_connect",
            translation_placeholders={"error": str(err)},
        ) from err
    entry.runtime_data = OpenAIRealtimeData(endpoint=endpoint)
    return True


async def async_unload_entry(hass: HomeAssistant, entry: OpenAIRealtimeConfigEntry) -> bool:
    """Unload the entry."""
    return True
