"""One service's tool: its name, words and parameter schema, built from HA's service description.

Fields come from `services.yaml` (sections flattened), their words from the integration's
translations (scripts carry their own), and selectors become JSON schema through HA's converter.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
import json
from typing import Any, Final

from homeassistant.const import (
    ATTR_AREA_ID,
    ATTR_DEVICE_ID,
    ATTR_ENTITY_ID,
    ATTR_FLOOR_ID,
    ATTR_LABEL_ID,
)
from homeassistant.core import SupportsResponse
from homeassistant.helpers import config_validation as cv, llm, selector
import probatio

from . import policy

CONFIRM: Final = "confirm"
TARGET_KEYS: Final = (ATTR_ENTITY_ID, ATTR_AREA_ID, ATTR_FLOOR_ID, ATTR_LABEL_ID, ATTR_DEVICE_ID)
_TARGET_WORDS: Final = {
    ATTR_ENTITY_ID: "Entity IDs to act on (only entities exposed to the assistant).",
    ATTR_AREA_ID: "Area IDs or names: acts on the matching entities in these areas.",
    ATTR_FLOOR_ID: "Floor IDs or names: acts on the matching entities on these floors.",
    ATTR_LABEL_ID: "Label IDs or names: acts on the matching entities with these labels.",
    ATTR_DEVICE_ID: "Device IDs: acts on the matching entities of these devices.",
}
_CONFIRM_WORDS: Final = (
    "Set to true only after the user has confirmed this exact action in the conversation."
)
# Selectors that name things the call acts on but which we cannot check for exposure.
_UNCHECKABLE_SELECTORS: Final = (
    selector.AreaSelector,
    selector.DeviceSelector,
    selector.FloorSelector,
    selector.LabelSelector,
    selector.TargetSelector,
)


class UnsupportedServiceError(Exception):
    """The service cannot be offered safely or its fields cannot be described."""


@dataclass(frozen=True, slots=True)
class TargetFilter:
    """One entity filter of a service's target: all given conditions must hold."""

    domains: frozenset[str] | None
    integration: str | None
    feature_sets: tuple[int, ...]
    device_classes: frozenset[str] | None


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    """What a tool needs to know about the service it calls."""

    domain: str
    service: str
    title: str
    description: str
    parameters: probatio.Schema
    targeted: bool
    target_filters: tuple[TargetFilter, ...]
    entity_fields: tuple[str, ...]
    supports_response: SupportsResponse
    annotations: llm.ToolAnnotations

    @property
    def full_name(self) -> str:
        """The service as "domain.service"."""
        return f"{self.domain}.{self.service}"

    @property
    def tool_name(self) -> str:
        """The tool name: letters, digits and `_` only, as function-calling APIs want."""
        return f"{self.domain}__{self.service}"

    @property
    def confirmable(self) -> bool:
        """True if some calls of this service are confirmed with the user first."""
        return policy.may_need_confirmation(self.domain, self.service)


def build_spec(
    domain: str,
    service: str,
    description: Mapping[str, Any],
    translations: Mapping[str, str],
    supports_response: SupportsResponse,
) -> ServiceSpec:
    """Build a service's tool spec; raise UnsupportedServiceError if it cannot be offered."""
    prefix = f"component.{domain}.services.{service}"
    title = translations.get(f"{prefix}.name") or description.get("name") or f"{domain}.{service}"
    summary = translations.get(f"{prefix}.description") or description.get("description") or ""

    schema: dict[Any, Any] = {}
    entity_fields: list[str] = []
    for field, config in _flatten_fields(description.get("fields") or {}).items():
        validator = _field_validator(config)
        if isinstance(validator, _UNCHECKABLE_SELECTORS):
            raise UnsupportedServiceError(f"field {field} targets things we cannot check")
        if isinstance(validator, selector.EntitySelector):
            entity_fields.append(field)
        words = (
            translations.get(f"{prefix}.fields.{field}.description")
            or config.get("description")
            or translations.get(f"{prefix}.fields.{field}.name")
            or config.get("name")
        )
        marker = probatio.Required if config.get("required") else probatio.Optional
        schema[marker(field, description=words)] = validator

    target = description.get("target")
    targeted = target is not None
    if targeted:
        for key in TARGET_KEYS:
            if key in entity_fields or any(str(marker) == key for marker in schema):
                raise UnsupportedServiceError(f"field {key} clashes with the target")
            schema[probatio.Optional(key, description=_TARGET_WORDS[key])] = probatio.All(
                probatio.EnsureList(), [cv.string]
            )
    if policy.may_need_confirmation(domain, service):
        schema[probatio.Optional(CONFIRM, description=_CONFIRM_WORDS)] = cv.boolean

    parameters = probatio.Schema(schema)
    try:
        probatio.to_openapi(
            parameters, custom_serializer=llm.selector_serializer, openapi_version="3.1.0"
        )
    except (ValueError, TypeError, probatio.Invalid) as err:  # pragma: no cover - defensive
        # Every selector HA ships converts today; a future one that does not is left out.
        raise UnsupportedServiceError(f"parameters cannot be described: {err}") from err

    return ServiceSpec(
        domain=domain,
        service=service,
        title=str(title),
        description=str(summary),
        parameters=parameters,
        targeted=targeted,
        target_filters=_target_filters(target) if isinstance(target, Mapping) else (),
        entity_fields=tuple(entity_fields),
        supports_response=supports_response,
        annotations=policy.annotations_for(domain, service, supports_response),
    )


def _flatten_fields(fields: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """Lift the fields out of collapsible sections (a section has `fields`, a field does not)."""
    flat: dict[str, Mapping[str, Any]] = {}
    for name, config in fields.items():
        if not isinstance(config, Mapping):
            continue
        if isinstance(config.get("fields"), Mapping) and "selector" not in config:
            flat.update(_flatten_fields(config["fields"]))
        else:
            flat[name] = config
    return flat


def _field_validator(config: Mapping[str, Any]) -> Any:
    """The validator of one field: its selector, else an object or a string by its example."""
    if (selector_config := config.get("selector")) is not None:
        try:
            return selector.selector(selector_config)
        except (probatio.Invalid, KeyError, ValueError, TypeError) as err:
            raise UnsupportedServiceError(f"unknown selector {selector_config}") from err
    example = config.get("example")
    if isinstance(example, str) and example.lstrip().startswith(("{", "[")):
        try:
            json.loads(example.split(" or ")[0])
        except ValueError:
            return cv.string
        return selector.ObjectSelector()
    return cv.string


def _target_filters(target: Mapping[str, Any]) -> tuple[TargetFilter, ...]:
    """The entity filters of a target selector (none: any entity)."""
    entity = target.get("entity") or []
    if isinstance(entity, Mapping):
        entity = [entity]
    filters: list[TargetFilter] = []
    for item in entity:
        if not isinstance(item, Mapping):
            continue
        domains = item.get("domain")
        device_classes = item.get("device_class")
        filters.append(
            TargetFilter(
                domains=frozenset(_as_list(domains)) if domains else None,
                integration=item.get("integration"),
                feature_sets=tuple(
                    feature
                    for feature in _as_list(item.get("supported_features"))
                    if isinstance(feature, int)
                ),
                device_classes=frozenset(_as_list(device_classes)) if device_classes else None,
            )
        )
    return tuple(filters)


def _as_list(value: Any) -> list[Any]:
    """A scalar as a one-item list, a list as is, nothing as empty."""
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple, set, frozenset)) else [value]
