"""Turn a tool call's targets into the exact entities it will act on, and vet each of them.

Areas, floors, labels, devices and groups are expanded with HA's own target helper, kept to the
entities the service works on, and the call is then made with that explicit entity list: what
Home Assistant acts on is exactly what was checked for exposure and user permission.

An entity the model names itself gets the same answer whether it does not exist or is not
exposed, and before any other check, so the model cannot probe for hidden entities. Media ids
anywhere in the call's data are vetted too (`media.py`): media-source ids that name an entity
need it exposed, and paths Home Assistant would sign for a player (its camera proxies, its
API) are refused.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from homeassistant.auth.models import User
from homeassistant.auth.permissions.const import POLICY_CONTROL
from homeassistant.components.homeassistant.exposed_entities import async_should_expose
from homeassistant.const import (
    ATTR_AREA_ID,
    ATTR_DEVICE_CLASS,
    ATTR_DEVICE_ID,
    ATTR_ENTITY_ID,
    ATTR_FLOOR_ID,
    ATTR_LABEL_ID,
    ATTR_SUPPORTED_FEATURES,
    ENTITY_MATCH_ALL,
    ENTITY_MATCH_NONE,
    STATE_UNAVAILABLE,
)
from homeassistant.core import HomeAssistant, split_entity_id
from homeassistant.helpers import (
    area_registry as ar,
    device_registry as dr,
    entity_registry as er,
    floor_registry as fr,
    group,
    intent,
    label_registry as lr,
    target as target_helpers,
)

from . import media, policy, reach
from .spec import TARGET_KEYS, ServiceSpec, TargetFilter


class TargetError(Exception):
    """A call the model asked for that we refuse; the message is written for the model."""

    def __init__(self, code: str, message: str) -> None:
        """Keep a short machine code next to the readable message."""
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class Vetted:
    """A call ready to run: its service data and the entities it acts on."""

    service_data: dict[str, Any]
    entity_ids: tuple[str, ...]
    ask_for: tuple[str, ...] = ()
    """What the scenes, scripts or automations it runs reach that the user must agree to:
    protected entities (locks, alarms, valves, access covers) and unexposed ones."""


def vet_call(
    hass: HomeAssistant,
    spec: ServiceSpec,
    args: Mapping[str, Any],
    assistant: str,
    user: User | None,
    *,
    allowlist: frozenset[str],
) -> Vetted:
    """Resolve and check a call's targets and entity fields; raise TargetError to refuse."""
    args = _normalised(spec, args)
    data = {key: value for key, value in args.items() if key not in TARGET_KEYS}
    checked: list[str] = []
    named: set[str] = set()
    if spec.targeted:
        acted_on, groups = _resolve_target(hass, spec, args, assistant)
        data[ATTR_ENTITY_ID] = acted_on
        checked.extend([*groups, *acted_on])
        named.update(_ids(args.get(ATTR_ENTITY_ID, [])))
    for field in spec.entity_fields:
        if field in data:
            checked.extend(_entity_field(hass, field, data[field], assistant))
            named.update(_ids(data[field]))
    media = _media_entities(hass, assistant, data)
    checked.extend(media)
    named.update(media)
    if spec.domain == "script" and not spec.targeted:
        # A script's own service runs that script: it is governed by the script entity.
        script_entity = _script_entity_id(hass, spec.service)
        checked.append(script_entity)
        named.add(script_entity)

    _check_exposed(hass, assistant, checked, named)
    reached: list[str] = []
    if policy.runs_content(spec.domain, spec.service):
        reached = reach.reached_through(hass, checked)
    _check_permission(user, [*checked, *reached])
    return Vetted(
        service_data=data,
        entity_ids=tuple(dict.fromkeys(checked)),
        ask_for=_ask_for(hass, assistant, allowlist, reached),
    )


def _ask_for(
    hass: HomeAssistant, assistant: str, allowlist: frozenset[str], reached: list[str]
) -> tuple[str, ...]:
    """What a scene or script reaches that needs the user's yes; refuse a domain not allowed.

    A protected entity whose domain the allowlist does not name refuses the call: the allowlist
    is not widened by a scene. Unexposed entities are not refused (a scene may well set a
    hidden helper), but the user is asked first.
    """
    protected = [
        eid
        for eid, device_class in zip(reached, device_classes(hass, reached), strict=True)
        if policy.is_protected(split_entity_id(eid)[0], device_class)
    ]
    if refused := sorted(
        {
            domain
            for domain in (split_entity_id(eid)[0] for eid in protected)
            if domain not in allowlist and not any(a.startswith(f"{domain}.") for a in allowlist)
        }
    ):
        raise TargetError(
            "not_allowed",
            f"Refused: this also controls {', '.join(refused)} entities, and {', '.join(refused)} "
            "actions are not allowed for this assistant.",
        )
    hidden = [
        eid
        for eid in reached
        if hass.states.get(eid) is not None and not async_should_expose(hass, assistant, eid)
    ]
    return tuple(dict.fromkeys([*protected, *hidden]))


