"""Config flow for OpenAI Realtime Voice: connection, reauth, reconfigure, pairing, options.

The device subentry flow is in `subentry_flow.py`, the forms of all flows in `flow_schemas.py`.
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
from homeassistant.helpers import llm
from homeassistant.helpers.selector import SelectOptionDict
import probatio

from .const import (
    CONF_BASE_URL,
    CONF_BOARD,
    CONF_BUDGET_MODEL,
    CONF_CLIENT_ID,
    CONF_CODE,
    CONF_DIALECT,
    CONF_GREETING,
    CONF_LLM_HASS_API,
    CONF_MAC,
    CONF_MAX_OUTPUT_TOKENS,
    CONF_MODEL,
    CONF_MONTHLY_BUDGET,
    CONF_PRICES,
    CONF_TOKEN_HASH,
    CONF_VOICE,
    CONF_WAKE_WORDS,
    DEFAULT_TITLE,
    DIALECT_GA,
    DOMAIN,
    RECOMMENDED_MODEL,
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
from .repairs import async_setting_issue
from .settings import default_options
from .subentry_flow import DeviceSubentryFlow
from .usage import InvalidPricesError, effective_prices, parse_prices
from .validation import async_validate_settings


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

    VERSION = 1
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
        self, data: dict[str, Any], options: dict[str, Any], *fields: str
    ) -> dict[str, str]:
        """Open a Realtime session with these settings; map failures to form errors.

        A new entry's own settings are checked, its model with a one-token response; reauth and
        reconfigure check the connection with the entry's model.
        """
        return await async_validate_settings(
            self.hass,
            data,
            options,
            fields=frozenset(fields),
            check_model=CONF_VOICE in options,
        )

    @override
    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Ask for the API key and endpoint."""
        errors: dict[str, str] = {}
        if user_input is not None:
            data = _clean_connection(user_input)
            self._abort_if_endpoint_configured(data)
            options = default_options()
            options[CONF_MODEL] = user_input.get(CONF_MODEL) or RECOMMENDED_MODEL
            fields = (CONF_BASE_URL, CONF_DIALECT, CONF_MODEL)
            if not (errors := await self._async_validate(data, options, *fields)):
                return self.async_create_entry(title=DEFAULT_TITLE, data=data, options=options)
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
            model = {CONF_MODEL: entry.options.get(CONF_MODEL, RECOMMENDED_MODEL)}
            if not (errors := await self._async_validate(data, model)):
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
            model = {CONF_MODEL: entry.options.get(CONF_MODEL, RECOMMENDED_MODEL)}
            fields = (CONF_BASE_URL, CONF_DIALECT)
            if not (errors := await self._async_validate(data, model, *fields)):
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
        """Devices are paired as subentries of the service entry."""
        return {SUBENTRY_DEVICE: DeviceSubentryFlow}

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


def _prices_error(options: dict[str, Any]) -> str | None:
    """Check the price overrides (dropping an empty field); the error key, or None."""
    if not (text := str(options.get(CONF_PRICES) or "").strip()):
        options.pop(CONF_PRICES, None)
        return None
    try:
        overrides = parse_prices(text)
    except InvalidPricesError:
        return "invalid_prices"
    if effective_prices(str(options.get(CONF_MODEL, "")), overrides) is None:
        return "prices_incomplete"
    options[CONF_PRICES] = text
    return None


def _budget_error(options: dict[str, Any]) -> str | None:
    """Check the budget (dropping an empty one); the error key, or None.

    A budget is held to the estimated cost, so the model must be priced.
    """
    if not options.get(CONF_MONTHLY_BUDGET):
        options.pop(CONF_MONTHLY_BUDGET, None)
        return None
    overrides = parse_prices(options.get(CONF_PRICES))  # checked by _prices_error first
    if effective_prices(str(options.get(CONF_MODEL, "")), overrides) is None:
        return "budget_needs_prices"
    if not str(options.get(CONF_BUDGET_MODEL) or "").strip():
        options.pop(CONF_BUDGET_MODEL, None)
    return None


class OpenAIRealtimeOptionsFlow(OptionsFlowWithReload):
    """Tune the model, voice, instructions, tools and turn detection."""

    async def async_step_init(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Show every setting on one form."""
        errors: dict[str, str] = {}
        if user_input is not None:
            options = dict(user_input)
            if not options.get(CONF_LLM_HASS_API):
                options.pop(CONF_LLM_HASS_API, None)
            if not (options.get(CONF_GREETING) or "").strip():
                options.pop(CONF_GREETING, None)
            if not options.get(CONF_MAX_OUTPUT_TOKENS):
                options.pop(CONF_MAX_OUTPUT_TOKENS, None)
            if not (options.get(CONF_WAKE_WORDS) or "").strip():
                options.pop(CONF_WAKE_WORDS, None)
            if not str(options.get(CONF_MODEL, "")).strip():
                errors[CONF_MODEL] = "model_required"
            if error := _prices_error(options):
                errors[CONF_PRICES] = error
            elif error := _budget_error(options):
                errors[CONF_MONTHLY_BUDGET] = error
            if not errors:
                # The service checks the user's own model, voice, transcription and tools.
                errors = await async_validate_settings(self.hass, self.config_entry.data, options)
            if not errors:
                async_setting_issue(self.hass, self.config_entry, None)  # the service took them
                return self.async_create_entry(data=options)

        suggested = {**default_options(), **self.config_entry.options}
        if user_input is not None:
            suggested.update(user_input)
        return self.async_show_form(
            step_id="init",
            data_schema=self.add_suggested_values_to_schema(self._schema(), suggested),
            errors=errors,
        )

    def _schema(self) -> probatio.Schema:
        hass_apis = [
            SelectOptionDict(label=api.name, value=api.id) for api in llm.async_get_apis(self.hass)
        ]
        return options_schema(hass_apis)
