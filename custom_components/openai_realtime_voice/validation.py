"""Check the user's own settings against the Realtime service, for the config and options flows.

The probe (`realtime.async_probe`) opens a session with the settings the entry would use (model,
voice, transcription model, the tools of the chosen LLM APIs) and asks for a one-token,
out-of-band text response, since a wrong model is only refused at the first response. A refusal
is reported on the form field of the setting the service named.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from homeassistant.components import conversation
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import llm

from .const import (
    CONF_BASE_URL,
    CONF_DIALECT,
    CONF_LLM_HASS_API,
    CONF_MODEL,
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
