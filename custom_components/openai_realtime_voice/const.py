"""Constants for the OpenAI Realtime Voice integration."""

from __future__ import annotations

import logging
from typing import Final

DOMAIN: Final = "openai_realtime_voice"
LOGGER = logging.getLogger(__package__)

DEFAULT_TITLE: Final = "OpenAI Realtime"

# Connection (config entry data).
CONF_BASE_URL: Final = "base_url"
CONF_DIALECT: Final = "dialect"

# Conversation agents: config subentries of this type hold the settings of one agent each
# (`AGENT_SETTINGS`); the entry's options hold what is entry-wide.
SUBENTRY_CONVERSATION: Final = "conversation"
CONF_AGENT: Final = "agent"
"""A device subentry's chosen agent: the subentry id of a conversation agent."""

# Settings a user tunes.
CONF_MODEL: Final = "model"
CONF_VOICE: Final = "voice"
CONF_PROMPT: Final = "prompt"
CONF_LLM_HASS_API: Final = "llm_hass_api"
CONF_TURN_DETECTION: Final = "turn_detection"
CONF_VAD_THRESHOLD: Final = "vad_threshold"
CONF_VAD_PREFIX_PADDING_MS: Final = "vad_prefix_padding_ms"
CONF_VAD_SILENCE_DURATION_MS: Final = "vad_silence_duration_ms"
CONF_VAD_EAGERNESS: Final = "vad_eagerness"
CONF_NOISE_REDUCTION: Final = "noise_reduction"
CONF_TRANSCRIPTION_MODEL: Final = "transcription_model"
CONF_SPEED: Final = "speed"
CONF_MAX_OUTPUT_TOKENS: Final = "max_output_tokens"
CONF_GREETING: Final = "greeting"

DIALECT_GA: Final = "ga"
DIALECT_BETA: Final = "beta"
DIALECTS: Final = (DIALECT_GA, DIALECT_BETA)

# The current recommended Realtime model (gpt-realtime and gpt-realtime-mini are deprecated,
# shutting down 2027-01-20). Free text is allowed in the flow for Azure deployments and
# compatible servers.
RECOMMENDED_MODEL: Final = "gpt-realtime-2.1"
MODELS: Final = (
    "gpt-realtime-2.1",
    "gpt-realtime-2.1-mini",
    "gpt-realtime-2",
    "gpt-realtime-1.5",
    "gpt-realtime",
    "gpt-realtime-mini",
)

VOICES: Final = (
    "marin",
    "cedar",
    "alloy",
    "ash",
    "ballad",
    "coral",
    "echo",
    "sage",
    "shimmer",
    "verse",
)
RECOMMENDED_VOICE: Final = "marin"

TURN_DETECTION_SERVER_VAD: Final = "server_vad"
TURN_DETECTION_SEMANTIC_VAD: Final = "semantic_vad"
TURN_DETECTIONS: Final = (TURN_DETECTION_SERVER_VAD, TURN_DETECTION_SEMANTIC_VAD)
RECOMMENDED_TURN_DETECTION: Final = TURN_DETECTION_SERVER_VAD
RECOMMENDED_VAD_THRESHOLD: Final = 0.5
RECOMMENDED_VAD_PREFIX_PADDING_MS: Final = 300
RECOMMENDED_VAD_SILENCE_DURATION_MS: Final = 500
VAD_EAGERNESS_LEVELS: Final = ("auto", "low", "medium", "high")
RECOMMENDED_VAD_EAGERNESS: Final = "auto"

NOISE_REDUCTION_OFF: Final = "off"
NOISE_REDUCTION_LEVELS: Final = (NOISE_REDUCTION_OFF, "near_field", "far_field")
RECOMMENDED_NOISE_REDUCTION: Final = "far_field"

TRANSCRIPTION_OFF: Final = "off"
TRANSCRIPTION_MODELS: Final = (
    "gpt-4o-mini-transcribe",
    "gpt-4o-transcribe",
    "whisper-1",
    TRANSCRIPTION_OFF,
)
RECOMMENDED_TRANSCRIPTION_MODEL: Final = "gpt-4o-mini-transcribe"

