"""The tools of the services API: one per allowed service, and a finder for exposed entities."""

from __future__ import annotations

import asyncio
from typing import Any, Final, override

from homeassistant.auth.models import User
from homeassistant.components.conversation import UserContent
from homeassistant.components.conversation.chat_log import current_chat_log
from homeassistant.components.homeassistant.exposed_entities import async_should_expose
from homeassistant.core import Context, HomeAssistant, SupportsResponse, split_entity_id
from homeassistant.exceptions import (
    HomeAssistantError,
    Unauthorized,
)
from homeassistant.helpers import (
    area_registry as ar,
    chat_session,
    config_validation as cv,
    device_registry as dr,
    entity_registry as er,
    intent,
    llm,
)
from homeassistant.helpers.json import json_dumps
from homeassistant.util.json import JsonObjectType, JsonValueType, json_loads_object
import probatio

from ..const import DOMAIN, LOGGER
from . import policy
from .confirm import SPOKEN_DIALOGUE, PendingConfirmations, Verdict, confirm_key
from .spec import CONFIRM, ServiceSpec
from .targets import TargetError, device_classes, vet_call

LIST_ENTITIES_TOOL: Final = "list_exposed_entities"
MAX_LISTED_ENTITIES: Final = 100


def refusal(code: str, message: str) -> llm.ToolResult:
    """An error result the model can read and act on."""
    return llm.ToolResult(data={"error": code, "error_text": message}, error=True)


class ServiceTool(llm.Tool):
    """Call one Home Assistant service on exposed entities, as the calling user."""

    def __init__(
        self,
        spec: ServiceSpec,
        confirmations: PendingConfirmations,
        timeout: float,
        allowlist: frozenset[str],
    ) -> None:
        """Describe the tool from its spec; `allowlist` is what the caller may use."""
        self.spec = spec
        self.name = spec.tool_name
        self.title = spec.title
        self.description = _tool_description(spec)
        self.parameters = spec.parameters
        self.annotations = spec.annotations
        self.integration = DOMAIN
        self._confirmations = confirmations
        self._timeout = timeout
        self._allowlist = allowlist

    @override
    async def async_call(
        self, hass: HomeAssistant, tool_input: llm.ToolInput, llm_context: llm.LLMContext
    ) -> llm.ToolResult:
        """Vet the targets, ask for confirmation when the rules want it, then call the service."""
        spec = self.spec
        # Home Assistant hands tools the model's arguments unvalidated: check them here.
        try:
            args = dict(self.parameters(dict(tool_input.tool_args)))
        except probatio.Invalid as err:
            return refusal("invalid_arguments", f"Invalid arguments: {err}")
        confirmed = bool(args.pop(CONFIRM, False))
        context = llm_context.context or Context()
        try:
            user = await _caller(hass, context)
            vetted = vet_call(
                hass, spec, args, llm_context.assistant, user, allowlist=self._allowlist
            )
        except TargetError as err:
            return refusal(err.code, str(err))

        if vetted.ask_for or policy.needs_confirmation(
            spec.domain, spec.service, device_classes(hass, vetted.entity_ids)
        ):
            key = confirm_key(_conversation_key(llm_context), self.name, args)
            turns = _user_turns()
            spoken = SPOKEN_DIALOGUE.get()
            verdict = self._confirmations.confirm(key, turns, spoken) if confirmed else None
            if verdict is not Verdict.CONFIRMED:
                if verdict is not Verdict.AWAITING_USER:
                    self._confirmations.request(key, turns, spoken)
                return _ask_user(hass, spec, vetted.entity_ids, vetted.ask_for, llm_context)

        return await self._async_run(hass, context, vetted.service_data, vetted.entity_ids)

    async def _async_run(
        self,
        hass: HomeAssistant,
        context: Context,
        service_data: dict[str, Any],
        entity_ids: tuple[str, ...],
    ) -> llm.ToolResult:
        """Call the service (blocking, with a timeout) and report what happened."""
        spec = self.spec
        if not hass.services.has_service(spec.domain, spec.service):
            return refusal("service_not_found", f"{spec.full_name} is not available right now.")
        try:
            supports = hass.services.supports_response(spec.domain, spec.service)
            async with asyncio.timeout(self._timeout):
                response = await hass.services.async_call(
                    spec.domain,
                    spec.service,
                    service_data,
                    blocking=True,
                    context=context,
                    return_response=supports is not SupportsResponse.NONE,
                )
        except TimeoutError:
            return refusal(
                "timeout", f"{spec.full_name} did not finish within {self._timeout:g} s."
            )
        except Unauthorized:
            return refusal(
                "permission_denied",
                f"Refused: the user is not allowed to call {spec.full_name} on these targets.",
            )
        except probatio.Invalid as err:
            return refusal("invalid_arguments", f"Invalid arguments: {err}")
        except HomeAssistantError as err:
            return refusal("failed", str(err) or type(err).__name__)
        except Exception:  # noqa: BLE001 - a faulty integration must not end the conversation
            LOGGER.exception("Unexpected error calling %s", spec.full_name)
            return refusal("failed", f"{spec.full_name} failed with an unexpected error.")

        data: JsonObjectType = {"success": True, "action": spec.full_name}
        if entity_ids:
            data["states"] = {
                eid: state.state for eid in entity_ids if (state := hass.states.get(eid))
            }
        if response is not None:
            data["response"] = json_loads_object(json_dumps(response))
        return llm.ToolResult(data=data)


