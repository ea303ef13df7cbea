"""The rules hassfest (Home Assistant's validator) applies to a custom integration, run locally.

The GitHub workflow `.github/workflows/hassfest.yml` runs `home-assistant/actions/hassfest`,
which validates this integration with the newest Home Assistant's `script/hassfest` (it is not
part of the `homeassistant` wheel). These tests apply the same rules to our files, with Home
Assistant's own selector and config validation where the installed package has them, so that a
violation fails here before it fails in CI. Each rule names the hassfest module it comes from.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
import json
from pathlib import Path
import re
import string
from typing import Any

from homeassistant.const import Platform
from homeassistant.helpers import config_validation as cv, selector
from homeassistant.util.yaml import load_yaml_dict
from packaging.requirements import InvalidRequirement, Requirement
from PIL import Image
import probatio
import pytest

ROOT = Path(__file__).parent.parent
INTEGRATION = ROOT / "custom_components" / "openai_realtime_voice"
TRANSLATION_FILES = [
    INTEGRATION / "strings.json",
    *sorted((INTEGRATION / "translations").glob("*.json")),
]


def _load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


# --- translations.py -------------------------------------------------------------------------

# A translation key: lower case letters, digits, `-` and `_`; no leading, trailing or doubled
# separator (hassfest's RE_TRANSLATION_KEY).
TRANSLATION_KEY = re.compile(r"^(?![-_])(?!.*[-_]{2})[a-z0-9_-]+(?<![-_])$")
# What hassfest treats as a URL in a translated string: a scheme it knows or `www.`, then a
# host name with a top-level domain.
URL = re.compile(
    r"((ftp|ftps|scp|http|https|mqtt|mqtts|socket|socks5)://|www\.)"
    r"[a-z0-9]+([-.][a-z0-9]+)*\.[a-z]{2,5}(:[0-9]{1,5})?(/.*)?",
    re.IGNORECASE,
)
SINGLE_QUOTED_PLACEHOLDER = re.compile(r"'\{\w+\}'")
COMBINED_REFERENCE = re.compile(r"(.+\[%)|(%\].+)")


def text_problems(value: Any) -> list[str]:
    """Why hassfest would reject this translated text (empty when it is fine)."""
    if not isinstance(value, str):
        return [f"not a string: {value!r}"]
    problems = []
    try:
        cv.string_with_no_html(value)
    except probatio.Invalid:
        problems.append("contains HTML")
    if SINGLE_QUOTED_PLACEHOLDER.search(value):
        problems.append("placeholder inside single quotes")
    try:
        fields = [field for _, field, _, _ in string.Formatter().parse(value) if field]
    except ValueError as err:
        problems.append(f"unbalanced braces: {err}")
    else:
        problems += [f"placeholder {f!r} is no identifier" for f in fields if not f.isidentifier()]
    if COMBINED_REFERENCE.search(value):
        problems.append("combined translation reference")
    if value != value.strip():
        problems.append("leading or trailing space")
    if URL.search(value):
        problems.append("contains a URL (use a description placeholder)")
    return problems


def leaves(
    tree: dict[str, Any], path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every (path, text) of a translation tree."""
    for key, value in tree.items():
        if isinstance(value, dict):
            yield from leaves(value, (*path, key))
        else:
            yield (*path, key), value


def key_problems(strings: dict[str, Any]) -> list[str]:
    """Keys hassfest validates with its translation-key or slug rule."""
    problems = []

    def check(keys: Any, where: str, rule: re.Pattern[str] = TRANSLATION_KEY) -> None:
        problems.extend(f"{where}.{key}: invalid key" for key in keys if not rule.match(key))

    slug = re.compile(r"^[a-z0-9_]+$")
    for name, sel in strings.get("selector", {}).items():
        check([name], "selector", slug)
        for part in ("options", "choices", "unit_of_measurement", "fields"):
            check(sel.get(part, {}), f"selector.{name}.{part}")
    for platform, entities in strings.get("entity", {}).items():
        check([platform], "entity", slug)
        for key, entity in entities.items():
            check([key], f"entity.{platform}")
            for part in ("state", "state_attributes"):
                check(entity.get(part, {}), f"entity.{platform}.{key}.{part}")
    for name, service in strings.get("services", {}).items():
        check([name], "services")
        for part in ("fields", "sections"):
            check(service.get(part, {}), f"services.{name}.{part}")
    check(strings.get("exceptions", {}), "exceptions", slug)
    check(strings.get("device", {}), "device")
    return problems