def device_classes(hass: HomeAssistant, entity_ids: Iterable[str]) -> list[str | None]:
    """The device classes of these entities, for the confirmation rule."""
    return [
        state.attributes.get(ATTR_DEVICE_CLASS) if (state := hass.states.get(eid)) else None
        for eid in entity_ids
    ]


def script_entity_exposed(hass: HomeAssistant, service: str, assistant: str) -> bool:
    """Return True if the script behind a `script.<name>` service is exposed."""
    return async_should_expose(hass, assistant, _script_entity_id(hass, service))


def _script_entity_id(hass: HomeAssistant, service: str) -> str:
    """The entity of a script service (the service is named by the script's unique id)."""
    return er.async_get(hass).async_get_entity_id("script", "script", service) or (
        f"script.{service}"
    )


def normalise_entity_id(entity_id: str) -> str:
    """An entity id as Home Assistant stores it: entity ids are lower case, without spaces.

    Every lookup uses this form, so `climate.Ecobee` is `climate.ecobee` (hidden or not) and
    never an id unknown to the entity registry, which the exposure store would record.
    """
    return entity_id.strip().lower()


def _normalised(spec: ServiceSpec, args: Mapping[str, Any]) -> dict[str, Any]:
    """The arguments with the entity ids of the target and entity fields normalised."""
    keys = {*spec.entity_fields, ATTR_ENTITY_ID} if spec.targeted else set(spec.entity_fields)
    return {key: _normalise(value) if key in keys else value for key, value in args.items()}


def _normalise(value: Any) -> Any:
    """Entity ids (a string or a list of them) normalised; anything else as it is."""
    if isinstance(value, str):
        return normalise_entity_id(value)
    if isinstance(value, list):
        return [normalise_entity_id(item) if isinstance(item, str) else item for item in value]
    return value


def _ids(value: Any) -> list[str]:
    """A target value as a list of ids (strings only)."""
    values = value if isinstance(value, list) else [value]
    return [item for item in values if isinstance(item, str)]


def _check_named(
    hass: HomeAssistant, assistant: str, entity_ids: list[str], field: str | None = None
) -> None:
    """Refuse an entity the model named that does not exist or is not exposed: one answer."""
    for entity_id in entity_ids:
        if hass.states.get(entity_id) is None or not async_should_expose(
            hass, assistant, entity_id
        ):
            where = f" ({field})" if field else ""
            raise TargetError(
                "unknown_entity",
                f"There is no entity {entity_id} exposed to this assistant{where}. The user "
                "can expose entities in Settings > Voice assistants > Expose.",
            )


def _media_entities(hass: HomeAssistant, assistant: str, value: Any) -> list[str]:
    """The entities media ids in a value name, each exposed; refuse what HA would sign."""
    try:
        return media.media_entities(
            hass, value, lambda named: _check_named(hass, assistant, named, "media")
        )
    except media.MediaRefusedError as err:
        raise TargetError("media_refused", str(err)) from err


def _resolve_target(
    hass: HomeAssistant, spec: ServiceSpec, args: Mapping[str, Any], assistant: str
) -> tuple[list[str], list[str]]:
    """The explicit entity list a targeted call acts on, and the groups it was named through."""
    raw = {key: _ids(args.get(key, [])) for key in TARGET_KEYS}
    if any(ENTITY_MATCH_ALL in values for values in raw.values()):
        raise TargetError(
            "target_all_refused",
            "Targeting 'all' is not allowed: name the entities, areas, floors or labels.",
        )
    raw = {key: [v for v in values if v != ENTITY_MATCH_NONE] for key, values in raw.items()}
    if not any(raw.values()):
        raise TargetError(
            "no_target",
            f"{spec.full_name} needs a target: give entity_id, area_id, floor_id, label_id "
            "or device_id.",
        )

    explicit = raw[ATTR_ENTITY_ID]
    _check_named(hass, assistant, explicit)
    selection = target_helpers.TargetSelection(
        {
            ATTR_ENTITY_ID: explicit,
            ATTR_AREA_ID: _area_ids(hass, raw[ATTR_AREA_ID]),
            ATTR_FLOOR_ID: _floor_ids(hass, raw[ATTR_FLOOR_ID]),
            ATTR_LABEL_ID: _label_ids(hass, raw[ATTR_LABEL_ID]),
            ATTR_DEVICE_ID: _device_ids(hass, raw[ATTR_DEVICE_ID]),
        }
    )
    selected = target_helpers.async_extract_referenced_entity_ids(hass, selection, True)

    entity_registry = er.async_get(hass)
    groups = [eid for eid in explicit if split_entity_id(eid)[0] == "group"]
    for entity_id in explicit:
        if entity_id not in groups and not _matches(hass, entity_registry, spec, entity_id):
            raise TargetError(
                "unsupported_target", f"{entity_id} cannot be used with {spec.full_name}."
            )
    candidates = (selected.referenced - set(explicit)) | selected.indirectly_referenced
    matching = sorted(
        eid
        for eid in candidates
        if _matches(hass, entity_registry, spec, eid)
        and (state := hass.states.get(eid)) is not None
        and state.state != STATE_UNAVAILABLE
    )
    acted_on = list(dict.fromkeys([*(e for e in explicit if e not in groups), *matching]))
    if not acted_on:
        raise TargetError(
            "no_matching_entities",
            f"The target contains no entity that {spec.full_name} works on.",
        )
    return acted_on, groups


