"""OpenAI Realtime Voice: Realtime speech-to-speech for Home Assistant."""

from __future__ import annotations

from functools import partial
from types import MappingProxyType
from typing import Any

from homeassistant.config_entries import (
    SIGNAL_CONFIG_ENTRY_CHANGED,
    ConfigEntry,
    ConfigEntryChange,
    ConfigSubentry,
)
from homeassistant.const import Platform
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.exceptions import ConfigEntryAuthFailed, ConfigEntryError
from homeassistant.helpers import (
    config_validation as cv,
    entity_registry as er,
    issue_registry as ir,
)
from homeassistant.helpers.dispatcher import async_dispatcher_connect
from homeassistant.helpers.typing import ConfigType

from .agents import (
    agent_settings,
    agent_subentries,
    async_check_device_agents,
    async_delete_device_agent_issue,
    first_agent,
)
from .availability import ServiceMonitor
from .bridge import async_serve_device
from .budget import Budget, exhausted_issue_id, warning_issue_id
from .const import (
    CONF_FIRMWARE,
    CONF_MODEL,
    CONF_PRICES,
    CONF_TOKEN_HASH,
    CONF_TRANSCRIPTION_MODEL,
    DOMAIN,
    LOGGER,
    PROBE_TIMEOUT,
    SUBENTRY_CONVERSATION,
)
from .endpoint import (
    DATA_HUB,
    ActivateView,
    DeviceHub,
    DeviceWebSocketView,
    OtaView,
    device_subentries,
)
from .home import DeviceHome
from .models import OpenAIRealtimeConfigEntry, OpenAIRealtimeData
from .realtime import (
    RealtimeAuthError,
    RealtimeError,
    RealtimeSessionClosed,
    async_probe,
)
from .repairs import (
    async_check_libopus,
    async_firmware_issue,
    async_quota_issue,
    firmware_issue_id,
)
from .services import async_setup_services
from .services_api import async_register_services_api
from .settings import endpoint_from_config, split_settings
from .shared_turn import SharedTurns
from .usage import EntryUsage, InvalidPricesError, Pricing, parse_prices, pricing_for
from .vision_view import DeviceVisionView

CONFIG_SCHEMA = cv.config_entry_only_config_schema(DOMAIN)

PLATFORMS = [
    Platform.ASSIST_SATELLITE,
    Platform.BINARY_SENSOR,
    Platform.CONVERSATION,
    Platform.NUMBER,
    Platform.SENSOR,
    Platform.STT,
    Platform.TTS,
]


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Set up what is shared by all entries: the device hub and its HTTP endpoints.

    Home Assistant registers a view once per instance, so the views' shared state (pending
    pairings, failed logins, photo tokens) is the one thing kept in `hass.data` (`DATA_HUB`);
    each paired device lives in its entry (`entry.runtime_data.devices`).
    """
    hass.data[DATA_HUB] = DeviceHub(hass)
    async_register_services_api(hass)
    async_setup_services(hass)
    hass.http.register_view(OtaView())
    hass.http.register_view(ActivateView())
    hass.http.register_view(DeviceWebSocketView(partial(async_serve_device, hass)))
    hass.http.register_view(DeviceVisionView())
    return True


async def async_setup_entry(hass: HomeAssistant, entry: OpenAIRealtimeConfigEntry) -> bool:
    """Check that the Realtime service accepts us, then load the entry.

    A service that cannot be reached (network, 5xx, timeout) or is out of quota does not keep
    the entry from loading: devices are served by the Assist pipeline until it answers. A
    rejected key or a refused protocol cannot get better by waiting, and fail setup.
    """
    first = agent_settings(entry, first_agent(entry))
    endpoint = endpoint_from_config(entry.data, first.get(CONF_MODEL))

    async def _probe() -> None:
        await async_probe(entry.runtime_data.endpoint, timeout=PROBE_TIMEOUT)

    service = ServiceMonitor(hass, entry, _probe)
    outage: RealtimeError | None = None
    try:
        await async_probe(endpoint, timeout=PROBE_TIMEOUT)
    except RealtimeAuthError as err:
        raise ConfigEntryAuthFailed(
            translation_domain=DOMAIN, translation_key="invalid_auth"
        ) from err
    except RealtimeSessionClosed as err:  # refused for good (protocol, model): no retries
        raise ConfigEntryError(
            translation_domain=DOMAIN,
            translation_key="session_refused",
            translation_placeholders={"error": str(err)},
        ) from err
    except RealtimeError as err:
        outage = err
    # Responses are priced as the agent that asked for them; these are the first agent's prices.
    usage = EntryUsage(hass, entry.entry_id, endpoint.model, _price_overrides(entry, first))
    usage.transcription_model = first.get(CONF_TRANSCRIPTION_MODEL)
    usage.set_agents(_agent_pricings(entry))
    await usage.async_load()
    budget = Budget(hass, entry, usage, endpoint)
    entry.runtime_data = OpenAIRealtimeData(
        endpoint=endpoint,
        usage=usage,
        budget=budget,
        service=service,
        shared_turns=SharedTurns(hass),
        devices={str(sub.unique_id): DeviceHome(sub) for sub in device_subentries(entry)},
    )
    await async_check_libopus(hass)
    for subentry in device_subentries(entry):
        async_firmware_issue(
            hass, str(subentry.unique_id), subentry.title, subentry.data.get(CONF_FIRMWARE)
        )
    async_check_device_agents(hass, entry)
    entry.async_on_unload(_async_track_devices(hass, entry))
    entry.async_on_unload(budget.async_start())
    entry.async_on_unload(service.async_close)
    if outage is not None:  # logged once; checked again until it answers
        service.failed(outage)
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    return True


def _price_overrides(
    entry: OpenAIRealtimeConfigEntry, settings: dict[str, Any]
) -> dict[str, float]:
    """An agent's price overrides; the flow validated them, so a bad value is only logged."""
    try:
        return parse_prices(settings.get(CONF_PRICES))
    except InvalidPricesError:
        LOGGER.warning("Ignoring invalid price overrides of an agent of %s", entry.title)
        return {}