def flow_problems(flow: dict[str, Any], where: str, *, subentry: bool = False) -> list[str]:
    """The structure hassfest demands of a config, options, subentry or repair flow."""
    problems = []
    allowed = {"flow_title", "step", "error", "abort", "progress", "create_entry", "initiate_flow"}
    if subentry:
        allowed.add("entry_type")
        if "entry_type" not in flow:
            problems.append(f"{where}: a subentry flow needs entry_type")
        if "user" not in flow.get("initiate_flow", {}):
            problems.append(f"{where}: a subentry flow needs initiate_flow.user")
    problems += [f"{where}.{key}: unknown key" for key in set(flow) - allowed]
    if "step" not in flow:
        problems.append(f"{where}: no steps")
    step_keys = {"title", "description", "data", "data_description", "menu_options"}
    step_keys |= {"menu_option_descriptions", "submit", "sections"}
    for step_id, step in flow.get("step", {}).items():
        problems += [f"{where}.step.{step_id}.{k}: unknown key" for k in set(step) - step_keys]
        for key in set(step.get("data_description", {})) - set(step.get("data", {})):
            problems.append(f"{where}.step.{step_id}: data_description {key} is not in data")
    return problems


def structure_problems(strings: dict[str, Any]) -> list[str]:
    """Top-level sections, flows, issues and services as hassfest's strings schema wants them."""
    known = {"title", "config", "config_subentries", "options", "selector", "device_automation"}
    known |= {"system_health", "issues", "entity_component", "device", "entity", "exceptions"}
    known |= {"services", "conditions", "triggers", "conversation", "common", "preview_features"}
    known |= {"application_credentials", "config_panel"}
    problems = [f"{key}: unknown section" for key in set(strings) - known]
    if "config" in strings:
        problems += flow_problems(strings["config"], "config")
        if "title" in strings["config"]:
            problems.append("config.title moved to the root")
    if "options" in strings:
        problems += flow_problems(strings["options"], "options")
    for name, flow in strings.get("config_subentries", {}).items():
        problems += flow_problems(flow, f"config_subentries.{name}", subentry=True)
    for name, issue in strings.get("issues", {}).items():
        if "title" not in issue:
            problems.append(f"issues.{name}: no title")
        if ("description" in issue) == ("fix_flow" in issue):
            problems.append(f"issues.{name}: needs exactly one of description and fix_flow")
        if "fix_flow" in issue:
            problems += flow_problems(issue["fix_flow"], f"issues.{name}.fix_flow")
    for name, service in strings.get("services", {}).items():
        problems += [
            f"services.{name}: no {k}" for k in ("name", "description") if k not in service
        ]
        for field, texts in service.get("fields", {}).items():
            problems += [
                f"services.{name}.fields.{field}: no {k}"
                for k in ("name", "description")
                if k not in texts
            ]
    return problems


def translation_problems(strings: dict[str, Any]) -> list[str]:
    """Everything hassfest's translations check would report for one translation file."""
    problems = structure_problems(strings) + key_problems(strings)
    for path, value in leaves(strings):
        problems += [f"{'.'.join(path)}: {problem}" for problem in text_problems(value)]
    return problems


