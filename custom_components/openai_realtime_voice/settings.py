"""The stored settings: which are an agent's, their defaults, and the Realtime values they make."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from homeassistant.const import CONF_API_KEY
from homeassistant.helpers import llm

from .const import (
    CONF_BASE_URL,
    CONF_BUDGET_ACTION,
    CONF_BUDGET_MODEL,
    CONF_DIALECT,
    CONF_GREETING,
    CONF_IMAGE_INPUT,
    CONF_IMAGE_MAX_SIDE,
    CONF_LISTENING_TIMEOUT,
    CONF_LLM_HASS_API,
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
    DEFAULT_BUDGET_ACTION,
    DEFAULT_BUDGET_MODEL,
    DEFAULT_IMAGE_INPUT,
    DEFAULT_SERVICES_ALLOWLIST,
    DIALECT_BETA,
    NOISE_REDUCTION_OFF,
    RECOMMENDED_LISTENING_TIMEOUT,
    RECOMMENDED_MODEL,
    RECOMMENDED_NOISE_REDUCTION,
    RECOMMENDED_SPEED,
    RECOMMENDED_TRANSCRIPTION_MODEL,
    RECOMMENDED_TURN_DETECTION,
    RECOMMENDED_VAD_EAGERNESS,
    RECOMMENDED_VAD_PREFIX_PADDING_MS,
    RECOMMENDED_VAD_SILENCE_DURATION_MS,
    RECOMMENDED_VAD_THRESHOLD,
    RECOMMENDED_VOICE,
    TRANSCRIPTION_OFF,
    TURN_DETECTION_SEMANTIC_VAD,
)
from .images import DEFAULT_MAX_SIDE
from .realtime import (
    AuthStyle,
    Dialect,
    FunctionTool,
    Modality,
    NoiseReduction,
    RealtimeEndpoint,
    SemanticVad,
    ServerVad,
    SessionConfig,
    Transcription,
)

AGENT_SETTINGS: Final = (
    CONF_MODEL,
    CONF_VOICE,
    CONF_PROMPT,
    CONF_LLM_HASS_API,
    CONF_TURN_DETECTION,
    CONF_VAD_THRESHOLD,
    CONF_VAD_PREFIX_PADDING_MS,
    CONF_VAD_SILENCE_DURATION_MS,
    CONF_VAD_EAGERNESS,
    CONF_NOISE_REDUCTION,
    CONF_TRANSCRIPTION_MODEL,
    CONF_SPEED,
    CONF_MAX_OUTPUT_TOKENS,
    CONF_GREETING,
    CONF_IMAGE_INPUT,
    CONF_IMAGE_MAX_SIDE,
    CONF_PRICES,
)
"""The settings of one conversation agent (its subentry's data); the rest is entry-wide."""


def recommended_agent() -> dict[str, Any]:
    """The settings a new conversation agent starts with."""
    return {
        CONF_MODEL: RECOMMENDED_MODEL,
        CONF_VOICE: RECOMMENDED_VOICE,
        CONF_PROMPT: llm.DEFAULT_INSTRUCTIONS_PROMPT,
        CONF_LLM_HASS_API: [llm.LLM_API_ASSIST],
        CONF_TURN_DETECTION: RECOMMENDED_TURN_DETECTION,
        CONF_VAD_THRESHOLD: RECOMMENDED_VAD_THRESHOLD,
        CONF_VAD_PREFIX_PADDING_MS: RECOMMENDED_VAD_PREFIX_PADDING_MS,
        CONF_VAD_SILENCE_DURATION_MS: RECOMMENDED_VAD_SILENCE_DURATION_MS,
        CONF_VAD_EAGERNESS: RECOMMENDED_VAD_EAGERNESS,
        CONF_NOISE_REDUCTION: RECOMMENDED_NOISE_REDUCTION,
        CONF_TRANSCRIPTION_MODEL: RECOMMENDED_TRANSCRIPTION_MODEL,
        CONF_SPEED: RECOMMENDED_SPEED,
        CONF_IMAGE_INPUT: DEFAULT_IMAGE_INPUT,
        CONF_IMAGE_MAX_SIDE: DEFAULT_MAX_SIDE,
    }


def default_options() -> dict[str, Any]:
    """The entry-wide settings a new entry starts with (the devices' and the budget's)."""
    return {
        CONF_SERVICES_ALLOWLIST: list(DEFAULT_SERVICES_ALLOWLIST),
        CONF_LISTENING_TIMEOUT: RECOMMENDED_LISTENING_TIMEOUT,
        CONF_BUDGET_ACTION: DEFAULT_BUDGET_ACTION,
        CONF_BUDGET_MODEL: DEFAULT_BUDGET_MODEL,
    }


def split_settings(settings: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Settings of the one-agent shape (version 1 options) as (entry options, agent settings)."""
    agent = {key: value for key, value in settings.items() if key in AGENT_SETTINGS}
    options = {key: value for key, value in settings.items() if key not in AGENT_SETTINGS}
    return options, agent


def endpoint_from_config(data: Mapping[str, Any], model: str | None = None) -> RealtimeEndpoint:
    """Build the connection target from entry data and the chosen model."""
    base_url = data.get(CONF_BASE_URL) or None
    return RealtimeEndpoint(
        api_key=data[CONF_API_KEY],
        model=model or RECOMMENDED_MODEL,
        base_url=base_url,
        auth_style=AuthStyle.for_base_url(base_url),
        dialect=Dialect.BETA if data.get(CONF_DIALECT) == DIALECT_BETA else Dialect.GA,
    )


def session_config(
    options: Mapping[str, Any],
    *,
    instructions: str,
    tools: tuple[FunctionTool, ...] = (),
    modality: Modality = Modality.AUDIO,
    language: str | None = None,
) -> SessionConfig:
    """The Realtime session an entry's options describe.

    Text sessions (the Assist agent) get no turn detection: Home Assistant hands over whole
    messages. Audio sessions (devices) detect turns on the server as the options say.
    """
    turn_detection: ServerVad | SemanticVad | None = None
    noise_reduction = NoiseReduction.NONE
    transcription: Transcription | None = None
    if modality is Modality.AUDIO:
        if options.get(CONF_TURN_DETECTION) == TURN_DETECTION_SEMANTIC_VAD:
            turn_detection = SemanticVad(
                eagerness=options.get(CONF_VAD_EAGERNESS, RECOMMENDED_VAD_EAGERNESS)
            )
        else:
            turn_detection = ServerVad(
                threshold=float(options.get(CONF_VAD_THRESHOLD, RECOMMENDED_VAD_THRESHOLD)),
                prefix_padding_ms=int(
                    options.get(CONF_VAD_PREFIX_PADDING_MS, RECOMMENDED_VAD_PREFIX_PADDING_MS)
                ),
                silence_duration_ms=int(
                    options.get(CONF_VAD_SILENCE_DURATION_MS, RECOMMENDED_VAD_SILENCE_DURATION_MS)
                ),
            )
        level = options.get(CONF_NOISE_REDUCTION, RECOMMENDED_NOISE_REDUCTION)
        if level != NOISE_REDUCTION_OFF:
            noise_reduction = NoiseReduction(level)
        model = options.get(CONF_TRANSCRIPTION_MODEL, RECOMMENDED_TRANSCRIPTION_MODEL)
        if model and model != TRANSCRIPTION_OFF:
            transcription = Transcription(model=model, language=language)
    max_tokens = options.get(CONF_MAX_OUTPUT_TOKENS)
    return SessionConfig(
        instructions=instructions,
        output_modality=modality,
        voice=options.get(CONF_VOICE, RECOMMENDED_VOICE),
        speed=float(options.get(CONF_SPEED, RECOMMENDED_SPEED)),
        turn_detection=turn_detection,
        noise_reduction=noise_reduction,
        transcription=transcription,
        tools=tools,
        max_output_tokens=int(max_tokens) if max_tokens else None,
    )


def transcription_language(language: str | None) -> str | None:
    """The ISO-639-1 code the transcription model takes, from a Home Assistant language."""
    if not language:
        return None
    return language.split("-", 1)[0].split("_", 1)[0].lower() or None
