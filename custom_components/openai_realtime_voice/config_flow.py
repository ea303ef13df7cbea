"""Config flow for OpenAI Realtime Voice: connection, reauth, reconfigure, pairing, options.

The entry is the connection (key, base URL, dialect); its options are what is entry-wide.
The agent and device subentry flows are in `subentry_flow.py`, the forms of all flows in
`flow_schemas.py`.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, override

from homeassistant.config_entries import (
    ConfigEntry,
    ConfigFlow,
    ConfigFlowResult,
    ConfigSubentry,
    ConfigSubentryFlow,
    OptionsFlowWithReload,
)
from homeassistant.const import CONF_API_KEY
from homeassistant.core import callback
from homeassistant.data_entry_flow import AbortFlow

from .agents import first_agent
from .const import (
    CONF_BASE_URL,
    CONF_BOARD,
    CONF_CLIENT_ID,
    CONF_CODE,
    CONF_DEVICE_WEBSOCKET_URL,
    CONF_DIALECT,
    CONF_MAC,
    CONF_MODEL,
    CONF_MONTHLY_BUDGET,
    CONF_TOKEN_HASH,
    CONF_WAKE_WORDS,
    DEFAULT_TITLE,
    DIALECT_GA,
    DOMAIN,
    RECOMMENDED_MODEL,
    SUBENTRY_CONVERSATION,
    SUBENTRY_DEVICE,
)
from .endpoint import DATA_HUB, PairingResult
from .flow_schemas import (
    BASE_URL_PLACEHOLDERS,
    api_key_schema,
    code_schema,
    connection_schema,
    options_schema,
)
from .settings import default_options, recommended_agent
from .speech_flow import (
    SUBENTRY_STT,
    SUBENTRY_TTS,
    SpeechToTextSubentryFlow,
    TextToSpeechSubentryFlow,
)
from .subentry_flow import AgentSubentryFlow, DeviceSubentryFlow
from .validation import async_validate_settings, budget_error


def _clean_connection(user_input: dict[str, Any]) -> dict[str, Any]:
    """Strip whitespace and drop an empty base URL so OpenAI's default applies."""
    data = {
        CONF_API_KEY: user_input[CONF_API_KEY].strip(),
        CONF_DIALECT: user_input.get(CONF_DIALECT, DIALECT_GA),
    }
    if base_url := (user_input.get(CONF_BASE_URL) or "").strip().rstrip("/"):
        data[CONF_BASE_URL] = base_url
    return data