MIN_SPEED: Final = 0.25
MAX_SPEED: Final = 1.5
RECOMMENDED_SPEED: Final = 1.0
MAX_OUTPUT_TOKENS_LIMIT: Final = 4096

PROBE_TIMEOUT: Final = 10.0

# xiaozhi devices (ESP32 endpoint).
CONF_DEVICE_WEBSOCKET_URL: Final = "device_websocket_url"
CONF_LISTENING_TIMEOUT: Final = "listening_timeout"
RECOMMENDED_LISTENING_TIMEOUT: Final = 25
"""Seconds without speech (after the last reply) before a device's channel is closed."""
MIN_LISTENING_TIMEOUT: Final = 5
MAX_LISTENING_TIMEOUT: Final = 600
CONF_WAKE_WORDS: Final = "wake_words"
SUBENTRY_DEVICE: Final = "device"
CONF_MAC: Final = "mac"
CONF_CLIENT_ID: Final = "client_id"
CONF_BOARD: Final = "board"
CONF_FIRMWARE: Final = "firmware"
CONF_TOKEN_HASH: Final = "token_hash"  # noqa: S105 - a key name, not a secret
CONF_CODE: Final = "code"
DEVICE_MANUFACTURER: Final = "xiaozhi"
OTA_PATH: Final = "/api/openai_realtime_voice/ota/"
ACTIVATE_PATH: Final = "/api/openai_realtime_voice/ota/activate"
DEVICE_WS_PATH: Final = "/api/openai_realtime_voice/ws"

# "Home Assistant services" LLM API (options): the domains ("light") or services
# ("weather.get_forecasts") the model may call. The hard denylist in services_api/policy.py
# wins over this list.
CONF_SERVICES_ALLOWLIST: Final = "services_allowlist"
DEFAULT_SERVICES_ALLOWLIST: Final = (
    "light",
    "switch",
    "fan",
    "climate",
    "cover",
    "media_player",
    "scene",
    "script",
    "vacuum",
    "humidifier",
    "water_heater",
    "input_boolean",
    "input_button",
    "input_datetime",
    "input_number",
    "input_select",
    "input_text",
    "todo",
    "weather.get_forecasts",
    "calendar.get_events",
    "calendar.create_event",
)

# Usage and cost (options): price overrides, "text_in=4, audio_out=64" in USD per 1M tokens.
CONF_PRICES: Final = "prices"

# A monthly budget (options): the estimated cost, in the USD of the prices, an entry may reach in
# a calendar month, and what happens when it does: devices use the Assist pipeline and typed
# requests are refused, or a cheaper model answers until the month ends.
CONF_MONTHLY_BUDGET: Final = "monthly_budget"
CONF_BUDGET_ACTION: Final = "budget_action"
CONF_BUDGET_MODEL: Final = "budget_model"
BUDGET_ACTION_PIPELINE: Final = "assist_pipeline"
BUDGET_ACTION_CHEAPER_MODEL: Final = "cheaper_model"
BUDGET_ACTIONS: Final = (BUDGET_ACTION_PIPELINE, BUDGET_ACTION_CHEAPER_MODEL)
DEFAULT_BUDGET_ACTION: Final = BUDGET_ACTION_PIPELINE
DEFAULT_BUDGET_MODEL: Final = "gpt-realtime-2.1-mini"
BUDGET_WARNING_SHARE: Final = 0.8

# Offered in the options next to the default allowlist, off unless the user picks them
# (unlock and disarm still need the user's spoken confirmation).
OPTIONAL_SERVICE_DOMAINS: Final = (
    "alarm_control_panel",
    "button",
    "lock",
    "notify",
    "number",
    "select",
    "siren",
    "valve",
)

# Speech bridge (ESP32 devices <-> Realtime): the Home Assistant user whose permissions the
# devices' tool calls run with (none: no user, as for voice satellites).
CONF_DEVICE_USER: Final = "device_user"

# Image input (camera boards and Home Assistant cameras).
CONF_IMAGE_INPUT: Final = "image_input"
DEFAULT_IMAGE_INPUT: Final = True
CONF_IMAGE_MAX_SIDE: Final = "image_max_side"
VISION_PATH: Final = "/api/openai_realtime_voice/vision"
