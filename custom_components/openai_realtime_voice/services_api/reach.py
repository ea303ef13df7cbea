"""What a scene, script or automation reaches: the entities it sets, acts on or checks.

A call that runs a scene, a script or an automation acts on what they contain, which the call's
own target does not show. It is found statically, the way Home Assistant's own "related" search
finds it: a scene's `entity_id` attribute (the entities it sets), a script's or automation's
referenced entities, devices, areas, floors and labels (expanded to their entities, groups
included), through nested scenes, scripts and automations. What is decided at run time (a
templated target, an event, a service named by a template) cannot be seen here.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from typing import Final

from homeassistant.components import automation, script
from homeassistant.const import (
    ATTR_AREA_ID,
    ATTR_DEVICE_ID,
    ATTR_ENTITY_ID,
    ATTR_FLOOR_ID,
    ATTR_LABEL_ID,
)
from homeassistant.core import HomeAssistant, split_entity_id
from homeassistant.helpers import target as target_helpers

COMPOSITE_DOMAINS: Final = frozenset({"scene", "script", "automation"})
MAX_REACHED: Final = 1000
"""Entities followed at most (a bound on the work, far above any real home)."""

type _Finder = Callable[[HomeAssistant, str], list[str]]
_FINDERS: Final[dict[str, dict[str, _Finder]]] = {
    "script": {
        ATTR_ENTITY_ID: script.entities_in_script,
        ATTR_DEVICE_ID: script.devices_in_script,
        ATTR_AREA_ID: script.areas_in_script,
        ATTR_FLOOR_ID: script.floors_in_script,
        ATTR_LABEL_ID: script.labels_in_script,
    },
    "automation": {
        ATTR_ENTITY_ID: automation.entities_in_automation,
        ATTR_DEVICE_ID: automation.devices_in_automation,
        ATTR_AREA_ID: automation.areas_in_automation,
        ATTR_FLOOR_ID: automation.floors_in_automation,
        ATTR_LABEL_ID: automation.labels_in_automation,
    },
}


def reached_through(hass: HomeAssistant, entity_ids: Iterable[str]) -> list[str]:
    """The entities the scenes, scripts and automations among `entity_ids` reach (not those)."""
    seen = set(entity_ids)
    queue = deque(eid for eid in seen if split_entity_id(eid)[0] in COMPOSITE_DOMAINS)
    found: list[str] = []
    while queue and len(found) < MAX_REACHED:
        for reached in _contents(hass, queue.popleft()):
            if reached in seen:
                continue
            seen.add(reached)
            found.append(reached)
            if split_entity_id(reached)[0] in COMPOSITE_DOMAINS:
                queue.append(reached)
    return sorted(found)


def _contents(hass: HomeAssistant, entity_id: str) -> set[str]:
    """The entities one scene, script or automation names, directly or through a target."""
    domain = split_entity_id(entity_id)[0]
    if domain == "scene":
        state = hass.states.get(entity_id)
        named = state.attributes.get(ATTR_ENTITY_ID) if state is not None else None
        return {eid for eid in named if isinstance(eid, str)} if isinstance(named, list) else set()
    finders = _FINDERS[domain]
    referenced = {key: list(find(hass, entity_id)) for key, find in finders.items()}
    selected = target_helpers.async_extract_referenced_entity_ids(
        hass, target_helpers.TargetSelection(referenced), True
    )
    return {
        eid.lower()
        for eid in (
            *referenced[ATTR_ENTITY_ID],
            *selected.referenced,
            *selected.indirectly_referenced,
        )
    }
