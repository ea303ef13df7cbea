"""Shared helpers for the tests of the conversation agents: the entry with its first agent, its
entity id, a typed request, changing an agent's settings."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from homeassistant.components import conversation
from homeassistant.config_entries import (
    SOURCE_RECONFIGURE,
    ConfigEntry,
    ConfigSubentry,
    ConfigSubentryData,
)
from homeassistant.const import CONF_NAME
from homeassistant.core import Context, HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.openai_realtime_voice.agents import first_agent
from custom_components.openai_realtime_voice.const import DOMAIN, SUBENTRY_CONVERSATION
from custom_components.openai_realtime_voice.settings import (
    default_options,
    recommended_agent,
    split_settings,
)

AGENT = "conversation.openai_realtime"
TITLE = "OpenAI Realtime"


# Home Assistant 2026.10 names Assist tools after the integration providing them.
TURN_ON = "intent__HassTurnOn"


def all_settings() -> dict[str, Any]:
    """The settings of a new entry and its first agent, in one mapping."""
    return {**default_options(), **recommended_agent()}


def service_entry(
    data: Mapping[str, Any],
    settings: Mapping[str, Any] | None = None,
    devices: Sequence[ConfigSubentryData] = (),
    **kwargs: Any,
) -> MockConfigEntry:
    """An entry as the config flow makes it: the connection, the entry-wide options and one
    agent, with `settings` (entry-wide or the agent's) over the recommended ones; and the
    subentries of paired `devices`."""
    options, agent = split_settings({**all_settings(), **(settings or {})})
    kwargs.setdefault("title", TITLE)  # the agent is named after the entry, as a migrated one
    return MockConfigEntry(
        domain=DOMAIN,
        version=2,
        data=dict(data),
        options=options,
        subentries_data=[
            ConfigSubentryData(
                data=agent,
                subentry_type=SUBENTRY_CONVERSATION,
                title=kwargs["title"],
                unique_id=None,
            ),
            *devices,
        ],
        **kwargs,
    )


def agent_of(entry: ConfigEntry[Any]) -> ConfigSubentry:
    """The entry's first agent."""
    agent = first_agent(entry)
    assert agent is not None
    return agent


def set_settings(hass: HomeAssistant, entry: ConfigEntry[Any], **changes: Any) -> None:
    """Change settings in place, without a reload: the first agent's in its subentry, the
    entry-wide ones in the options; None removes a setting."""
    options, agent = split_settings(changes)
    if agent:
        subentry = agent_of(entry)
        data = {**subentry.data, **agent}
        hass.config_entries.async_update_subentry(
            entry, subentry, data={k: v for k, v in data.items() if v is not None}
        )
    if options:
        merged = {**entry.options, **options}
        hass.config_entries.async_update_entry(
            entry, options={k: v for k, v in merged.items() if v is not None}
        )


async def ask_agent(
    hass: HomeAssistant, text: str, conversation_id: str | None = None, agent_id: str = AGENT
) -> conversation.ConversationResult:
    """Ask the agent `text` as a typed Assist request, in a new or a given conversation."""
    return await conversation.async_converse(
        hass, text, conversation_id, Context(), language="en", agent_id=agent_id
    )


async def reconfigure_agent(
    hass: HomeAssistant, entry: ConfigEntry[Any], **changes: Any
) -> dict[str, Any]:
    """Submit the first agent's reconfigure form with its settings and `changes`; a change to
    None is a field the user cleared (not sent)."""
    agent = agent_of(entry)
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_CONVERSATION),
        context={"source": SOURCE_RECONFIGURE, "subentry_id": agent.subentry_id},
    )
    assert result["type"] is FlowResultType.FORM, result
    form = {CONF_NAME: agent.title, **agent.data, **changes}
    done = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {key: value for key, value in form.items() if value is not None}
    )
    return dict(done)


async def submit_options(
    hass: HomeAssistant, entry: ConfigEntry[Any], **changes: Any
) -> dict[str, Any]:
    """Submit the entry's options form with its options and `changes` (None: cleared)."""
    result = await hass.config_entries.options.async_init(entry.entry_id)
    form = {key: value for key, value in {**entry.options, **changes}.items() if value is not None}
    return dict(await hass.config_entries.options.async_configure(result["flow_id"], form))