def test_translation_rules_catch_what_hassfest_rejects() -> None:
    """Each rule fires on the mistake hassfest reported against this integration."""
    strings = {
        "config": {
            "step": {
                "user": {
                    "data": {"base_url": "Base URL"},
                    "data_description": {
                        "base_url": "Azure: https://YOUR-RESOURCE.openai.azure.com/openai/v1.",
                        "model": "Not a field of this step",
                    },
                }
            }
        },
        "selector": {"model": {"options": {"gpt-realtime-2.1": "gpt-realtime-2.1"}}},
        "config_subentries": {"device": {"step": {}}},
        "issues": {"broken": {"title": "x"}},
        "exceptions": {"bad": {"message": " <b>{device name}</b> in '{x}'"}},
    }
    problems = "\n".join(translation_problems(strings))
    assert "data_description.base_url: contains a URL" in problems
    assert "data_description model is not in data" in problems
    assert "selector.model.options.gpt-realtime-2.1: invalid key" in problems
    assert "needs entry_type" in problems
    assert "needs initiate_flow.user" in problems
    assert "issues.broken: needs exactly one of description and fix_flow" in problems
    for problem in ("HTML", "single quotes", "no identifier", "leading or trailing space"):
        assert problem in problems
    # Host-name placeholders and ws:// examples are not URLs to hassfest.
    assert not text_problems("Compatible servers: http://HOST:PORT/v1 or {azure_url}.")


@pytest.mark.parametrize("path", TRANSLATION_FILES, ids=lambda p: p.name)
def test_translation_file_passes_hassfest_rules(path: Path) -> None:
    """strings.json and every translation satisfy hassfest's strings schema."""
    assert translation_problems(_load(path)) == []


# --- services.py and icons.py ------------------------------------------------------------------


def _services() -> dict[str, Any]:
    return load_yaml_dict(str(INTEGRATION / "services.yaml"))


def target_problems(target: Any) -> list[str]:
    """Home Assistant's target selector schema, plus hassfest's ban on device filters."""
    try:
        selector.TargetSelector.CONFIG_SCHEMA(target or {})
    except probatio.Invalid as err:
        return [f"invalid target: {err}"]
    if isinstance(target, dict) and "device" in target:
        # hassfest: "Services do not support device filters on target, use a device selector
        # instead".
        return ["device filter on target"]
    return []


def test_target_rule_catches_a_device_filter() -> None:
    """The services.yaml mistake hassfest reported on speak, ask and converse."""
    assert target_problems({"device": {"integration": "openai_realtime_voice"}}) == [
        "device filter on target"
    ]
    assert target_problems({"entity": {"domain": "assist_satellite"}}) == []


def test_services_yaml_passes_hassfest_rules() -> None:
    """Targets without device filters, valid selectors, text and an icon for every action."""
    services = _services()
    assert set(services) == {"speak", "ask", "converse"}
    strings = _load(INTEGRATION / "translations" / "en.json")["services"]
    icons = _load(INTEGRATION / "icons.json")["services"]
    for name, service in services.items():
        assert cv.slug(name) == name
        assert set(service) <= {"target", "fields"}, name
        assert target_problems(service.get("target")) == [], name
        for field_name, field in service.get("fields", {}).items():
            assert set(field) <= {"example", "default", "required", "advanced", "selector"}
            selector.validate_selector(field["selector"])
            assert {"name", "description"} <= set(strings[name]["fields"][field_name])
        assert {"name", "description"} <= set(strings[name])
        assert set(strings[name].get("fields", {})) == set(service.get("fields", {})), name
        assert re.fullmatch(r"mdi:[a-z0-9-]+", icons[name]["service"]), name
    assert set(icons) == set(services)


def test_icons_json_names_translated_entities_with_mdi_icons() -> None:
    """icons.json: mdi icons, only for entity translation keys and services that exist."""
    icons = _load(INTEGRATION / "icons.json")
    strings = _load(INTEGRATION / "strings.json")
    assert set(icons) <= {"entity", "services"}
    for platform, entities in icons.get("entity", {}).items():
        for key, icon in entities.items():
            assert key in strings["entity"][platform], (platform, key)
            for value in (icon.get("default"), *icon.get("state", {}).values()):
                assert re.fullmatch(r"mdi:[a-z0-9-]+", value), (platform, key)


