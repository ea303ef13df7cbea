"""Conversation agents: the entry's `conversation` subentries, and the one each device talks to.

The entry holds the connection (key, base URL, dialect) and its options what is entry-wide
(devices, budget, the services allowlist); each agent subentry holds one agent's settings. A
device subentry may name its agent (`CONF_AGENT`); one that names none, or an agent that was
removed, talks to the first agent, and a removed one raises a repair issue naming the device
and the agent it now uses, until the user picks an agent for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from homeassistant.config_entries import ConfigEntry, ConfigSubentry
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import issue_registry as ir

from .const import CONF_AGENT, DOMAIN, SUBENTRY_CONVERSATION, SUBENTRY_DEVICE


def agent_subentries(entry: ConfigEntry[Any]) -> list[ConfigSubentry]:
    """The entry's conversation agents, in the order they were added."""
    return [s for s in entry.subentries.values() if s.subentry_type == SUBENTRY_CONVERSATION]


def first_agent(entry: ConfigEntry[Any]) -> ConfigSubentry | None:
    """The agent devices fall back to: the first one added (None once all are removed)."""
    return next(iter(agent_subentries(entry)), None)


def chosen_agent_id(device: ConfigSubentry | None) -> str | None:
    """The agent subentry id a device's subentry names, if any."""
    if device is None:
        return None
    return str(device.data.get(CONF_AGENT) or "") or None


def chosen_agent(entry: ConfigEntry[Any], device: ConfigSubentry | None) -> ConfigSubentry | None:
    """The agent a device chose, while it exists."""
    chosen = entry.subentries.get(chosen_agent_id(device) or "")
    if chosen is not None and chosen.subentry_type == SUBENTRY_CONVERSATION:
        return chosen
    return None


def device_agent(entry: ConfigEntry[Any], device: ConfigSubentry | None) -> ConfigSubentry | None:
    """The agent a device talks to: the one it chose while it exists, else the first."""
    return chosen_agent(entry, device) or first_agent(entry)


def agent_settings(entry: ConfigEntry[Any], agent: ConfigSubentry | None) -> dict[str, Any]:
    """What a session of `agent` is opened with: the entry-wide options and its own settings."""
    settings = dict(entry.options)
    if agent is not None:
        settings.update(agent.data)
    return settings


def agent_removed_issue_id(mac: str) -> str:
    """The issue id of a device whose chosen agent was removed."""
    return f"agent_removed_{mac}"


@callback
def async_check_device_agents(hass: HomeAssistant, entry: ConfigEntry[Any]) -> None:
    """Raise or clear, per device, the issue that its chosen agent is gone."""
    first = first_agent(entry)
    for device in entry.subentries.values():
        if device.subentry_type != SUBENTRY_DEVICE:
            continue
        mac = str(device.unique_id)
        if chosen_agent_id(device) is None or chosen_agent(entry, device) is not None:
            ir.async_delete_issue(hass, DOMAIN, agent_removed_issue_id(mac))
            continue
        ir.async_create_issue(
            hass,
            DOMAIN,
            agent_removed_issue_id(mac),
            is_fixable=False,
            is_persistent=False,
            severity=ir.IssueSeverity.WARNING,
            translation_key="agent_removed" if first is not None else "agent_removed_none",
            translation_placeholders={
                "device": device.title,
                "agent": first.title if first is not None else "",
                "title": entry.title,
            },
        )


@callback
def async_delete_device_agent_issue(hass: HomeAssistant, mac: str) -> None:
    """Forget the issue of a device that was removed."""
    ir.async_delete_issue(hass, DOMAIN, agent_removed_issue_id(mac))


def agent_data(settings: Mapping[str, Any]) -> dict[str, Any]:
    """An agent's settings as stored: empty optional fields (blank text too) dropped."""
    return {
        key: value
        for key, value in settings.items()
        if value not in (None, [], {}) and not (isinstance(value, str) and not value.strip())
    }
