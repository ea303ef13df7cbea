"""Actions: speak on, ask through and start conversations on paired voice devices."""

from __future__ import annotations

import asyncio
from typing import Any, Final

from homeassistant.const import ATTR_DEVICE_ID, ATTR_ENTITY_ID
from homeassistant.core import (
    HomeAssistant,
    ServiceCall,
    ServiceResponse,
    SupportsResponse,
    callback,
)
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import (
    config_validation as cv,
    device_registry as dr,
    entity_registry as er,
)
import probatio

from .bridge import SpeechBridge, async_device_action, serving
from .const import DOMAIN
from .models import find_home

SERVICE_SPEAK: Final = "speak"
SERVICE_ASK: Final = "ask"
SERVICE_CONVERSE: Final = "converse"

ATTR_MESSAGE: Final = "message"
ATTR_PROMPT: Final = "prompt"
ATTR_INSTRUCTIONS: Final = "instructions"
ATTR_INTERRUPT: Final = "interrupt"
ATTR_REMEMBER: Final = "remember"
ATTR_QUESTION: Final = "question"
ATTR_OPTIONS: Final = "options"
ATTR_TIMEOUT: Final = "timeout"

_TARGET: Final = {
    probatio.Optional(ATTR_DEVICE_ID): cv.ensure_list_csv,
    probatio.Optional(ATTR_ENTITY_ID): cv.entity_ids,
}
SPEAK_SCHEMA: Final = probatio.Schema(
    {
        **_TARGET,
        probatio.Optional(ATTR_MESSAGE): cv.string,
        probatio.Optional(ATTR_PROMPT): cv.string,
        probatio.Optional(ATTR_INSTRUCTIONS): cv.string,
        probatio.Optional(ATTR_INTERRUPT, default=False): cv.boolean,
        probatio.Optional(ATTR_REMEMBER, default=False): cv.boolean,
    }
)
ASK_SCHEMA: Final = probatio.Schema(
    {
        **_TARGET,
        probatio.Required(ATTR_QUESTION): cv.string,
        probatio.Optional(ATTR_OPTIONS): probatio.All(cv.ensure_list, [cv.string]),
        probatio.Optional(ATTR_INSTRUCTIONS): cv.string,
        probatio.Optional(ATTR_TIMEOUT, default=15): probatio.All(
            probatio.Coerce(float), probatio.Range(min=3, max=120)
        ),
    }
)
CONVERSE_SCHEMA: Final = probatio.Schema(
    {
        **_TARGET,
        probatio.Optional(ATTR_MESSAGE): cv.string,
        probatio.Optional(ATTR_INSTRUCTIONS): cv.string,
    }
)


def _device_ids(hass: HomeAssistant, call: ServiceCall) -> list[str]:
    """The Home Assistant device ids a call targets, satellites resolved to their devices."""
    device_ids: list[str] = list(call.data.get(ATTR_DEVICE_ID, []))
    entities = er.async_get(hass)
    for entity_id in call.data.get(ATTR_ENTITY_ID, []):
        entry = entities.async_get(entity_id)
        if entry is None or entry.platform != DOMAIN or entry.device_id is None:
            raise ServiceValidationError(
                translation_domain=DOMAIN,
                translation_key="not_a_voice_device",
                translation_placeholders={"target": entity_id},
            )
        device_ids.append(entry.device_id)
    if not device_ids:
        raise ServiceValidationError(translation_domain=DOMAIN, translation_key="no_target")
    return list(dict.fromkeys(device_ids))


def _bridges(hass: HomeAssistant, call: ServiceCall) -> list[SpeechBridge]:
    """The speech bridges of the targeted devices; every device must be in a conversation.

    An idle stock board cannot be reached: it opens its WebSocket only when it is woken.
    """
    devices = dr.async_get(hass)
    bridges: list[SpeechBridge] = []
    for device_id in _device_ids(hass, call):
        device = devices.async_get(device_id)
        mac = next(
            (value for domain, value in (device.identifiers if device else ()) if domain == DOMAIN),
            None,
        )
        if device is None or mac is None or (found := find_home(hass, mac)) is None:
            raise ServiceValidationError(
                translation_domain=DOMAIN,
                translation_key="not_a_voice_device",
                translation_placeholders={"target": device_id},
            )
        if (bridge := serving(found[1])) is None:
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="device_idle",
                translation_placeholders={"device": device.name_by_user or device.name or mac},
            )
        bridges.append(bridge)
    return bridges


async def _async_speak(call: ServiceCall) -> None:
    message = call.data.get(ATTR_MESSAGE)
    prompt = call.data.get(ATTR_PROMPT)
    if bool(message) == bool(prompt):
        raise ServiceValidationError(translation_domain=DOMAIN, translation_key="message_or_prompt")
    bridges = _bridges(call.hass, call)
    await asyncio.gather(
        *(
            async_device_action(
                bridge,
                bridge.async_speak(
                    message=message,
                    prompt=prompt,
                    instructions=call.data.get(ATTR_INSTRUCTIONS),
                    interrupt=call.data[ATTR_INTERRUPT],
                    remember=call.data[ATTR_REMEMBER],
                ),
            )
            for bridge in bridges
        )
    )


async def _async_ask(call: ServiceCall) -> ServiceResponse:
    bridges = _bridges(call.hass, call)
    if len(bridges) != 1:
        raise ServiceValidationError(translation_domain=DOMAIN, translation_key="one_device")
    result: dict[str, Any] = await async_device_action(
        bridges[0],
        bridges[0].async_ask(
            call.data[ATTR_QUESTION],
            options=call.data.get(ATTR_OPTIONS),
            instructions=call.data.get(ATTR_INSTRUCTIONS),
            answer_timeout=call.data[ATTR_TIMEOUT],
        ),
    )
    return result


async def _async_converse(call: ServiceCall) -> None:
    bridges = _bridges(call.hass, call)
    await asyncio.gather(
        *(
            async_device_action(
                bridge,
                bridge.async_converse(
                    call.data.get(ATTR_MESSAGE), call.data.get(ATTR_INSTRUCTIONS)
                ),
            )
            for bridge in bridges
        )
    )


@callback
def async_setup_services(hass: HomeAssistant) -> None:
    """Register the integration's actions (once, in async_setup)."""
    hass.services.async_register(DOMAIN, SERVICE_SPEAK, _async_speak, schema=SPEAK_SCHEMA)
    hass.services.async_register(
        DOMAIN,
        SERVICE_ASK,
        _async_ask,
        schema=ASK_SCHEMA,
        supports_response=SupportsResponse.ONLY,
    )
    hass.services.async_register(DOMAIN, SERVICE_CONVERSE, _async_converse, schema=CONVERSE_SCHEMA)
