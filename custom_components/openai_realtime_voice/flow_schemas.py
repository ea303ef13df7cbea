"""The forms of the config, options, agent and device flows: their selectors and schemas."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from homeassistant.const import CONF_API_KEY, CONF_NAME
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
    BUDGET_ACTIONS,
    CONF_AGENT,
    CONF_BASE_URL,
    CONF_BUDGET_ACTION,
    CONF_BUDGET_MODEL,
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
    CONF_MONTHLY_BUDGET,
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
    DIALECT_GA,
    DIALECTS,
    MAX_LISTENING_TIMEOUT,
    MAX_OUTPUT_TOKENS_LIMIT,
    MAX_SPEED,
    MIN_LISTENING_TIMEOUT,
    MIN_SPEED,
    MODELS,
    NOISE_REDUCTION_LEVELS,
    OPTIONAL_SERVICE_DOMAINS,
    RECOMMENDED_MODEL,
    TRANSCRIPTION_MODELS,
    TURN_DETECTIONS,
    VAD_EAGERNESS_LEVELS,
    VOICES,
)
from .images import MAX_MAX_SIDE, MIN_MAX_SIDE
from .profile import CONF_AREA, CONF_EXTRA_INSTRUCTIONS, CONF_LANGUAGE, CONF_USER
from .vision import CONF_CAMERA


def select(options: tuple[str, ...], key: str, *, custom: bool = False) -> SelectSelector:
    """A translated dropdown; custom values allowed where a free-text name is valid."""
    return SelectSelector(
        SelectSelectorConfig(
            options=list(options),
            translation_key=key,
            custom_value=custom,
            mode=SelectSelectorMode.DROPDOWN,
        )
    )


def number(
    minimum: float,
    maximum: float,
    step: float,
    unit: str | None = None,
    *,
    mode: NumberSelectorMode = NumberSelectorMode.SLIDER,
) -> NumberSelector:
    """A number between `minimum` and `maximum`, in `unit` if it has one."""
    config = NumberSelectorConfig(min=minimum, max=maximum, step=step, mode=mode)
    if unit is not None:
        config["unit_of_measurement"] = unit
    return NumberSelector(config)


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

# Settings that both an agent and a device's profile can set.
SETTING_SELECTORS: Final[dict[str, Any]] = {
    CONF_VOICE: select(VOICES, CONF_VOICE, custom=True),
    CONF_TURN_DETECTION: select(TURN_DETECTIONS, CONF_TURN_DETECTION),
    CONF_VAD_THRESHOLD: number(0.0, 1.0, 0.05),
    CONF_VAD_SILENCE_DURATION_MS: number(100, 3000, 50, "ms"),
    CONF_VAD_EAGERNESS: select(VAD_EAGERNESS_LEVELS, CONF_VAD_EAGERNESS),
    CONF_NOISE_REDUCTION: select(NOISE_REDUCTION_LEVELS, CONF_NOISE_REDUCTION),
    CONF_GREETING: TextSelector(TextSelectorConfig(multiline=True)),
}

# The profile's overrides of its agent's settings, in the order the device form shows them.
PROFILE_SETTINGS: Final = (
    CONF_TURN_DETECTION,
    CONF_VAD_THRESHOLD,
    CONF_VAD_SILENCE_DURATION_MS,
    CONF_VAD_EAGERNESS,
    CONF_NOISE_REDUCTION,
    CONF_GREETING,
)


def _api_key_selector() -> TextSelector:
    return TextSelector(TextSelectorConfig(type=TextSelectorType.PASSWORD))


def connection_schema(with_model: bool) -> probatio.Schema:
    """The API key, base URL and dialect; the model too when an entry is created."""
    schema: dict[Any, Any] = {
        probatio.Required(CONF_API_KEY): _api_key_selector(),
        probatio.Optional(CONF_BASE_URL): TextSelector(
            TextSelectorConfig(type=TextSelectorType.URL)
        ),
        probatio.Required(CONF_DIALECT, default=DIALECT_GA): select(DIALECTS, CONF_DIALECT),
    }
    if with_model:
        schema[probatio.Required(CONF_MODEL, default=RECOMMENDED_MODEL)] = MODEL_SELECTOR
    return probatio.Schema(schema)


def api_key_schema() -> probatio.Schema:
    """A new API key, for reauthentication."""
    return probatio.Schema({probatio.Required(CONF_API_KEY): _api_key_selector()})


def code_schema() -> probatio.Schema:
    """The pairing code a device speaks and shows."""
    return probatio.Schema({probatio.Required(CONF_CODE): TextSelector()})


def pending_devices_schema(devices: list[SelectOptionDict]) -> probatio.Schema:
    """A device waiting for approval, chosen from a list, and its pairing code."""
    return probatio.Schema(
        {
            probatio.Required(CONF_MAC): SelectSelector(
                SelectSelectorConfig(options=devices, mode=SelectSelectorMode.LIST)
            ),
            probatio.Required(CONF_CODE): TextSelector(),
        }
    )


# An unset profile field follows the service's setting, so it must look unset: numbers are boxes
# (a slider always shows a value), the camera a choice whose default says it follows.
PROFILE_SELECTORS: Final[dict[str, Any]] = {
    **SETTING_SELECTORS,
    CONF_VAD_THRESHOLD: number(0.0, 1.0, 0.05, mode=NumberSelectorMode.BOX),
    CONF_VAD_SILENCE_DURATION_MS: number(100, 3000, 50, "ms", mode=NumberSelectorMode.BOX),
}
CAMERA_FOLLOW: Final = "follow"
CAMERA_OFF: Final = "off"


def profile_schema(
    users: list[SelectOptionDict], agents: list[SelectOptionDict]
) -> probatio.Schema:
    """A device's agent, and its profile: its overrides of the agent's settings, user, area and
    camera."""
    return probatio.Schema(
        {
            probatio.Optional(CONF_AGENT): SelectSelector(
                SelectSelectorConfig(options=agents, mode=SelectSelectorMode.DROPDOWN)
            ),
            probatio.Optional(CONF_VOICE): SETTING_SELECTORS[CONF_VOICE],
            probatio.Optional(CONF_EXTRA_INSTRUCTIONS): TemplateSelector(),
            probatio.Optional(CONF_LANGUAGE): TextSelector(),
            **{probatio.Optional(key): PROFILE_SELECTORS[key] for key in PROFILE_SETTINGS},
            probatio.Optional(CONF_USER): SelectSelector(
                SelectSelectorConfig(options=users, mode=SelectSelectorMode.DROPDOWN)
            ),
            probatio.Optional(CONF_AREA): AreaSelector(),
            probatio.Optional(CONF_CAMERA, default=CAMERA_FOLLOW): select(
                (CAMERA_FOLLOW, CAMERA_OFF), CONF_CAMERA
            ),
        }
    )


def profile_from_form(user_input: Mapping[str, Any]) -> dict[str, Any]:
    """The profile to store from the form: empty fields dropped, the camera as off or absent."""
    profile = {k: v for k, v in user_input.items() if v not in (None, "", [])}
    if profile.pop(CONF_CAMERA, CAMERA_FOLLOW) == CAMERA_OFF:
        profile[CONF_CAMERA] = False
    return profile


def profile_to_form(profile: Mapping[str, Any]) -> dict[str, Any]:
    """A stored profile as the form shows it."""
    shown = {k: v for k, v in profile.items() if k != CONF_CAMERA}
    shown[CONF_CAMERA] = CAMERA_OFF if profile.get(CONF_CAMERA) is False else CAMERA_FOLLOW
    return shown


def agent_schema(hass_apis: list[SelectOptionDict]) -> probatio.Schema:
    """A conversation agent's settings; `hass_apis` are the LLM APIs to choose from."""
    box = NumberSelectorMode.BOX
    return probatio.Schema(
        {
            probatio.Required(CONF_NAME): TextSelector(),
            probatio.Required(CONF_MODEL): MODEL_SELECTOR,
            probatio.Required(CONF_VOICE): SETTING_SELECTORS[CONF_VOICE],
            probatio.Optional(CONF_PROMPT): TemplateSelector(),
            probatio.Optional(CONF_LLM_HASS_API): SelectSelector(
                SelectSelectorConfig(options=hass_apis, multiple=True)
            ),
            probatio.Required(CONF_TURN_DETECTION): SETTING_SELECTORS[CONF_TURN_DETECTION],
            probatio.Required(CONF_VAD_THRESHOLD): SETTING_SELECTORS[CONF_VAD_THRESHOLD],
            probatio.Required(CONF_VAD_PREFIX_PADDING_MS): number(0, 2000, 50, "ms"),
            probatio.Required(CONF_VAD_SILENCE_DURATION_MS): SETTING_SELECTORS[
                CONF_VAD_SILENCE_DURATION_MS
            ],
            probatio.Required(CONF_VAD_EAGERNESS): SETTING_SELECTORS[CONF_VAD_EAGERNESS],
            probatio.Required(CONF_NOISE_REDUCTION): SETTING_SELECTORS[CONF_NOISE_REDUCTION],
            probatio.Required(CONF_TRANSCRIPTION_MODEL): select(
                TRANSCRIPTION_MODELS, CONF_TRANSCRIPTION_MODEL, custom=True
            ),
            probatio.Required(CONF_SPEED): number(MIN_SPEED, MAX_SPEED, 0.05),
            probatio.Optional(CONF_MAX_OUTPUT_TOKENS): number(
                1, MAX_OUTPUT_TOKENS_LIMIT, 1, mode=box
            ),
            probatio.Optional(CONF_GREETING): SETTING_SELECTORS[CONF_GREETING],
            probatio.Required(CONF_IMAGE_INPUT): BooleanSelector(),
            probatio.Required(CONF_IMAGE_MAX_SIDE): number(
                MIN_MAX_SIDE, MAX_MAX_SIDE, 64, "px", mode=box
            ),
            probatio.Optional(CONF_PRICES): TextSelector(TextSelectorConfig(multiline=True)),
        }
    )


