"""The subentry flows: add, reconfigure an agent; pair a waiting device, edit its profile."""

from __future__ import annotations

from typing import Any

from homeassistant.config_entries import ConfigEntryState, ConfigSubentryFlow, SubentryFlowResult
from homeassistant.const import CONF_NAME
from homeassistant.helpers import device_registry as dr, llm
from homeassistant.helpers.selector import SelectOptionDict

from .agents import agent_data, agent_subentries, device_agent
from .const import (
    CONF_AGENT,
    CONF_CODE,
    CONF_LLM_HASS_API,
    CONF_MAC,
    CONF_MODEL,
    CONF_MONTHLY_BUDGET,
    CONF_PRICES,
    CONF_PROMPT,
    DEFAULT_TITLE,
    DOMAIN,
)
from .endpoint import DATA_HUB, PairingResult
from .flow_schemas import (
    agent_schema,
    pending_devices_schema,
    profile_from_form,
    profile_schema,
    profile_to_form,
)
from .profile import CONF_AREA, CONF_PROFILE, profile_of, validate_profile
from .repairs import async_setting_issue
from .settings import recommended_agent
from .validation import async_validate_settings, priced, prices_error


class AgentSubentryFlow(ConfigSubentryFlow):
    """Add a conversation agent to the connection, or change one.

    The service checks the agent's own model, voice, transcription model and tools before they
    are saved. A changed agent reloads the entry: the devices' open sessions take the new
    settings, and a device that stopped at a refused setting tries again.
    """

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> SubentryFlowResult:
        """A new agent, starting from the recommended settings."""
        return await self._async_form("user", user_input, recommended_agent(), DEFAULT_TITLE)

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Change an agent's settings or name."""
        subentry = self._get_reconfigure_subentry()
        # A setting an older entry never stored was used at its default: show that default.
        # (An absent prompt or API list means none, so these are not filled in.)
        defaults = {
            key: value
            for key, value in recommended_agent().items()
            if key not in (CONF_PROMPT, CONF_LLM_HASS_API)
        }
        current = {**defaults, **subentry.data}
        return await self._async_form("reconfigure", user_input, current, subentry.title)

    async def _async_form(
        self, step_id: str, user_input: dict[str, Any] | None, current: dict[str, Any], title: str
    ) -> SubentryFlowResult:
        entry = self._get_entry()
        errors: dict[str, str] = {}
        if user_input is not None:
            settings = agent_data(user_input)
            name = str(settings.pop(CONF_NAME, "")).strip() or title
            if not str(settings.get(CONF_MODEL, "")).strip():
                errors[CONF_MODEL] = "model_required"
            elif error := prices_error(settings):
                errors[CONF_PRICES] = error
            elif entry.options.get(CONF_MONTHLY_BUDGET) and not priced(settings):
                errors[CONF_PRICES] = "budget_needs_prices"
            if not errors:
                errors = await async_validate_settings(self.hass, entry.data, settings)
            if not errors:
                async_setting_issue(self.hass, entry, None)  # the service took them
                if step_id == "user":
                    return self.async_create_entry(title=name, data=settings)
                return self.async_update_reload_and_abort(
                    entry, self._get_reconfigure_subentry(), title=name, data=settings
                )
        suggested = {**current, CONF_NAME: title, **(user_input or {})}
        hass_apis = [
            SelectOptionDict(label=api.name, value=api.id) for api in llm.async_get_apis(self.hass)
        ]
        return self.async_show_form(
            step_id=step_id,
            data_schema=self.add_suggested_values_to_schema(agent_schema(hass_apis), suggested),
            errors=errors,
        )


class DeviceSubentryFlow(ConfigSubentryFlow):
    """Pair a device that is waiting for approval, from the entry's "Add device" button."""

    def __init__(self) -> None:
        """Nothing listed yet."""
        super().__init__()
        self._shown: dict[str, str] = {}
        """The Client-Id of each device the form listed, by MAC."""

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> SubentryFlowResult:
        """Choose a waiting device and type its code."""
        entry = self._get_entry()
        if entry.state is not ConfigEntryState.LOADED:
            return self.async_abort(reason="entry_not_loaded")
        hub = self.hass.data[DATA_HUB]
        errors: dict[str, str] = {}
        if user_input is not None:
            mac = str(user_input[CONF_MAC])
            # The code goes to the device the user was shown (never a reset one, see below),
            # not to one that took its place since.
            shown = self._shown.get(mac, "")
            result = hub.pairing.check_code(mac, str(user_input[CONF_CODE]), shown)
            if result is PairingResult.OK:
                title = hub.pairing.pending[mac].title
                data = hub.pairing.approve(mac)
                for flow in self.hass.config_entries.flow.async_progress_by_handler(
                    DOMAIN, match_context={"unique_id": mac}
                ):
                    self.hass.config_entries.flow.async_abort(flow["flow_id"])
                return self.async_create_entry(title=title, data=data, unique_id=mac)
            errors["base"] = result.value
        # A reset device (paired, new Client-Id) is paired again from its discovered card.
        waiting = {p.mac: p for p in hub.pairing.pending_devices() if not p.reset}
        if not waiting:
            return self.async_abort(reason="no_pending_devices")
        self._shown = {mac: p.client_id for mac, p in waiting.items()}
        schema = pending_devices_schema(
            [
                SelectOptionDict(value=mac, label=f"{p.title} {p.firmware} · {p.client_id_start}…")
                for mac, p in waiting.items()
            ]
        )
        return self.async_show_form(
            step_id="user",
            data_schema=self.add_suggested_values_to_schema(schema, user_input),
            errors=errors,
        )

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Choose the device's agent and edit its profile: its overrides of the agent's
        settings."""
        entry = self._get_entry()
        subentry = self._get_reconfigure_subentry()
        devices = dr.async_get(self.hass)
        device = devices.async_get_device_by_identifier(
            (DOMAIN, str(subentry.unique_id)), entry.entry_id
        )
        errors: dict[str, str] = {}
        if user_input is not None:
            profile = profile_from_form(
                {k: v for k, v in user_input.items() if k not in (CONF_AREA, CONF_AGENT)}
            )
            data = {**subentry.data, CONF_PROFILE: profile}
            if chosen := user_input.get(CONF_AGENT):
                data[CONF_AGENT] = chosen
            if chosen and chosen not in entry.subentries:
                errors[CONF_AGENT] = "unknown_agent"  # removed while the form was open
            elif not (errors := validate_profile(profile)):
                if device is not None:
                    devices.async_update_device(device.id, area_id=user_input.get(CONF_AREA))
                return self.async_update_and_abort(entry, subentry, data=data)
        agent = device_agent(entry, subentry)
        suggested = {
            **profile_to_form(profile_of(subentry)),
            CONF_AGENT: agent.subentry_id if agent is not None else None,
            **(user_input or {}),
        }
        if user_input is None and device is not None and device.area_id:
            suggested[CONF_AREA] = device.area_id
        users = [
            SelectOptionDict(value=user.id, label=user.name or user.id)
            for user in await self.hass.auth.async_get_users()
            if not user.system_generated and user.is_active
        ]
        agents = [
            SelectOptionDict(value=agent.subentry_id, label=agent.title)
            for agent in agent_subentries(entry)
        ]
        return self.async_show_form(
            step_id="reconfigure",
            data_schema=self.add_suggested_values_to_schema(
                profile_schema(users, agents), suggested
            ),
            errors=errors,
            description_placeholders={"device": subentry.title},
        )
