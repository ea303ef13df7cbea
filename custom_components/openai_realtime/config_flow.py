"""Config flow for OpenAI Realtime Voice: connection, reauth, reconfigure and options."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final, override

from homeassistant.config_entries import (
    ConfigEntry,
    ConfigEntryState,
    ConfigFlow,
    ConfigFlowResult,
    ConfigSubentry,
    ConfigSubentryFlow,
    OptionsFlowWithReload,
    SubentryFlowResult,
)
from homeassistant.const import CONF_API_KEY
from homeassistant.core import callback
from homeassistant.data_entry_flow import AbortFlow
from homeassistant.helpers import device_registry as dr, llm
from homeassistant.helpers.selector import (
    AreaSelector,
    BooleanSelector,
    NumberSelector,
    NumberSelectorConfig,
    NumberSelectorMode,
    SelectOptionDict,
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
    TemplateSelector,
    TextSelector,
    TextSelectorConfig,
    TextSelectorType,
)
import probatio

from .const import (
    CONF_BASE_URL,
    CONF_CLIENT_ID,
    CONF_CODE,
    CONF_DEVICE_WEBSOCKET_URL,
    CONF_DIALECT,
    CONF_GREETING,
    CONF_IMAGE_INPUT,
    CONF_IMAGE_MAX_SIDE,
    CONF_LISTENING_TIMEOUT,
    CONF_LLM_HASS_API,
    CONF_MAC,
    CONF_MAX_OUTPUT_TOKENS,
    CONF_MODEL,
    CONF_NOISE_REDUCTION,
    CONF_PRICES,
    CONF_PROMPT,
    CONF_SERVICES_ALLOWLIST,
    CONF_SPEED,
    CONF_TRANSCRIPTION_MODEL,
    CONF_TURN_DETECTION,
    CONF_VAD_EAGERNESS,
    CONF_VAD_PREFIX_PADDING_MS,
    CONF_VAD_SILENCE_DURATION_MS,
    CONF_VAD_THRESHOLD,
    CONF_VOICE,
    CONF_WAKE_WORDS,
    DEFAULT_SERVICES_ALLOWLIST,
    DEFAULT_TITLE,
    DIALECT_GA,
    DIALECTS,
    DOMAIN,
    LOGGER,
    MAX_LISTENING_TIMEOUT,
    MAX_OUTPUT_TOKENS_LIMIT,
    MAX_SPEED,
    MIN_LISTENING_TIMEOUT,
    MIN_SPEED,
    MODELS,
    NOISE_REDUCTION_LEVELS,
    OPTIONAL_SERVICE_DOMAINS,
    PROBE_TIMEOUT,
    RECOMMENDED_MODEL,
    SUBENTRY_DEVICE,
    TRANSCRIPTION_MODELS,
    TURN_DETECTIONS,
    VAD_EAGERNESS_LEVELS,
    VOICES,
)
from .endpoint import DATA_HUB, PairingResult
from .images import MAX_MAX_SIDE, MIN_MAX_SIDE
from .profile import (
    CONF_AREA,
    CONF_EXTRA_INSTRUCTIONS,
    CONF_LANGUAGE,
    CONF_PROFILE,
    CONF_USER,
    profile_of,
    validate_profile,
)
from .realtime import (
    RealtimeAuthError,
    RealtimeConnectionError,
    RealtimeInvalidEndpointError,
    RealtimeProtocolError,
    async_probe,
)
from .settings import default_options, endpoint_from_config
from .usage import InvalidPricesError, effective_prices, parse_prices
from .vision import CONF_CAMERA


def _select(options: tuple[str, ...], key: str, *, custom: bool = False) -> SelectSelector:
    """A translated dropdown; custom values allowed where a free-text name is valid."""
    return SelectSelector(
        SelectSelectorConfig(
            options=list(options),
            translation_key=key,
            custom_value=custom,
            mode=SelectSelectorMode.DROPDOWN,
        )
    )


# Model names are not translated (hassfest's translation keys cannot hold the dots in
# `gpt-realtime-2.1`): the options show the names themselves, their status is in the field's
# description. Any other model or Azure deployment name may be typed.
MODEL_SELECTOR: Final = SelectSelector(
    SelectSelectorConfig(
        options=[SelectOptionDict(value=model, label=model) for model in MODELS],
        custom_value=True,
        mode=SelectSelectorMode.DROPDOWN,
    )
)

# Examples in the base URL's description (hassfest keeps URLs out of translated text).
BASE_URL_PLACEHOLDERS: Final = {
    "azure_url": "https://YOUR-RESOURCE.openai.azure.com/openai/v1",
    "compatible_url": "http://HOST:PORT/v1",
}

# Settings that both the entry's options and a device's profile can set.
SETTING_SELECTORS: Final[dict[str, Any]] = {
    CONF_VOICE: _select(VOICES, CONF_VOICE, custom=True),
    CONF_TURN_DETECTION: _select(TURN_DETECTIONS, CONF_TURN_DETECTION),
    CONF_VAD_THRESHOLD: NumberSelector(
        NumberSelectorConfig(min=0.0, max=1.0, step=0.05, mode=NumberSelectorMode.SLIDER)
    ),
    CONF_VAD_SILENCE_DURATION_MS: NumberSelector(
        NumberSelectorConfig(
            min=100,
            max=3000,
            step=50,
            unit_of_measurement="ms",
            mode=NumberSelectorMode.SLIDER,
        )
    ),
    CONF_VAD_EAGERNESS: _select(VAD_EAGERNESS_LEVELS, CONF_VAD_EAGERNESS),
    CONF_NOISE_REDUCTION: _select(NOISE_REDUCTION_LEVELS, CONF_NOISE_REDUCTION),
    CONF_GREETING: TextSelector(TextSelectorConfig(multiline=True)),
}


def _connection_schema(with_model: bool) -> probatio.Schema:
    schema: dict[Any, Any] = {
        probatio.Required(CONF_API_KEY): TextSelector(
            TextSelectorConfig(type=TextSelectorType.PASSWORD)
        ),
        probatio.Optional(CONF_BASE_URL): TextSelector(
            TextSelectorConfig(type=TextSelectorType.URL)
        ),
        probatio.Required(CONF_DIALECT, default=DIALECT_GA): _select(DIALECTS, CONF_DIALECT),
    }
    if with_model:
        schema[probatio.Required(CONF_MODEL, default=RECOMMENDED_MODEL)] = MODEL_SELECTOR
    return probatio.Schema(schema)


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

    async def _async_validate(self, data: dict[str, Any], model: str) -> dict[str, str]:
        """Open a Realtime session with these settings; map failures to form errors."""
        try:
            await async_probe(endpoint_from_config(data, model), timeout=PROBE_TIMEOUT)
        except RealtimeInvalidEndpointError:
            return {CONF_BASE_URL: "invalid_url"}
        except RealtimeAuthError:
            return {"base": "invalid_auth"}
        except RealtimeProtocolError:
            # The service refused the legacy beta shape: the form points at the GA protocol.
            return {CONF_DIALECT: "beta_protocol_disabled"}
        except RealtimeConnectionError as err:
            LOGGER.debug("Cannot connect to the Realtime service: %s", err)
            return {"base": "cannot_connect"}
        except Exception:  # noqa: BLE001 - any other failure is reported as unknown on the form
            LOGGER.exception("Unexpected error while validating the Realtime connection")
            return {"base": "unknown"}
        return {}

    @override
    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Ask for the API key and endpoint."""
        errors: dict[str, str] = {}
        if user_input is not None:
            data = _clean_connection(user_input)
            self._abort_if_endpoint_configured(data)
            model = user_input.get(CONF_MODEL) or RECOMMENDED_MODEL
            if not (errors := await self._async_validate(data, model)):
                options = default_options()
                options[CONF_MODEL] = model
                return self.async_create_entry(title=DEFAULT_TITLE, data=data, options=options)
        return self.async_show_form(
            step_id="user",
            data_schema=self.add_suggested_values_to_schema(
                _connection_schema(with_model=True), user_input
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
            model = entry.options.get(CONF_MODEL, RECOMMENDED_MODEL)
            if not (errors := await self._async_validate(data, model)):
                return self.async_update_reload_and_abort(entry, data=data)
        return self.async_show_form(
            step_id="reauth_confirm",
            data_schema=probatio.Schema(
                {
                    probatio.Required(CONF_API_KEY): TextSelector(
                        TextSelectorConfig(type=TextSelectorType.PASSWORD)
                    )
                }
            ),
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
            model = entry.options.get(CONF_MODEL, RECOMMENDED_MODEL)
            if not (errors := await self._async_validate(data, model)):
                return self.async_update_reload_and_abort(entry, data=data)
        suggested = user_input if user_input is not None else dict(entry.data)
        return self.async_show_form(
            step_id="reconfigure",
            data_schema=self.add_suggested_values_to_schema(
                _connection_schema(with_model=False), suggested
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
        if (pending := hub.pending_for(mac, self._client_id)) is None:
            paired = hub.find_paired(mac) is not None
            return self.async_abort(reason="already_configured" if paired else "code_expired")
        self.context["title_placeholders"] = {"name": pending.title}
        return await self.async_step_pair()

    async def async_step_pair(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Ask for the code the device speaks and shows, naming the device precisely."""
        hub = self.hass.data[DATA_HUB]
        mac = str(self.unique_id)
        if (pending := hub.pending_for(mac, self._client_id)) is None:
            return self.async_abort(reason="code_expired")
        errors: dict[str, str] = {}
        if user_input is not None:
            entries = self.hass.config_entries.async_loaded_entries(DOMAIN)
            if not entries:
                return self.async_abort(reason="entry_not_loaded")
            result = hub.check_code(mac, str(user_input[CONF_CODE]), self._client_id)
            if result is PairingResult.OK:
                title = pending.title
                data = hub.approve(mac)
                if (found := hub.find_paired(mac)) is not None:
                    # A reset device: the new token replaces the old one, which stops working.
                    entry, subentry = found
                    self.hass.config_entries.async_update_subentry(
                        entry, subentry, data={**subentry.data, **data}
                    )
                    await hub.async_disconnect(mac, "paired again")
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
        return self.async_show_form(
            step_id="pair_reset" if pending.reset else "pair",
            data_schema=_code_schema(),
            errors=errors,
            description_placeholders={
                "board": pending.board,
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


def _code_schema() -> probatio.Schema:
    return probatio.Schema({probatio.Required(CONF_CODE): TextSelector()})


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
            result = hub.check_code(mac, str(user_input[CONF_CODE]), shown)
            if result is PairingResult.OK:
                title = hub.pending[mac].title
                data = hub.approve(mac)
                for flow in self.hass.config_entries.flow.async_progress_by_handler(
                    DOMAIN, match_context={"unique_id": mac}
                ):
                    self.hass.config_entries.flow.async_abort(flow["flow_id"])
                return self.async_create_entry(title=title, data=data, unique_id=mac)
            errors["base"] = result.value
        # A reset device (paired, new Client-Id) is paired again from its discovered card.
        waiting = {p.mac: p for p in hub.pending_devices() if not p.reset}
        if not waiting:
            return self.async_abort(reason="no_pending_devices")
        self._shown = {mac: p.client_id for mac, p in waiting.items()}
        schema = probatio.Schema(
            {
                probatio.Required(CONF_MAC): SelectSelector(
                    SelectSelectorConfig(
                        options=[
                            SelectOptionDict(
                                value=mac,
                                label=f"{p.title} {p.firmware} · {p.client_id_start}…",
                            )
                            for mac, p in waiting.items()
                        ],
                        mode=SelectSelectorMode.LIST,
                    )
                ),
                probatio.Required(CONF_CODE): TextSelector(),
            }
        )
        return self.async_show_form(
            step_id="user",
            data_schema=self.add_suggested_values_to_schema(schema, user_input),
            errors=errors,
        )

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Edit the device's profile: its overrides of the entry-wide settings."""
        entry = self._get_entry()
        subentry = self._get_reconfigure_subentry()
        devices = dr.async_get(self.hass)
        device = devices.async_get_device_by_identifier(
            (DOMAIN, str(subentry.unique_id)), entry.entry_id
        )
        errors: dict[str, str] = {}
        if user_input is not None:
            profile = {
                k: v for k, v in user_input.items() if v not in (None, "", []) and k != CONF_AREA
            }
            if not (errors := validate_profile(profile)):
                if device is not None:
                    devices.async_update_device(device.id, area_id=user_input.get(CONF_AREA))
                return self.async_update_and_abort(
                    entry, subentry, data={**subentry.data, CONF_PROFILE: profile}
                )
        suggested = {**profile_of(subentry), **(user_input or {})}
        if user_input is None and device is not None and device.area_id:
            suggested[CONF_AREA] = device.area_id
        users = [
            SelectOptionDict(value=user.id, label=user.name or user.id)
            for user in await self.hass.auth.async_get_users()
            if not user.system_generated and user.is_active
        ]
        schema = probatio.Schema(
            {
                probatio.Optional(CONF_VOICE): SETTING_SELECTORS[CONF_VOICE],
                probatio.Optional(CONF_EXTRA_INSTRUCTIONS): TemplateSelector(),
                probatio.Optional(CONF_LANGUAGE): TextSelector(),
                **{
                    probatio.Optional(key): SETTING_SELECTORS[key]
                    for key in (
                        CONF_TURN_DETECTION,
                        CONF_VAD_THRESHOLD,
                        CONF_VAD_SILENCE_DURATION_MS,
                        CONF_VAD_EAGERNESS,
                        CONF_NOISE_REDUCTION,
                        CONF_GREETING,
                    )
                },
                probatio.Optional(CONF_USER): SelectSelector(
                    SelectSelectorConfig(options=users, mode=SelectSelectorMode.DROPDOWN)
                ),
                probatio.Optional(CONF_AREA): AreaSelector(),
                probatio.Optional(CONF_CAMERA): BooleanSelector(),
            }
        )
        return self.async_show_form(
            step_id="reconfigure",
            data_schema=self.add_suggested_values_to_schema(schema, suggested),
            errors=errors,
            description_placeholders={"device": subentry.title},
        )


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
            if not errors:
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
        slider = NumberSelectorMode.SLIDER
        return probatio.Schema(
            {
                probatio.Required(CONF_MODEL): MODEL_SELECTOR,
                probatio.Required(CONF_VOICE): SETTING_SELECTORS[CONF_VOICE],
                probatio.Optional(CONF_PROMPT): TemplateSelector(),
                probatio.Optional(CONF_LLM_HASS_API): SelectSelector(
                    SelectSelectorConfig(options=hass_apis, multiple=True)
                ),
                probatio.Required(CONF_TURN_DETECTION): SETTING_SELECTORS[CONF_TURN_DETECTION],
                probatio.Required(CONF_VAD_THRESHOLD): SETTING_SELECTORS[CONF_VAD_THRESHOLD],
                probatio.Required(CONF_VAD_PREFIX_PADDING_MS): NumberSelector(
                    NumberSelectorConfig(
                        min=0, max=2000, step=50, unit_of_measurement="ms", mode=slider
                    )
                ),
                probatio.Required(CONF_VAD_SILENCE_DURATION_MS): SETTING_SELECTORS[
                    CONF_VAD_SILENCE_DURATION_MS
                ],
                probatio.Required(CONF_VAD_EAGERNESS): SETTING_SELECTORS[CONF_VAD_EAGERNESS],
                probatio.Required(CONF_NOISE_REDUCTION): SETTING_SELECTORS[CONF_NOISE_REDUCTION],
                probatio.Required(CONF_TRANSCRIPTION_MODEL): _select(
                    TRANSCRIPTION_MODELS, CONF_TRANSCRIPTION_MODEL, custom=True
                ),
                probatio.Required(CONF_SPEED): NumberSelector(
                    NumberSelectorConfig(min=MIN_SPEED, max=MAX_SPEED, step=0.05, mode=slider)
                ),
                probatio.Optional(CONF_MAX_OUTPUT_TOKENS): NumberSelector(
                    NumberSelectorConfig(
                        min=1, max=MAX_OUTPUT_TOKENS_LIMIT, step=1, mode=NumberSelectorMode.BOX
                    )
                ),
                probatio.Optional(CONF_GREETING): SETTING_SELECTORS[CONF_GREETING],
                probatio.Optional(CONF_DEVICE_WEBSOCKET_URL): TextSelector(
                    TextSelectorConfig(type=TextSelectorType.URL)
                ),
                probatio.Required(CONF_LISTENING_TIMEOUT): NumberSelector(
                    NumberSelectorConfig(
                        min=MIN_LISTENING_TIMEOUT,
                        max=MAX_LISTENING_TIMEOUT,
                        step=5,
                        unit_of_measurement="s",
                        mode=NumberSelectorMode.BOX,
                    )
                ),
                probatio.Optional(CONF_WAKE_WORDS): TextSelector(),
                probatio.Required(CONF_IMAGE_INPUT): BooleanSelector(),
                probatio.Required(CONF_IMAGE_MAX_SIDE): NumberSelector(
                    NumberSelectorConfig(
                        min=MIN_MAX_SIDE,
                        max=MAX_MAX_SIDE,
                        step=64,
                        unit_of_measurement="px",
                        mode=NumberSelectorMode.BOX,
                    )
                ),
                probatio.Optional(CONF_PRICES): TextSelector(TextSelectorConfig(multiline=True)),
                probatio.Optional(CONF_SERVICES_ALLOWLIST): SelectSelector(
                    SelectSelectorConfig(
                        options=sorted({*DEFAULT_SERVICES_ALLOWLIST, *OPTIONAL_SERVICE_DOMAINS}),
                        multiple=True,
                        custom_value=True,
                        sort=True,
                    )
                ),
            }
        )