class OpenAIRealtimeConfigFlow(ConfigFlow, domain=DOMAIN):
    """Add an OpenAI (or compatible) Realtime endpoint."""

    VERSION = 2
    MINOR_VERSION = 1

    @callback
    def _abort_if_endpoint_configured(
        self, data: Mapping[str, Any], ignore: ConfigEntry | None = None
    ) -> None:
        """Abort when another entry already uses this key on this endpoint."""
        wanted = (data[CONF_API_KEY], data.get(CONF_BASE_URL))
        for entry in self._async_current_entries(include_ignore=False):
            if entry is not ignore and (
                (entry.data.get(CONF_API_KEY), entry.data.get(CONF_BASE_URL)) == wanted
            ):
                raise AbortFlow("already_configured")

    async def _async_validate(
        self, data: dict[str, Any], agent: dict[str, Any], *fields: str, check_model: bool
    ) -> dict[str, str]:
        """Open a Realtime session with these settings; map failures to form errors.

        A new entry's first agent is checked, its model with a one-token response; reauth and
        reconfigure check the connection with the first agent's model.
        """
        return await async_validate_settings(
            self.hass, data, agent, fields=frozenset(fields), check_model=check_model
        )

    @staticmethod
    def _first_model(entry: ConfigEntry) -> dict[str, Any]:
        """The model the connection is checked with: the first agent's."""
        agent = first_agent(entry)
        return {CONF_MODEL: (agent.data if agent else {}).get(CONF_MODEL, RECOMMENDED_MODEL)}

    @override
    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Ask for the API key and endpoint, and the model of the first agent."""
        errors: dict[str, str] = {}
        if user_input is not None:
            data = _clean_connection(user_input)
            self._abort_if_endpoint_configured(data)
            agent = recommended_agent()
            agent[CONF_MODEL] = user_input.get(CONF_MODEL) or RECOMMENDED_MODEL
            fields = (CONF_BASE_URL, CONF_DIALECT, CONF_MODEL)
            if not (errors := await self._async_validate(data, agent, *fields, check_model=True)):
                return self.async_create_entry(
                    title=DEFAULT_TITLE,
                    data=data,
                    options=default_options(),
                    subentries=[
                        {
                            "subentry_type": SUBENTRY_CONVERSATION,
                            "data": agent,
                            "title": DEFAULT_TITLE,
                            "unique_id": None,
                        }
                    ],
                )
        return self.async_show_form(
            step_id="user",
            data_schema=self.add_suggested_values_to_schema(
                connection_schema(with_model=True), user_input
            ),
            errors=errors,
            description_placeholders=BASE_URL_PLACEHOLDERS,
        )

    async def async_step_reauth(self, entry_data: Mapping[str, Any]) -> ConfigFlowResult:
        """Start reauthentication when the service rejects the key."""
        return await self.async_step_reauth_confirm()

    async def async_step_reauth_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Ask for a new API key for the same endpoint."""
        entry = self._get_reauth_entry()
        errors: dict[str, str] = {}
        if user_input is not None:
            data = {**entry.data, CONF_API_KEY: user_input[CONF_API_KEY].strip()}
            model = self._first_model(entry)
            if not (errors := await self._async_validate(data, model, check_model=False)):
                return self.async_update_reload_and_abort(entry, data=data)
        return self.async_show_form(
            step_id="reauth_confirm",
            data_schema=api_key_schema(),
            errors=errors,
        )

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Change the key, base URL or protocol dialect of an existing entry."""
        entry = self._get_reconfigure_entry()
        errors: dict[str, str] = {}
        if user_input is not None:
            data = _clean_connection(user_input)
            self._abort_if_endpoint_configured(data, ignore=entry)
            model = self._first_model(entry)
            fields = (CONF_BASE_URL, CONF_DIALECT)
            if not (errors := await self._async_validate(data, model, *fields, check_model=False)):
                return self.async_update_reload_and_abort(entry, data=data)
        suggested = user_input if user_input is not None else dict(entry.data)
        return self.async_show_form(
            step_id="reconfigure",
            data_schema=self.add_suggested_values_to_schema(
                connection_schema(with_model=False), suggested
            ),
            errors=errors,
            description_placeholders=BASE_URL_PLACEHOLDERS,
        )

    @staticmethod
    @callback
    @override
    def async_get_options_flow(config_entry: ConfigEntry) -> OpenAIRealtimeOptionsFlow:
        """Return the options flow."""
        return OpenAIRealtimeOptionsFlow()

    @classmethod
    @callback
    @override
    def async_get_supported_subentry_types(
        cls, config_entry: ConfigEntry
    ) -> dict[str, type[ConfigSubentryFlow]]:
        """Conversation agents, paired devices, speech-to-text and text-to-speech are
        subentries of the service entry (the speech ones in speech_flow.py)."""
        return {
            SUBENTRY_CONVERSATION: AgentSubentryFlow,
            SUBENTRY_DEVICE: DeviceSubentryFlow,
            SUBENTRY_STT: SpeechToTextSubentryFlow,
            SUBENTRY_TTS: TextToSpeechSubentryFlow,
        }

    # --- a xiaozhi device asked to be paired ---------------------------------------------------

    _client_id = ""
    """The Client-Id of the pairing this discovered card is about."""

    @override
    async def async_step_integration_discovery(
        self, discovery_info: dict[str, Any]
    ) -> ConfigFlowResult:
        """A device made its boot check: offer to pair it (again, if it was reset)."""
        mac = str(discovery_info[CONF_MAC])
        self._client_id = str(discovery_info.get(CONF_CLIENT_ID, ""))
        await self.async_set_unique_id(mac)
        self._abort_if_unique_id_configured()
        hub = self.hass.data[DATA_HUB]
        found = hub.find_paired(mac)
        if hub.pairing.pending_for(mac, self._client_id) is None:
            return self.async_abort(reason="already_configured" if found else "code_expired")
        # Nothing the requester chose goes into the card title (anyone on the LAN can make a
        # boot check): a reset card names the paired device, a new one only its MAC.
        self.context["title_placeholders"] = {"name": found[1].title if found else mac}
        return await self.async_step_pair()

    async def async_step_pair(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Ask for the code the device speaks and shows, naming the device precisely."""
        hub = self.hass.data[DATA_HUB]
        mac = str(self.unique_id)
        if (pending := hub.pairing.pending_for(mac, self._client_id)) is None:
            return self.async_abort(reason="code_expired")
        errors: dict[str, str] = {}
        if user_input is not None:
            entries = self.hass.config_entries.async_loaded_entries(DOMAIN)
            if not entries:
                return self.async_abort(reason="entry_not_loaded")
            result = hub.pairing.check_code(mac, str(user_input[CONF_CODE]), self._client_id)
            if result is PairingResult.OK:
                title = pending.title
                data = hub.pairing.approve(mac)
                if (found := hub.find_paired(mac)) is not None:
                    # A reset device: the new token replaces the old one, which stops working.
                    entry, subentry = found
                    hub.logins.replaced(str(subentry.data.get(CONF_TOKEN_HASH, "")))
                    # Its connection is closed by the entry, which sees the new token.
                    self.hass.config_entries.async_update_subentry(
                        entry, subentry, data={**subentry.data, **data}
                    )
                    title = subentry.title
                else:
                    self.hass.config_entries.async_add_subentry(
                        entries[0],
                        ConfigSubentry(
                            data=MappingProxyType(data),
                            subentry_type=SUBENTRY_DEVICE,
                            title=title,
                            unique_id=mac,
                        ),
                    )
                return self.async_abort(
                    reason="device_paired", description_placeholders={"name": title}
                )
            errors["base"] = result.value
        board = pending.board
        if pending.reset and (found := hub.find_paired(mac)) is not None:
            # "<board> is paired, but ...": the board as it was paired, not as now claimed.
            board = str(found[1].data.get(CONF_BOARD) or board)
        return self.async_show_form(
            step_id="pair_reset" if pending.reset else "pair",
            data_schema=code_schema(),
            errors=errors,
            description_placeholders={
                "board": board,
                "mac": mac,
                "firmware": pending.firmware or "?",
                "client_id": pending.client_id_start,
            },
        )

    async def async_step_pair_reset(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """The same, for a paired device that was reset (erased or reflashed)."""
        return await self.async_step_pair(user_input)


class OpenAIRealtimeOptionsFlow(OptionsFlowWithReload):
    """Tune what is entry-wide: the devices' connection and listening, the services the
    assistants may call, the monthly budget. Each agent's settings are in its subentry."""

    async def async_step_init(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Show the entry-wide settings on one form."""
        errors: dict[str, str] = {}
        if user_input is not None:
            options = dict(user_input)
            for key in (CONF_WAKE_WORDS, CONF_DEVICE_WEBSOCKET_URL):
                if not (options.get(key) or "").strip():
                    options.pop(key, None)
            if error := budget_error(options, self.config_entry):
                errors[CONF_MONTHLY_BUDGET] = error
            if not errors:
                return self.async_create_entry(data=options)

        suggested = {**default_options(), **self.config_entry.options}
        if user_input is not None:
            suggested.update(user_input)
        return self.async_show_form(
            step_id="init",
            data_schema=self.add_suggested_values_to_schema(options_schema(), suggested),
            errors=errors,
        )