def _matches(
    hass: HomeAssistant, entity_registry: er.EntityRegistry, spec: ServiceSpec, entity_id: str
) -> bool:
    """Return True if the entity passes one of the service's target filters (or none exist)."""
    if not spec.target_filters:
        return True
    return any(
        _passes(hass, entity_registry, entity_id, target_filter)
        for target_filter in spec.target_filters
    )


def _passes(
    hass: HomeAssistant,
    entity_registry: er.EntityRegistry,
    entity_id: str,
    target_filter: TargetFilter,
) -> bool:
    """Return True if the entity meets every condition of one target filter."""
    state = hass.states.get(entity_id)
    if target_filter.domains is not None and split_entity_id(entity_id)[0] not in (
        target_filter.domains
    ):
        return False
    if target_filter.integration is not None:
        entry = entity_registry.async_get(entity_id)
        if entry is None or entry.platform != target_filter.integration:
            return False
    attributes: Mapping[str, Any] = state.attributes if state is not None else {}
    if target_filter.device_classes is not None and (
        attributes.get(ATTR_DEVICE_CLASS) not in target_filter.device_classes
    ):
        return False
    if target_filter.feature_sets:
        features = attributes.get(ATTR_SUPPORTED_FEATURES) or 0
        return any(features & wanted == wanted for wanted in target_filter.feature_sets)
    return True


def _area_ids(hass: HomeAssistant, values: list[str]) -> list[str]:
    """Area ids for ids, names or aliases."""
    registry = ar.async_get(hass)
    found: list[str] = []
    for value in values:
        areas = [area.id for area in intent.find_areas(value, registry)]
        if not areas:
            raise TargetError("unknown_area", f"There is no area {value!r}.")
        found.extend(areas)
    return found


def _floor_ids(hass: HomeAssistant, values: list[str]) -> list[str]:
    """Floor ids for ids, names or aliases."""
    registry = fr.async_get(hass)
    found: list[str] = []
    for value in values:
        floors = [floor.floor_id for floor in intent.find_floors(value, registry)]
        if not floors:
            raise TargetError("unknown_floor", f"There is no floor {value!r}.")
        found.extend(floors)
    return found


def _label_ids(hass: HomeAssistant, values: list[str]) -> list[str]:
    """Label ids for ids or names."""
    registry = lr.async_get(hass)
    found: list[str] = []
    for value in values:
        label = registry.async_get_label(value) or registry.async_get_label_by_name(value)
        if label is None:
            raise TargetError("unknown_label", f"There is no label {value!r}.")
        found.append(label.label_id)
    return found


def _device_ids(hass: HomeAssistant, values: list[str]) -> list[str]:
    """Device ids, each checked to exist."""
    registry = dr.async_get(hass)
    for value in values:
        if registry.async_get(value) is None:
            raise TargetError("unknown_device", f"There is no device {value!r}.")
    return values


def _entity_field(hass: HomeAssistant, field: str, value: Any, assistant: str) -> list[str]:
    """Entities named in an entity-selector field, with group members, each existing."""
    named = _ids(value)
    _check_named(hass, assistant, named, field)
    return [*named, *group.expand_entity_ids(hass, named)]


def _check_exposed(
    hass: HomeAssistant, assistant: str, entity_ids: list[str], named: set[str]
) -> None:
    """Refuse if any entity is not exposed to the assistant."""
    hidden = [
        eid for eid in dict.fromkeys(entity_ids) if not async_should_expose(hass, assistant, eid)
    ]
    if not hidden:
        return
    raise TargetError(
        "not_exposed",
        f"Refused: {_describe(hidden, named)} not exposed to this assistant. The user can expose "
        "entities in Settings > Voice assistants > Expose.",
    )


def _check_permission(user: User | None, entity_ids: list[str]) -> None:
    """Refuse if the calling user may not control one of the entities."""
    if user is None or user.is_admin:
        return
    denied = [
        eid
        for eid in dict.fromkeys(entity_ids)
        if not user.permissions.check_entity(eid, POLICY_CONTROL)
    ]
    if denied:
        raise TargetError(
            "permission_denied",
            f"Refused: the user is not allowed to control {', '.join(denied)}.",
        )


def _describe(entity_ids: list[str], named: set[str]) -> str:
    """Name the entities the model named itself; count the ones it reached indirectly."""
    own = [eid for eid in entity_ids if eid in named]
    others = len(entity_ids) - len(own)
    parts = [", ".join(own)] if own else []
    if others:
        parts.append(f"{others} entit{'y' if others == 1 else 'ies'} in that target")
    verb = "is" if len(entity_ids) == 1 else "are"
    return f"{' and '.join(parts)} {verb}"
