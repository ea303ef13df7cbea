"""Diagnostics downloads for the entry and each device, with every secret redacted."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from homeassistant.components.diagnostics import async_redact_data
from homeassistant.config_entries import ConfigEntryState, ConfigSubentry
from homeassistant.const import CONF_API_KEY
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.device_registry import DeviceEntry

from .agents import agent_subentries
from .const import (
    CONF_BASE_URL,
    CONF_BOARD,
    CONF_CLIENT_ID,
    CONF_CODE,
    CONF_DEVICE_WEBSOCKET_URL,
    CONF_FIRMWARE,
    CONF_TOKEN_HASH,
    DOMAIN,
)
from .endpoint import DATA_HUB, DeviceState, device_subentries
from .models import OpenAIRealtimeConfigEntry
from .profile import effective_options
from .realtime import redact_url

TO_REDACT: Final = {
    CONF_API_KEY,
    CONF_TOKEN_HASH,
    CONF_CLIENT_ID,
    CONF_CODE,
    "token",
    "challenge",
    "authorization",
}
"""Keys whose values never leave Home Assistant: API key, device tokens and their hashes,
pairing codes and challenges, and the firmware's client ids."""

URL_KEYS: Final = (CONF_BASE_URL, CONF_DEVICE_WEBSOCKET_URL)
"""Settings holding URLs, shown without user info or query values (they may hold secrets)."""


def _redact(data: Mapping[str, Any]) -> dict[str, Any]:
    """Settings without secrets: redacted keys, and URLs reduced by `redact_url`."""
    redacted: dict[str, Any] = async_redact_data(dict(data), TO_REDACT)
    for key in URL_KEYS:
        if isinstance(value := redacted.get(key), str) and value:
            redacted[key] = redact_url(value)
    return redacted


async def async_get_config_entry_diagnostics(
    hass: HomeAssistant, entry: OpenAIRealtimeConfigEntry
) -> dict[str, Any]:
    """The entry's settings, usage, service state, paired and waiting devices, open issues."""
    result: dict[str, Any] = {
        "entry": {
            "title": entry.title,
            "state": entry.state.value,
            "data": _redact(entry.data),
            "options": _redact(entry.options),
            "agents": {agent.title: _redact(agent.data) for agent in agent_subentries(entry)},
        },
        "issues": sorted(
            issue_id
            for (domain, issue_id), issue in ir.async_get(hass).issues.items()
            if domain == DOMAIN and issue.active
        ),
    }
    hub = hass.data[DATA_HUB]
    if entry.state is ConfigEntryState.LOADED:
        data = entry.runtime_data
        endpoint = data.endpoint
        result["service"] = {
            "model": endpoint.model,
            "dialect": str(endpoint.dialect),
            "auth_style": str(endpoint.auth_style),
            "custom_base_url": endpoint.base_url is not None,
            "available": data.service.available,
            "agent_sessions": sum(len(pool) for pool in data.agent_sessions.values()),
        }
        result["usage"] = data.usage.as_dict()
    # How many pictures went to the model (counts only: the pictures are never kept).
    result["images_sent"] = hub.vision.images_sent[entry.entry_id]
    result["devices"] = [
        _device(hass, subentry, _state(entry, subentry)) for subentry in device_subentries(entry)
    ]
    result["pending_devices"] = [
        async_redact_data(
            {
                "mac": pending.mac,
                "board": pending.board,
                "firmware": pending.firmware,
                CONF_CLIENT_ID: pending.client_id,
                CONF_CODE: pending.code,
                "challenge": pending.challenge,
                "reset": pending.reset,
                "wrong_codes": hub.pairing.wrong_codes(pending.mac),
            },
            TO_REDACT,
        )
        for pending in hub.pairing.pending.values()
    ]
    return result


async def async_get_device_diagnostics(
    hass: HomeAssistant, entry: OpenAIRealtimeConfigEntry, device: DeviceEntry
) -> dict[str, Any]:
    """One paired device's diagnostics; the service device gets the entry's."""
    for subentry in device_subentries(entry):
        if (DOMAIN, str(subentry.unique_id)) in device.identifiers:
            return {
                **_device(hass, subentry, _state(entry, subentry)),
                # What the device's next session gets: the entry's settings with its profile.
                "effective_settings": _redact(effective_options(hass, entry, subentry)),
            }
    return await async_get_config_entry_diagnostics(hass, entry)


def _state(entry: OpenAIRealtimeConfigEntry, subentry: ConfigSubentry) -> DeviceState:
    """The device's live state: its home's while the entry is loaded, else a blank one."""
    mac = str(subentry.unique_id)
    if entry.state is ConfigEntryState.LOADED and (home := entry.runtime_data.devices.get(mac)):
        return home.state
    return DeviceState(mac)


def _device(hass: HomeAssistant, subentry: ConfigSubentry, state: DeviceState) -> dict[str, Any]:
    """A paired device: board and firmware as paired, and its live state."""
    vision = hass.data[DATA_HUB].vision
    return {
        "title": subentry.title,
        "data": _redact(subentry.data),
        "board": subentry.data.get(CONF_BOARD),
        "firmware": subentry.data.get(CONF_FIRMWARE),
        "connected": state.connected,
        "last_seen": state.last_seen.isoformat() if state.last_seen else None,
        "volume": state.volume,
        "tools": sorted(tool.name for tool in state.tools),
        "last_latency_ms": state.last_latency_ms,
        "latencies_ms": list(state.latencies),
        "errors": dict(state.errors),
        "photos_sent": vision.device_images[state.mac],
    }