def _agent_pricings(entry: OpenAIRealtimeConfigEntry) -> list[Pricing]:
    """The pricing of each of the entry's agents."""
    return [pricing_for(agent_settings(entry, agent)) for agent in agent_subentries(entry)]


@callback
def _async_track_devices(hass: HomeAssistant, entry: OpenAIRealtimeConfigEntry) -> CALLBACK_TYPE:
    """Follow paired and removed devices, and added and removed agents, without reloading.

    A reload would close every other device's conversation and answer boot checks with 503
    while the service is probed: a newly paired device gets its entities at once, and a
    removed one is disconnected (Home Assistant removes its entities and HA device), and so
    is one paired again (its new token replaces the one its connection presented). An added
    agent gets its conversation entity; a removed one's entity is removed by Home Assistant
    (closing its sessions), and the devices that chose it use the first agent from their next
    session on, with a repair issue each.
    """
    agents = {sub.subentry_id for sub in agent_subentries(entry)}

    @callback
    def _changed(change: ConfigEntryChange, changed: ConfigEntry) -> None:
        if change is not ConfigEntryChange.UPDATED or changed.entry_id != entry.entry_id:
            return
        data = entry.runtime_data
        current = {str(sub.unique_id): sub for sub in device_subentries(entry)}
        for agent in agent_subentries(entry):
            if agent.subentry_id not in agents:
                agents.add(agent.subentry_id)
                for add_agent in data.agent_adders:
                    add_agent(agent)
        agents.intersection_update(sub.subentry_id for sub in agent_subentries(entry))
        data.usage.set_agents(_agent_pricings(entry))
        for mac in set(data.devices) - set(current):
            removed = data.devices.pop(mac)
            ir.async_delete_issue(hass, DOMAIN, firmware_issue_id(mac))
            hass.data[DATA_HUB].pairing.async_forget(mac)
            async_delete_device_agent_issue(hass, mac)
            entry.async_create_task(
                hass, removed.async_disconnect("device removed"), eager_start=True
            )
        for mac, subentry in current.items():
            if (known := data.devices.get(mac)) is not None:
                # Its data changed (profile, firmware, a new token): keep the latest.
                token = known.subentry.data.get(CONF_TOKEN_HASH)
                known.subentry = subentry
                if subentry.data.get(CONF_TOKEN_HASH) != token:
                    entry.async_create_task(
                        hass, known.async_disconnect("paired again"), eager_start=True
                    )
                continue
            data.devices[mac] = home = DeviceHome(subentry)
            LOGGER.debug("Device %s paired to %s", mac, entry.title)
            async_firmware_issue(hass, mac, subentry.title, subentry.data.get(CONF_FIRMWARE))
            for add in data.entity_adders:
                add(home)
        async_check_device_agents(hass, entry)

    return async_dispatcher_connect(hass, SIGNAL_CONFIG_ENTRY_CHANGED, _changed)


async def async_migrate_entry(hass: HomeAssistant, entry: OpenAIRealtimeConfigEntry) -> bool:
    """Move a version 1 entry's agent (its options) into a conversation agent subentry.

    The connection stays in the entry, the entry-wide settings in its options, and the paired
    devices as they are (they talk to the first agent). The agent's conversation entity keeps its
    entity id: its registry entry now belongs to the agent subentry, whose id is its unique id.
    """
    if entry.version > 2:  # a downgrade: this version cannot read the entry
        return False
    if entry.version == 1:
        options, settings = split_settings(entry.options)
        agent = ConfigSubentry(
            data=MappingProxyType(settings),
            subentry_type=SUBENTRY_CONVERSATION,
            title=entry.title,
            unique_id=None,
        )
        hass.config_entries.async_add_subentry(entry, agent)
        entities = er.async_get(hass)
        if entity_id := entities.async_get_entity_id(Platform.CONVERSATION, DOMAIN, entry.entry_id):
            entities.async_update_entity(
                entity_id,
                config_subentry_id=agent.subentry_id,
                new_unique_id=agent.subentry_id,
            )
        # The service device keeps the entry's usage sensors; the agent gets its own device.
        hass.config_entries.async_update_entry(entry, options=options, version=2, minor_version=1)
        LOGGER.debug("Moved the agent of %s into subentry %s", entry.title, agent.subentry_id)
    return True


async def async_unload_entry(hass: HomeAssistant, entry: OpenAIRealtimeConfigEntry) -> bool:
    """Unload the entry and close the connections of its devices."""
    if not await hass.config_entries.async_unload_platforms(entry, PLATFORMS):
        return False
    await entry.runtime_data.shared_turns.async_close()
    await entry.runtime_data.usage.async_save()
    for home in entry.runtime_data.devices.values():
        await home.async_disconnect("integration reloading")
    return True


async def async_remove_entry(hass: HomeAssistant, entry: OpenAIRealtimeConfigEntry) -> None:
    """Delete the stored usage totals and the quota issue of a removed entry."""
    await EntryUsage(hass, entry.entry_id, "").async_remove()
    async_quota_issue(hass, entry, active=False)
    for issue_id in (warning_issue_id(entry), exhausted_issue_id(entry)):
        ir.async_delete_issue(hass, DOMAIN, issue_id)
