"""Home Assistant's Assist API runs scenes and scripts too: the same rule for what they reach.

Its `HassTurnOn` and `HassToggle` intents run any exposed scene or script by name, whatever it
contains, and offer no way to ask the user first. When this integration's agents call them, a
scene or script that reaches a lock, alarm panel, valve or access cover, or an entity not
exposed, is refused before the intent runs (the services API's scene and script tools ask the
user instead). The targets are matched the way the intent matches them: by name, area, floor
and domain, among exposed scenes and scripts.
"""

from __future__ import annotations

from typing import Final

from homeassistant.components.homeassistant.exposed_entities import async_should_expose
from homeassistant.core import HomeAssistant, split_entity_id
from homeassistant.helpers import intent, llm

from . import policy, reach
from .targets import device_classes

RUNNING_INTENTS: Final = frozenset({intent.INTENT_TURN_ON, intent.INTENT_TOGGLE})
RUNNABLE_DOMAINS: Final = frozenset({"scene", "script"})


def intent_refusal(
    hass: HomeAssistant, tool: llm.Tool, tool_input: llm.ToolInput, llm_context: llm.LLMContext
) -> llm.ToolResult | None:
    """The refusal of an intent call that would run such a scene or script, else None."""
    while isinstance(tool, llm.NamespacedTool):
        tool = tool.tool
    if not isinstance(tool, llm.IntentTool) or tool.intent_type not in RUNNING_INTENTS:
        return None
    args = tool_input.tool_args
    domains = set(_strings(args.get("domain"))) or set(RUNNABLE_DOMAINS)
    name, area, floor = (_string(args.get(slot)) for slot in ("name", "area", "floor"))
    if not domains & RUNNABLE_DOMAINS or not (name or area or floor):
        return None
    # An area or floor alone runs every scene and script in it too.
    match = intent.async_match_targets(
        hass,
        intent.MatchTargetsConstraints(
            name=name,
            area_name=area,
            floor_name=floor,
            domains=domains & RUNNABLE_DOMAINS,
            assistant=llm_context.assistant,
            allow_duplicate_names=True,
        ),
    )
    if not match.is_match:
        return None
    runs = [state.entity_id for state in match.states]
    reached = reach.reached_through(hass, runs)
    protected = [
        eid
        for eid, device_class in zip(reached, device_classes(hass, reached), strict=True)
        if policy.is_protected(split_entity_id(eid)[0], device_class)
    ]
    hidden = [
        eid
        for eid in reached
        if hass.states.get(eid) is not None
        and not async_should_expose(hass, llm_context.assistant, eid)
    ]
    if not protected and not hidden:
        return None
    return llm.ToolResult(
        data={
            "error": "needs_confirmation",
            "error_text": (
                f"Refused: {name or 'that target'} also acts on locks, alarms, valves, doors or "
                "entities not exposed to you, which needs the user's confirmation, and this "
                "tool cannot ask for it. If a scene or script tool with a confirm argument "
                "is offered, use it."
            ),
        },
        error=True,
    )


def _string(value: object) -> str | None:
    """A slot value that is a non-empty string, else None."""
    return value if isinstance(value, str) and value.strip() else None


def _strings(value: object) -> list[str]:
    """A slot value as a list of strings."""
    values = value if isinstance(value, list) else [value]
    return [item for item in values if isinstance(item, str)]
