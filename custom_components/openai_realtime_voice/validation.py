"""Check the user's own settings against the Realtime service, for the config and agent flows.

The probe (`realtime.async_probe`) opens a session with the settings an agent would use (model,
voice, transcription model, the tools of the chosen LLM APIs) and asks for a one-token,
out-of-band text response, since a wrong model is only refused at the first response. A refusal
is reported on the form field of the setting the service named.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from homeassistant.components import conversation
from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import llm

from .agents import agent_subentries
from .const import (
    CONF_BASE_URL,
    CONF_BUDGET_MODEL,
    CONF_DIALECT,
    CONF_LLM_HASS_API,
    CONF_MODEL,
    CONF_MONTHLY_BUDGET,
    CONF_PRICES,
    CONF_TRANSCRIPTION_MODEL,
    CONF_VOICE,
    DOMAIN,
    LOGGER,
    PROBE_TIMEOUT,
    RECOMMENDED_MODEL,
)
from .realtime import (
    FunctionTool,
    Modality,
    RealtimeAuthError,
    RealtimeError,
    RealtimeInvalidEndpointError,
    RealtimeProtocolError,
    RealtimeQuotaError,
    RealtimeSettingRefused,
    Setting,
    async_probe,
)
from .settings import endpoint_from_config, session_config, transcription_language
from .turn import ToolLoop
from .usage import InvalidPricesError, effective_prices, parse_prices

SETTING_FIELDS: Final = {
    Setting.MODEL: CONF_MODEL,
    Setting.VOICE: CONF_VOICE,
    Setting.TRANSCRIPTION_MODEL: CONF_TRANSCRIPTION_MODEL,
    Setting.TOOLS: CONF_LLM_HASS_API,
}
"""The form field of each setting the service can refuse."""


async def _async_tools(hass: HomeAssistant, options: Mapping[str, Any]) -> tuple[FunctionTool, ...]:
    """The function tools the chosen LLM APIs offer, as a session would send them."""
    if not (api_ids := options.get(CONF_LLM_HASS_API)):
        return ()
    context = llm.LLMContext(
        platform=DOMAIN,
        context=None,
        language=hass.config.language,
        assistant=conversation.DOMAIN,
        device_id=None,
    )
    try:
        api = await llm.async_get_api(hass, api_ids, context)
    except HomeAssistantError as err:
        LOGGER.debug("Not checking the tools of %s: %s", api_ids, err)
        return ()
    return ToolLoop(hass, DOMAIN).offer(api)


async def async_validate_settings(
    hass: HomeAssistant,
    data: Mapping[str, Any],
    options: Mapping[str, Any],
    *,
    fields: frozenset[str] = frozenset(SETTING_FIELDS.values()),
    check_model: bool = True,
) -> dict[str, str]:
    """Open a session with these settings; the form errors (empty when the service took them).

    `fields` are the form's fields: a refused setting without one is reported as a base error.
    `check_model` asks for the one-token response that finds a wrong model.
    """
    config = session_config(
        options,
        instructions="",
        tools=await _async_tools(hass, options),
        modality=Modality.AUDIO,
        language=transcription_language(hass.config.language),
    )
    try:
        endpoint = endpoint_from_config(data, options.get(CONF_MODEL) or RECOMMENDED_MODEL)
        await async_probe(endpoint, config, timeout=PROBE_TIMEOUT, check_model=check_model)
    except RealtimeInvalidEndpointError:
        return {CONF_BASE_URL: "invalid_url"}
    except RealtimeAuthError:
        return {"base": "invalid_auth"}
    except RealtimeQuotaError:
        return {"base": "quota_exceeded"}
    except RealtimeProtocolError:
        # The service refused the legacy beta shape: the form points at the GA protocol.
        return {CONF_DIALECT if CONF_DIALECT in fields else "base": "beta_protocol_disabled"}
    except RealtimeSettingRefused as err:
        LOGGER.debug("The Realtime service refused the %s: %s", err.setting, err)
        field = SETTING_FIELDS[err.setting]
        return {field if field in fields else "base": f"{err.setting}_refused"}
    except RealtimeError as err:
        LOGGER.debug("Cannot connect to the Realtime service: %s", err)
        return {"base": "cannot_connect"}
    except Exception:  # noqa: BLE001 - any other failure is reported as unknown on the form
        LOGGER.exception("Unexpected error while validating the Realtime connection")
        return {"base": "unknown"}
    return {}


def prices_error(settings: dict[str, Any]) -> str | None:
    """Check an agent's price overrides (dropping an empty field); the error key, or None."""
    if not (text := str(settings.get(CONF_PRICES) or "").strip()):
        settings.pop(CONF_PRICES, None)
        return None
    try:
        overrides = parse_prices(text)
    except InvalidPricesError:
        return "invalid_prices"
    if effective_prices(str(settings.get(CONF_MODEL, "")), overrides) is None:
        return "prices_incomplete"
    settings[CONF_PRICES] = text
    return None


def priced(settings: Mapping[str, Any]) -> bool:
    """Whether an agent's model has prices (list prices, or all of them given); its overrides
    were checked by `prices_error`."""
    overrides = parse_prices(settings.get(CONF_PRICES))
    return effective_prices(str(settings.get(CONF_MODEL, "")), overrides) is not None


def budget_error(options: dict[str, Any], entry: ConfigEntry[Any]) -> str | None:
    """Check the entry's budget (dropping an empty one); the error key, or None.

    A budget is held to the estimated cost, so every agent's model must be priced.
    """
    if not options.get(CONF_MONTHLY_BUDGET):
        options.pop(CONF_MONTHLY_BUDGET, None)
        return None
    if not all(priced(agent.data) for agent in agent_subentries(entry)):
        return "budget_needs_prices"
    if not str(options.get(CONF_BUDGET_MODEL) or "").strip():
        options.pop(CONF_BUDGET_MODEL, None)
    return None