class ListEntitiesTool(llm.Tool):
    """Find the IDs of exposed entities, so targets can be named exactly."""

    name = LIST_ENTITIES_TOOL
    title = "Find exposed entities"
    description = (
        "List entities exposed to the assistant (entity_id, name, area, state), optionally "
        "filtered by domain, area and name. Use it to find the entity_id to target."
    )
    parameters = probatio.Schema(
        {
            probatio.Optional("domain", description="Entity domain, e.g. light"): cv.string,
            probatio.Optional("area", description="Area name or ID"): cv.string,
            probatio.Optional("name", description="Part of the entity's name"): cv.string,
        }
    )
    annotations = policy.READ_ONLY
    integration = DOMAIN

    @override
    async def async_call(
        self, hass: HomeAssistant, tool_input: llm.ToolInput, llm_context: llm.LLMContext
    ) -> llm.ToolResult:
        """List matching exposed entities (at most MAX_LISTED_ENTITIES)."""
        try:
            args = self.parameters(dict(tool_input.tool_args))
        except probatio.Invalid as err:
            return refusal("invalid_arguments", f"Invalid arguments: {err}")
        area_registry = ar.async_get(hass)
        area_ids: set[str] | None = None
        if area := args.get("area"):
            area_ids = {entry.id for entry in intent.find_areas(area, area_registry)}
            if not area_ids:
                return refusal("unknown_area", f"There is no area {area!r}.")
        name = str(args.get("name") or "").casefold()
        entity_registry = er.async_get(hass)
        device_registry = dr.async_get(hass)
        found: list[JsonValueType] = []
        for state in sorted(hass.states.async_all(args.get("domain")), key=lambda s: s.entity_id):
            if name and name not in state.name.casefold() and name not in state.entity_id:
                continue
            entity_area = _area_of(entity_registry, device_registry, state.entity_id)
            if area_ids is not None and entity_area not in area_ids:
                continue
            if not async_should_expose(hass, llm_context.assistant, state.entity_id):
                continue
            item: dict[str, JsonValueType] = {
                "entity_id": state.entity_id,
                "name": state.name,
                "state": state.state,
            }
            if entity_area and (area_entry := area_registry.async_get_area(entity_area)):
                item["area"] = area_entry.name
            found.append(item)
        data: JsonObjectType = {"entities": found[:MAX_LISTED_ENTITIES]}
        if len(found) > MAX_LISTED_ENTITIES:
            data["truncated"] = len(found) - MAX_LISTED_ENTITIES
        return llm.ToolResult(data=data)