# --- manifest.py and requirements.py -----------------------------------------------------------

IOT_CLASSES = {
    "assumed_state",
    "calculated",
    "cloud_polling",
    "cloud_push",
    "local_polling",
    "local_push",
}
INTEGRATION_TYPES = {"device", "entity", "hardware", "helper", "hub", "service", "system"}


def manifest_problems(manifest: dict[str, Any], directory: str) -> list[str]:
    """hassfest's manifest rules for a custom integration."""
    problems = []
    keys = list(manifest)
    if keys[:2] != ["domain", "name"] or keys[2:] != sorted(keys[2:]):
        problems.append("keys not sorted: domain, name, then alphabetical")
    if manifest.get("domain") != directory:
        problems.append("domain does not match the directory name")
    problems += [
        f"no {key}"
        for key in ("domain", "name", "codeowners", "documentation", "version")
        if key not in manifest
    ]
    if manifest.get("iot_class") not in IOT_CLASSES:
        problems.append("missing or unknown iot_class")
    if manifest.get("integration_type", "hub") not in INTEGRATION_TYPES:
        problems.append("unknown integration_type")
    if not str(manifest.get("documentation", "")).startswith("https://"):
        problems.append("documentation is not an https URL")
    for requirement in manifest.get("requirements", []):
        if " " in requirement:
            problems.append(f"requirement {requirement!r} contains a space")
            continue
        try:
            Requirement(requirement)
        except InvalidRequirement:
            problems.append(f"requirement {requirement!r} cannot be parsed")
    return problems


def test_manifest_rules_catch_unsorted_keys_and_bad_requirements() -> None:
    """The manifest rules fire on the mistakes hassfest reports."""
    manifest = {"name": "X", "domain": "x", "version": "1", "requirements": ["numpy >= 2"]}
    problems = manifest_problems(manifest, "y")
    assert "keys not sorted: domain, name, then alphabetical" in problems
    assert "domain does not match the directory name" in problems
    assert "no codeowners" in problems
    assert "requirement 'numpy >= 2' contains a space" in problems


def test_manifest_passes_hassfest_rules() -> None:
    """domain, name, then keys in alphabetical order; what a custom integration must have."""
    assert manifest_problems(_load(INTEGRATION / "manifest.json"), INTEGRATION.name) == []


# --- brand images (the local brand folder Home Assistant serves for custom integrations) -------


@pytest.mark.parametrize(
    ("name", "sizes"),
    [
        ("icon.png", ((256, 256),)),
        ("icon@2x.png", ((512, 512),)),
        ("logo.png", None),
        ("logo@2x.png", None),
    ],
)
def test_brand_images(name: str, sizes: tuple[tuple[int, int], ...] | None) -> None:
    """Square icons of 256 and 512 px; logos whose shortest side is 128-256 (256-512 at 2x)."""
    with Image.open(INTEGRATION / "brand" / name) as image:
        assert image.format == "PNG"
        assert image.mode == "RGBA", "brand images need a transparent background"
        if sizes is not None:
            assert image.size in sizes
        else:
            low, high = (256, 512) if "@2x" in name else (128, 256)
            assert low <= min(image.size) <= high


# --- quality_scale.py ----------------------------------------------------------------------------

