"""A safe "Home Assistant services" LLM API: allowed services as tools, on exposed entities only.

Registered once per Home Assistant (not per entry) so any agent and HA's MCP server can select it.
Which services it offers follows an allowlist, minus a hard denylist: this integration's agents
(the Assist agent, the devices) use their own entry's allowlist (`agent_allowlist`); any other
caller gets only what every loaded entry allows, so no entry widens what another's agents call.
Every call is vetted for exposure and the caller's permissions, runs blocking with a timeout and
hands back the service's response data; access-granting calls are confirmed first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Final, override

from homeassistant.core import HomeAssistant, SupportsResponse, callback
from homeassistant.helpers import llm, service as service_helper, translation

from ..const import (
    CONF_LLM_HASS_API,
    CONF_SERVICES_ALLOWLIST,
    DEFAULT_SERVICES_ALLOWLIST,
    DOMAIN,
    LOGGER,
)
from . import policy
from .camera import LookAtCameraTool
from .confirm import SPOKEN_DIALOGUE, PendingConfirmations, SpokenDialogue
from .spec import ServiceSpec, UnsupportedServiceError, build_spec
from .targets import script_entity_exposed
from .tools import LIST_ENTITIES_TOOL, ListEntitiesTool, ServiceTool

__all__ = [
    "API_ID",
    "API_NAME",
    "SPOKEN_DIALOGUE",
    "ServicesAPI",
    "SpokenDialogue",
    "agent_allowlist",
    "agent_camera_side",
    "async_register_services_api",
    "configured_allowlist",
    "entry_allowlist",
]

API_ID: Final = f"{DOMAIN}.services"
API_NAME: Final = "Home Assistant services"
CALL_TIMEOUT: Final = 30.0
PROMPT_BUDGET: Final = 1500

_PROMPT_HEAD: Final = (
    "These tools call Home Assistant actions directly. Only entities exposed to the assistant "
    "can be targeted: use entity_id (find IDs with "
    f"{LIST_ENTITIES_TOOL}), or area_id, floor_id, label_id by ID or name. Targets outside "
    "that are refused; tell the user why. If a tool returns confirmation_required, ask the "
    "user and repeat the call with confirm: true only after they agree."
)


@callback
def async_register_services_api(hass: HomeAssistant) -> Callable[[], None]:
    """Register the services API with Home Assistant; return the callback that removes it."""
    return llm.async_register_api(hass, ServicesAPI(hass))


@dataclass(frozen=True, slots=True)
class _AgentScope:
    """What one of this integration's agents may be offered: its entry's allowlist, the long
    side snapshots are scaled to when that entry allows image input (else None), and whether
    the agent uses the Assist API, which then offers `look_at_camera` (see `llm.py`)."""

    allowlist: frozenset[str]
    image_side: int | None
    camera_in_assist: bool


_AGENT_SCOPE: ContextVar[_AgentScope | None] = ContextVar(f"{DOMAIN}_agent_scope", default=None)


def entry_allowlist(options: Mapping[str, Any]) -> frozenset[str]:
    """The allowlist an entry's options set (the default when they set none)."""
    configured = options.get(CONF_SERVICES_ALLOWLIST)
    if not isinstance(configured, list):
        configured = list(DEFAULT_SERVICES_ALLOWLIST)
    return policy.parse_allowlist(configured)


@contextmanager
def agent_allowlist(options: Mapping[str, Any], *, image_side: int | None = None) -> Iterator[None]:
    """While open, API instances built in this context offer what these options allow.

    This integration's agents wrap `ChatLog.async_provide_llm_data` in it, so each uses its
    own entry's allowlist. `image_side` (set when the entry allows image input) offers
    `look_at_camera`: only these agents can put the snapshot into their Realtime session, so
    no other caller is offered it. An agent that uses the Assist API finds the tool there
    (this integration's LLM tools platform); this API offers it only to agents without Assist,
    so the model never sees it twice.
    """
    apis = options.get(CONF_LLM_HASS_API) or []
    in_assist = llm.LLM_API_ASSIST in ([apis] if isinstance(apis, str) else apis)
    token = _AGENT_SCOPE.set(_AgentScope(entry_allowlist(options), image_side, in_assist))
    try:
        yield
    finally:
        _AGENT_SCOPE.reset(token)


def agent_camera_side() -> int | None:
    """The snapshot side of the agent being served, when it may look at cameras through Assist.

    None outside one of this integration's agents, when its entry has image input off, or when
    the agent does not use the Assist API.
    """
    scope = _AGENT_SCOPE.get()
    if scope is None or not scope.camera_in_assist:
        return None
    return scope.image_side


@callback
def configured_allowlist(hass: HomeAssistant) -> frozenset[str]:
    """What every loaded entry allows (their intersection), else the default.

    For callers that are not one of this integration's agents (other agents, HA's MCP server).
    """
    allowlists = [
        entry_allowlist(entry.options) for entry in hass.config_entries.async_loaded_entries(DOMAIN)
    ]
    if not allowlists:
        return policy.parse_allowlist(DEFAULT_SERVICES_ALLOWLIST)
    return _allowed_by_all(allowlists)