def _tool_description(spec: ServiceSpec) -> str:
    """The tool's description: the service's own words, plus how confirmation works."""
    text = spec.description or spec.title
    if policy.runs_content(spec.domain, spec.service):
        text += (
            " May need the user's confirmation (when what it runs reaches locks, alarms, "
            "valves, doors or entities not exposed): if a call returns confirmation_required, "
            "ask the user, then repeat the call with confirm: true."
        )
    elif spec.confirmable:
        text += (
            " Needs the user's confirmation: the first call returns confirmation_required; "
            "ask the user, then repeat the call with confirm: true."
        )
    return text


async def _caller(hass: HomeAssistant, context: Context) -> User | None:
    """The user the call runs as (None: a system call with full rights)."""
    if context.user_id is None:
        return None
    if (user := await hass.auth.async_get_user(context.user_id)) is None:
        raise TargetError("unknown_user", "Refused: the calling user does not exist.")
    return user


def _conversation_key(llm_context: llm.LLMContext) -> str:
    """What ties a confirmation to its request: the chat session, else the request context."""
    if (session := chat_session.current_session.get()) is not None:
        return session.conversation_id
    if llm_context.context is not None:
        return llm_context.context.id
    return llm_context.device_id or ""


def _user_turns() -> int | None:
    """How many times the user has spoken in the current chat log (None: no chat log)."""
    if (chat_log := current_chat_log.get()) is None:
        return None
    return sum(isinstance(content, UserContent) for content in chat_log.content)


def _ask_user(
    hass: HomeAssistant,
    spec: ServiceSpec,
    entity_ids: tuple[str, ...],
    reached: tuple[str, ...],
    llm_context: llm.LLMContext,
) -> llm.ToolResult:
    """The "ask first" answer: not an error, an instruction to get the user's yes.

    What a scene or script reaches is named when exposed or protected (the user must know a
    door will open); other hidden entities are only counted.
    """
    names: list[JsonValueType] = [_name(hass, eid) for eid in entity_ids]
    LOGGER.debug("%s on %s waits for the user's confirmation", spec.full_name, entity_ids)
    data: JsonObjectType = {
        "status": "confirmation_required",
        "action": spec.full_name,
        "targets": names,
    }
    also = ""
    if reached:
        protected = _protected(hass, reached)
        named: list[JsonValueType] = [
            _name(hass, eid)
            for eid in reached
            if eid in protected or async_should_expose(hass, llm_context.assistant, eid)
        ]
        hidden = len(reached) - len(named)
        data["also_acts_on"] = named
        parts = [", ".join(map(str, named))] if named else []
        if hidden:
            parts.append(f"{hidden} entit{'y' if hidden == 1 else 'ies'} not exposed to you")
        also = f" It also acts on {' and '.join(parts)}."
    data["message"] = (
        f"Not done yet. Ask the user to confirm: {spec.title} for "
        f"{', '.join(map(str, names))}.{also} "
        "Only if they say yes, call this tool again with the same arguments and confirm: true."
    )
    return llm.ToolResult(data=data)


def _name(hass: HomeAssistant, entity_id: str) -> str:
    """An entity's friendly name, else its id."""
    return state.name if (state := hass.states.get(entity_id)) else entity_id


def _protected(hass: HomeAssistant, entity_ids: tuple[str, ...]) -> set[str]:
    """The protected entities among these (access covers need their device class)."""
    return {
        eid
        for eid, device_class in zip(entity_ids, device_classes(hass, entity_ids), strict=True)
        if policy.is_protected(split_entity_id(eid)[0], device_class)
    }


def _area_of(
    entity_registry: er.EntityRegistry, device_registry: dr.DeviceRegistry, entity_id: str
) -> str | None:
    """The entity's area, or its device's."""
    if (entry := entity_registry.async_get(entity_id)) is None:
        return None
    if entry.area_id:
        return entry.area_id
    if entry.device_id and (device := device_registry.async_get(entry.device_id)):
        return device.area_id
    return None
