"""The Assist conversation agents, one per agent subentry, answering through Realtime text
sessions."""

from __future__ import annotations

from typing import Any, Literal, override

from homeassistant.components import conversation
from homeassistant.components.conversation.models import AbstractConversationAgent
from homeassistant.config_entries import ConfigEntry, ConfigSubentry
from homeassistant.const import MATCH_ALL
from homeassistant.core import HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import chat_session
from homeassistant.helpers.device_registry import DeviceEntryType, DeviceInfo
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .agent import AgentSessions
from .agents import agent_settings, agent_subentries
from .const import CONF_LLM_HASS_API, CONF_MODEL, CONF_PROMPT, DOMAIN
from .realtime import (
    RealtimeAuthError,
    RealtimeError,
    RealtimeQuotaError,
    RealtimeSettingRefused,
)
from .repairs import async_quota_issue, async_setting_issue
from .services_api import agent_allowlist
from .vision import agent_image_side

PARALLEL_UPDATES = 0

type _Entry = ConfigEntry  # the typed alias lives in __init__; avoid an import cycle


async def async_setup_entry(
    hass: HomeAssistant,
    entry: _Entry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add a conversation agent per agent subentry, and one for each agent added later."""

    @callback
    def add(subentry: ConfigSubentry) -> None:
        async_add_entities(
            [RealtimeConversationEntity(hass, entry, subentry)],
            config_subentry_id=subentry.subentry_id,
        )

    for subentry in agent_subentries(entry):
        add(subentry)
    adders = entry.runtime_data.agent_adders
    adders.append(add)
    entry.async_on_unload(lambda: adders.remove(add))


class RealtimeConversationEntity(conversation.ConversationEntity, AbstractConversationAgent):
    """An Assist agent whose answers come from an OpenAI Realtime model."""

    _attr_has_entity_name = True
    _attr_name = None
    _attr_supports_streaming = True

    def __init__(self, hass: HomeAssistant, entry: _Entry, subentry: ConfigSubentry) -> None:
        """Describe the agent and its service device; its sessions open on its first message."""
        self.entry = entry
        self.subentry_id = subentry.subentry_id
        self._attr_unique_id = subentry.subentry_id
        self._attr_device_info = DeviceInfo(
            identifiers={(DOMAIN, subentry.subentry_id)},
            name=subentry.title,
            manufacturer="OpenAI",
            model=subentry.data.get(CONF_MODEL),
            entry_type=DeviceEntryType.SERVICE,
        )
        if subentry.data.get(CONF_LLM_HASS_API):
            self._attr_supported_features = conversation.ConversationEntityFeature.CONTROL
        data = entry.runtime_data
        self.sessions = AgentSessions(
            hass,
            lambda: data.budget.endpoint(self.settings.get(CONF_MODEL)),
            usage=data.usage,
            entry_id=entry.entry_id,
        )

    @property
    def settings(self) -> dict[str, Any]:
        """The agent's settings as they are now (a reconfigure replaces the subentry)."""
        return agent_settings(self.entry, self.entry.subentries.get(self.subentry_id))

    @property
    @override
    def supported_languages(self) -> list[str] | Literal["*"]:
        """Realtime models speak many languages."""
        return MATCH_ALL

    @override
    async def async_added_to_hass(self) -> None:
        """Register as an agent of the entry."""
        await super().async_added_to_hass()
        self.entry.runtime_data.agent_sessions[self.subentry_id] = self.sessions
        conversation.async_set_agent(self.hass, self.entry, self)

    @override
    async def async_will_remove_from_hass(self) -> None:
        """Unregister the agent and close its sessions (unloaded, or the agent was removed)."""
        conversation.async_unset_agent(self.hass, self.entry)
        if sessions := self.entry.runtime_data.agent_sessions.pop(self.subentry_id, None):
            await sessions.async_close()
        await super().async_will_remove_from_hass()

    @override
    async def _async_handle_message(
        self,
        user_input: conversation.ConversationInput,
        chat_log: conversation.ChatLog,
    ) -> conversation.ConversationResult:
        """Answer one message of a conversation, running Home Assistant tools as asked."""
        options = self.settings
        try:
            with agent_allowlist(options, image_side=agent_image_side(self.entry, options)):
                await chat_log.async_provide_llm_data(
                    user_input.as_llm_context(DOMAIN),
                    options.get(CONF_LLM_HASS_API),
                    options.get(CONF_PROMPT),
                    user_input.extra_system_prompt,
                )
        except conversation.ConverseError as err:
            return err.as_conversation_result()

        budget = self.entry.runtime_data.budget
        if budget.blocks_realtime:
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="budget_exhausted",
                translation_placeholders={
                    "title": self.entry.title,
                    "limit": f"{budget.limit:.2f}",
                    "resets": budget.resets.date().isoformat(),
                },
            )
        sessions = self.entry.runtime_data.agent_sessions[self.subentry_id]
        conversation_id = chat_log.conversation_id
        session, is_new = sessions.async_acquire(conversation_id)
        if is_new and (chat := chat_session.current_session.get()) is not None:
            chat.async_on_cleanup(lambda: sessions.async_discard(conversation_id))
        async with session.lock:
            try:
                # A spoken turn whose answer started during speech to text (shared_turn.py).
                turns = self.entry.runtime_data.shared_turns
                extra = chat_log.extra_system_prompt
                turn = turns.async_claim(conversation_id, self.subentry_id, user_input.text, extra)
                if turn is not None:
                    await turn.async_answer(chat_log, self.entity_id)
                else:
                    await turns.async_release(conversation_id)
                    await session.async_process(chat_log, self.entity_id, options)
            except RealtimeAuthError as err:
                sessions.async_discard(conversation_id)
                self.entry.async_start_reauth(self.hass)
                raise HomeAssistantError(
                    translation_domain=DOMAIN, translation_key="invalid_auth"
                ) from err
            except RealtimeQuotaError as err:
                sessions.async_discard(conversation_id)
                async_quota_issue(self.hass, self.entry, active=True)
                raise HomeAssistantError(
                    translation_domain=DOMAIN, translation_key="quota_exceeded"
                ) from err
            except RealtimeSettingRefused as err:
                # Not an outage: the user's setting must change (a repair names it).
                sessions.async_discard(conversation_id)
                async_setting_issue(self.hass, self.entry, err)
                raise HomeAssistantError(
                    translation_domain=DOMAIN,
                    translation_key=f"{err.setting}_refused",
                    translation_placeholders={"error": str(err)},
                ) from err
            except RealtimeError as err:
                sessions.async_discard(conversation_id)
                self.entry.runtime_data.service.failed(err)
                raise HomeAssistantError(
                    translation_domain=DOMAIN,
                    translation_key="cannot_connect",
                    translation_placeholders={"error": str(err)},
                ) from err
            except HomeAssistantError:
                sessions.async_discard(conversation_id)
                raise
        async_quota_issue(self.hass, self.entry, active=False)
        async_setting_issue(self.hass, self.entry, None)
        self.entry.runtime_data.service.succeeded()
        return conversation.async_get_result_from_chat_log(user_input, chat_log)