QUALITY_SCALE_RULES = {
    "bronze": [
        "action-setup",
        "appropriate-polling",
        "brands",
        "common-modules",
        "config-flow-test-coverage",
        "config-flow",
        "dependency-transparency",
        "docs-actions",
        "docs-high-level-description",
        "docs-installation-instructions",
        "docs-removal-instructions",
        "entity-event-setup",
        "entity-unique-id",
        "has-entity-name",
        "runtime-data",
        "test-before-configure",
        "test-before-setup",
        "unique-config-entry",
    ],
    "silver": [
        "action-exceptions",
        "config-entry-unloading",
        "docs-configuration-parameters",
        "docs-installation-parameters",
        "entity-unavailable",
        "integration-owner",
        "log-when-unavailable",
        "parallel-updates",
        "reauthentication-flow",
        "test-coverage",
    ],
    "gold": [
        "devices",
        "diagnostics",
        "discovery-update-info",
        "discovery",
        "docs-data-update",
        "docs-examples",
        "docs-known-limitations",
        "docs-supported-devices",
        "docs-supported-functions",
        "docs-troubleshooting",
        "docs-use-cases",
        "dynamic-devices",
        "entity-category",
        "entity-device-class",
        "entity-disabled-by-default",
        "entity-translations",
        "exception-translations",
        "icon-translations",
        "reconfiguration-flow",
        "repair-issues",
        "stale-devices",
    ],
    "platinum": ["async-dependency", "inject-websession", "strict-typing"],
}


def test_quality_scale_lists_every_rule_with_a_valid_status() -> None:
    """Every rule once, `done`/`todo`, or `exempt` with the reason as a comment."""
    rules = load_yaml_dict(str(INTEGRATION / "quality_scale.yaml"))["rules"]
    expected = {rule for tier in QUALITY_SCALE_RULES.values() for rule in tier}
    assert set(rules) == expected
    for rule, value in rules.items():
        status = value if isinstance(value, str) else value["status"]
        assert status in {"done", "todo", "exempt"}, rule
        if status == "exempt":
            assert isinstance(value, dict), rule
            assert value.get("comment"), f"{rule} is exempt without a reason"


def _source(name: str) -> str:
    return (INTEGRATION / name).read_text(encoding="utf-8")


def _platform_modules() -> list[str]:
    platforms = re.findall(r"Platform\.([A-Z_]+)", _source("__init__.py").split("PLATFORMS", 1)[1])
    assert platforms
    return [f"{platform.lower()}.py" for platform in platforms]


def _pytest_coverage_floor() -> int:
    match = re.search(r"--cov-fail-under=(\d+)", (ROOT / "pyproject.toml").read_text())
    assert match
    return int(match.group(1))


# What a `done` claims, checked in the code (the checks core's hassfest runs for core
# integrations only, `quality_scale_validation/`, plus the rules it leaves to reviewers).
DONE_MEANS = {
    "action-setup": lambda: (
        "async_setup_services(hass)"
        in _source("__init__.py").split("async def async_setup(", 1)[1].split("\nasync def ", 1)[0]
    ),
    "config-entry-unloading": lambda: "async def async_unload_entry" in _source("__init__.py"),
    "config-flow": (INTEGRATION / "config_flow.py").is_file,
    "devices": lambda: all("DeviceInfo(" in _source(m) for m in ("entity.py", "sensor.py")),
    "diagnostics": lambda: "async_get_config_entry_diagnostics" in _source("diagnostics.py"),
    "discovery": lambda: "async_step_integration_discovery" in _source("config_flow.py"),
    "entity-translations": lambda: "entity" in _load(INTEGRATION / "strings.json"),
    "exception-translations": lambda: "exceptions" in _load(INTEGRATION / "strings.json"),
    "has-entity-name": lambda: "_attr_has_entity_name = True" in _source("entity.py"),
    "icon-translations": (INTEGRATION / "icons.json").is_file,
    "parallel-updates": lambda: all("PARALLEL_UPDATES" in _source(m) for m in _platform_modules()),
    "reauthentication-flow": lambda: "async_step_reauth" in _source("config_flow.py"),
    "reconfiguration-flow": lambda: "async_step_reconfigure" in _source("config_flow.py"),
    "repair-issues": lambda: "issues" in _load(INTEGRATION / "strings.json"),
    "runtime-data": lambda: "entry.runtime_data = " in _source("__init__.py"),
    "strict-typing": lambda: (
        "strict = true"
        in (ROOT / "pyproject.toml").read_text().split("[[tool.mypy.overrides]]", 1)[0]
    ),
    "test-coverage": lambda: _pytest_coverage_floor() >= 95,
    "unique-config-entry": lambda: "already_configured" in _source("config_flow.py"),
}