def _allowed_by_all(allowlists: list[frozenset[str]]) -> frozenset[str]:
    """The domains and services every allowlist allows (a domain covers its services)."""
    candidates = frozenset().union(*allowlists)
    return frozenset(
        item
        for item in candidates
        if all(item in allowlist or item.partition(".")[0] in allowlist for allowlist in allowlists)
    )


class ServicesAPI(llm.API):
    """The LLM API that offers the allowed Home Assistant services as tools."""

    def __init__(self, hass: HomeAssistant, *, call_timeout: float = CALL_TIMEOUT) -> None:
        """Create the API; confirmations and built specs live as long as it does."""
        super().__init__(hass=hass, id=API_ID, name=API_NAME)
        self.confirmations = PendingConfirmations()
        self._call_timeout = call_timeout
        # (domain, service) -> (the description it was built from, spec or None if unsupported)
        self._specs: dict[tuple[str, str], tuple[Mapping[str, Any], ServiceSpec | None]] = {}

    @override
    async def async_get_api_instance(self, llm_context: llm.LLMContext) -> llm.APIInstance:
        """Build the tools for the services allowed now, and the prompt that lists them."""
        scope = _AGENT_SCOPE.get()
        allowlist = configured_allowlist(self.hass) if scope is None else scope.allowlist
        specs = await self._async_allowed_specs(llm_context, allowlist)
        tools: list[llm.Tool] = [
            ServiceTool(spec, self.confirmations, self._call_timeout, allowlist) for spec in specs
        ]
        tools.append(ListEntitiesTool())
        if scope is not None and scope.image_side is not None and not scope.camera_in_assist:
            tools.append(LookAtCameraTool(scope.image_side))
        return llm.APIInstance(
            api=self,
            api_prompt=build_prompt(specs),
            llm_context=llm_context,
            tools=tools,
            custom_serializer=llm.selector_serializer,
        )

    async def _async_allowed_specs(
        self, llm_context: llm.LLMContext, allowlist: frozenset[str]
    ) -> list[ServiceSpec]:
        """The specs of every allowed, offerable service, sorted by name."""
        descriptions = await service_helper.async_get_all_descriptions(self.hass)
        wanted = [
            (domain, service, description)
            for domain, services in descriptions.items()
            for service, description in services.items()
            if policy.is_allowed(allowlist, domain, service)
        ]
        translations = await translation.async_get_translations(
            self.hass, "en", "services", {domain for domain, _, _ in wanted}
        )
        specs: list[ServiceSpec] = []
        for domain, service, description in sorted(wanted, key=lambda item: item[:2]):
            spec = self._spec(domain, service, description, translations)
            if spec is None:
                continue
            if (
                domain == "script"
                and not spec.targeted
                and not script_entity_exposed(self.hass, service, llm_context.assistant)
            ):
                continue
            specs.append(spec)
        return specs

    def _spec(
        self,
        domain: str,
        service: str,
        description: Mapping[str, Any],
        translations: Mapping[str, str],
    ) -> ServiceSpec | None:
        """A service's spec, rebuilt only when its description object changes."""
        cached = self._specs.get((domain, service))
        if cached is not None and cached[0] is description:
            return cached[1]
        spec: ServiceSpec | None
        try:
            spec = build_spec(
                domain,
                service,
                description,
                translations,
                _supports_response(description),
            )
        except UnsupportedServiceError as err:
            LOGGER.debug("Not offering %s.%s: %s", domain, service, err)
            spec = None
        self._specs[(domain, service)] = (description, spec)
        return spec


def _supports_response(description: Mapping[str, Any]) -> SupportsResponse:
    """Whether the service returns data, as its description says."""
    if not isinstance(response := description.get("response"), Mapping):
        return SupportsResponse.NONE
    return SupportsResponse.OPTIONAL if response.get("optional") else SupportsResponse.ONLY


def build_prompt(specs: Iterable[ServiceSpec], budget: int = PROMPT_BUDGET) -> str:
    """The API prompt: how to use the tools, then the services in one line each, within budget."""
    lines = [_PROMPT_HEAD, "Available actions:"]
    used = sum(len(line) + 1 for line in lines)
    specs = list(specs)
    for index, spec in enumerate(specs):
        line = f"- {spec.full_name}: {spec.title}"
        remaining = len(specs) - index - 1
        reserve = len(f"... and {len(specs)} more") + 1 if remaining else 0
        if used + len(line) + 1 + reserve > budget:
            lines.append(f"... and {len(specs) - index} more")
            break
        lines.append(line)
        used += len(line) + 1
    if not specs:
        lines[-1] = "No actions are allowed right now."
    return "\n".join(lines)