def options_schema() -> probatio.Schema:
    """The entry-wide settings: where devices connect and how they listen, the services
    allowlist and the monthly budget."""
    box = NumberSelectorMode.BOX
    return probatio.Schema(
        {
            probatio.Optional(CONF_DEVICE_WEBSOCKET_URL): TextSelector(
                TextSelectorConfig(type=TextSelectorType.URL)
            ),
            probatio.Required(CONF_LISTENING_TIMEOUT): number(
                MIN_LISTENING_TIMEOUT, MAX_LISTENING_TIMEOUT, 5, "s", mode=box
            ),
            probatio.Optional(CONF_WAKE_WORDS): TextSelector(),
            probatio.Optional(CONF_SERVICES_ALLOWLIST): SelectSelector(
                SelectSelectorConfig(
                    options=sorted({*DEFAULT_SERVICES_ALLOWLIST, *OPTIONAL_SERVICE_DOMAINS}),
                    multiple=True,
                    custom_value=True,
                    sort=True,
                )
            ),
            probatio.Optional(CONF_MONTHLY_BUDGET): number(0.01, 100000, 0.01, "USD", mode=box),
            probatio.Required(CONF_BUDGET_ACTION): select(BUDGET_ACTIONS, CONF_BUDGET_ACTION),
            probatio.Optional(CONF_BUDGET_MODEL): MODEL_SELECTOR,
        }
    )