def test_quality_scale_statuses_are_honest() -> None:
    """Every `done` that the code can show is shown; entities exist, so no rule about entities
    is exempt for want of them."""
    rules = load_yaml_dict(str(INTEGRATION / "quality_scale.yaml"))["rules"]
    status = {rule: v if isinstance(v, str) else v["status"] for rule, v in rules.items()}
    for rule, shown in DONE_MEANS.items():
        if status[rule] == "done":
            assert shown(), f"quality_scale.yaml claims {rule} is done"
    assert {"sensor.py", "number.py", "binary_sensor.py"} <= set(_platform_modules())
    for rule in ("entity-unavailable", "entity-unique-id", "has-entity-name", "devices"):
        assert status[rule] != "exempt", f"{rule} is exempt, but the integration has entities"


# --- dependencies.py --------------------------------------------------------------------------


def referenced_components(source: str) -> set[str]:
    """Integrations a module imports from `homeassistant.components` (hassfest's import scan)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        for name in names:
            parts = name.split(".")
            if parts[:2] == ["homeassistant", "components"] and len(parts) > 2:
                found.add(parts[2])
    return found


def undeclared_components(manifest: dict[str, Any], references: set[str]) -> set[str]:
    """References neither declared in the manifest nor allowed without a dependency: entity
    platforms, `homeassistant`, and integrations this one has a platform file for."""
    allowed = {platform.value for platform in Platform} | {"homeassistant", manifest["domain"]}
    allowed |= set(manifest.get("dependencies", [])) | set(manifest.get("after_dependencies", []))
    own = {path.stem for path in INTEGRATION.glob("*.py")}
    own |= {path.name for path in INTEGRATION.iterdir() if path.is_dir()}
    return references - allowed - own


def test_dependency_rule_catches_an_undeclared_integration() -> None:
    """An import from an integration the manifest does not name is reported."""
    source = (
        "from homeassistant.components.zha import helpers\n"
        "from homeassistant.components import mqtt\n"
    )
    assert referenced_components(source) == {"zha", "mqtt"}
    manifest = {"domain": "openai_realtime_voice", "dependencies": ["http"]}
    assert undeclared_components(manifest, {"zha", "mqtt", "http", "sensor"}) == {"zha", "mqtt"}


def test_every_imported_integration_is_a_dependency() -> None:
    """hassfest: "Using component X but it's not in 'dependencies' or 'after_dependencies'"."""
    manifest = _load(INTEGRATION / "manifest.json")
    references: set[str] = set()
    for path in INTEGRATION.rglob("*.py"):
        references |= referenced_components(path.read_text(encoding="utf-8"))
    assert {"assist_satellite", "conversation", "ffmpeg"} <= references
    assert undeclared_components(manifest, references) == set()


# --- config_schema.py and json.py --------------------------------------------------------------


def test_async_setup_comes_with_a_config_schema() -> None:
    """An integration with async_setup defines CONFIG_SCHEMA (config entries only, here)."""
    module = ast.parse(_source("__init__.py"))
    functions = {n.name for n in module.body if isinstance(n, ast.AsyncFunctionDef)}
    assigned = {
        target.id
        for node in module.body
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    assert "async_setup" in functions
    assert "CONFIG_SCHEMA" in assigned


def test_every_json_file_parses() -> None:
    """hassfest reports any JSON file of the integration that does not parse."""
    files = list(INTEGRATION.rglob("*.json"))
    assert len(files) >= 5
    for path in files:
        json.loads(path.read_text(encoding="utf-8"))
