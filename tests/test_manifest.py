"""The manifest, hacs.json and translations satisfy what Home Assistant and HACS require."""

from __future__ import annotations

import json
from pathlib import Path
import re
from typing import Any

from awesomeversion import AwesomeVersion
from homeassistant import const as ha_const
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).parent.parent
INTEGRATION = ROOT / "custom_components" / "openai_realtime_voice"


def _load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _requirements(path: Path) -> dict[str, str]:
    pins: dict[str, str] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins[canonicalize_name(name.strip())] = version.strip()
    return pins


def test_manifest_has_what_home_assistant_and_hacs_require() -> None:
    """Custom integrations need a version; HACS needs documentation, issue tracker, codeowners."""
    manifest = _load(INTEGRATION / "manifest.json")
    for key in (
        "domain",
        "name",
        "version",
        "documentation",
        "issue_tracker",
        "codeowners",
        "config_flow",
        "iot_class",
        "integration_type",
        "dependencies",
        "requirements",
    ):
        assert key in manifest, key
    assert manifest["domain"] == INTEGRATION.name == "openai_realtime_voice"
    assert manifest["name"] == "OpenAI Realtime Voice"
    assert manifest["iot_class"] == "cloud_push"
    assert manifest["config_flow"] is True
    assert AwesomeVersion(manifest["version"]).valid
    assert all(url.startswith("https://") for url in (manifest["documentation"],))
    # Keys in alphabetical order after domain and name, as hassfest demands.
    rest = list(manifest)[2:]
    assert rest == sorted(rest)
    # `openai` is a test-only dependency: Home Assistant pins its own version.
    assert not any(req.lower().startswith("openai") for req in manifest["requirements"])


def _manifest_requirements() -> list[Requirement]:
    return [Requirement(line) for line in _load(INTEGRATION / "manifest.json")["requirements"]]


def _home_assistant_constraints() -> dict[str, Requirement]:
    """homeassistant/package_constraints.txt of the installed Home Assistant, by package name."""
    import homeassistant

    path = Path(homeassistant.__file__).parent / "package_constraints.txt"
    constraints: dict[str, Requirement] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            requirement = Requirement(line)
            constraints[canonicalize_name(requirement.name)] = requirement
    return constraints


def test_manifest_requirements_are_ranges_the_test_pins_satisfy() -> None:
    """The manifest names ranges, never exact pins; requirements_test.txt pins a version of each
    inside its range (the tests run what users get)."""
    test_pins = _requirements(ROOT / "requirements_test.txt")
    requirements = _manifest_requirements()
    assert {canonicalize_name(r.name) for r in requirements} == {
        "websockets",
        "opuslib-next",
        "numpy",
    }
    for requirement in requirements:
        assert not any(spec.operator in {"==", "==="} for spec in requirement.specifier), (
            f"{requirement} is pinned exactly: the next Home Assistant that moves it breaks us"
        )
        pinned = test_pins.get(canonicalize_name(requirement.name))
        assert pinned is not None, f"{requirement.name} is not pinned in requirements_test.txt"
        assert requirement.specifier.contains(pinned), (requirement, pinned)


def constraint_conflicts(requirement: Requirement, constraint: Requirement) -> list[str]:
    """How a manifest requirement could clash with Home Assistant's constraint of the package,
    now or after Home Assistant raises it (its constraints only ever move up)."""
    problems = []
    floors = [s.version for s in constraint.specifier if s.operator in {"==", ">=", "~="}]
    problems += [
        f"{requirement} excludes Home Assistant's {constraint}"
        for floor in floors
        if not requirement.specifier.contains(floor, prereleases=True)
    ]
    if not requirement.specifier.contains("9999", prereleases=True):
        problems.append(f"{requirement} has an upper bound a Home Assistant upgrade can cross")
    return problems


def test_constraint_check_catches_exact_pins_and_upper_bounds() -> None:
    """The check fails on what broke before: an exact pin that HA's constraint moves away from."""
    assert constraint_conflicts(Requirement("numpy==2.3.1"), Requirement("numpy==2.3.2"))
    assert constraint_conflicts(Requirement("numpy==2.3.2"), Requirement("numpy==2.3.2"))
    assert constraint_conflicts(Requirement("websockets<16"), Requirement("websockets>=15.0.1"))
    assert not constraint_conflicts(Requirement("numpy>=2.0"), Requirement("numpy==2.3.2"))


def test_requirements_respect_home_assistant_constraints() -> None:
    """Every requirement Home Assistant constrains admits HA's version, today's and later ones."""
    constraints = _home_assistant_constraints()
    constrained = [r for r in _manifest_requirements() if canonicalize_name(r.name) in constraints]
    # numpy is pinned and websockets bounded by Home Assistant: this test has something to check.
    assert {canonicalize_name(r.name) for r in constrained} >= {"numpy", "websockets"}
    for requirement in constrained:
        constraint = constraints[canonicalize_name(requirement.name)]
        assert constraint_conflicts(requirement, constraint) == []


def test_hacs_json() -> None:
    """hacs.json names the integration and the Home Assistant version the tests run on."""
    hacs = _load(ROOT / "hacs.json")
    assert set(hacs) <= {
        "name",
        "content_in_root",
        "zip_release",
        "filename",
        "hide_default_branch",
        "country",
        "homeassistant",
        "hacs",
        "persistent_directory",
    }
    assert hacs["name"] == "OpenAI Realtime Voice"
    assert hacs["homeassistant"] == ha_const.__version__
    assert (INTEGRATION / "brand" / "icon.png").is_file()


def test_english_translations_match_strings() -> None:
    """translations/en.json is what Home Assistant loads for a custom integration."""
    assert _load(INTEGRATION / "strings.json") == _load(INTEGRATION / "translations" / "en.json")
    assert "[%key:" not in (INTEGRATION / "translations" / "en.json").read_text(encoding="utf-8")


def _flatten(tree: dict[str, Any], prefix: str = "") -> set[str]:
    keys: set[str] = set()
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            keys |= _flatten(value, f"{path}.")
        else:
            keys.add(path)
    return keys


STRINGS = _flatten(_load(INTEGRATION / "strings.json"))


FLOW_PATTERNS = (
    # errors["base"] = "..." / errors[CONF_X] = "..." and return {"base": "..."} in flows
    r'errors\[[^\]]+\] = "([a-z_]+)"',
    r'return \{"base": "([a-z_]+)"\}',
)
ABORT_PATTERNS = (r'async_abort\(reason="([a-z_]+)"\)', r'AbortFlow\("([a-z_]+)"\)')


def _keys_used(patterns: tuple[str, ...]) -> set[tuple[str, str]]:
    used: set[tuple[str, str]] = set()
    for source in INTEGRATION.glob("*.py"):
        text = source.read_text(encoding="utf-8")
        for pattern in patterns:
            used |= {(source.name, key) for key in re.findall(pattern, text)}
    return used


def test_flow_errors_and_aborts_are_translated() -> None:
    """Each error and abort reason a flow can show has English text."""

    def translated(kind: str, key: str) -> bool:
        # Config, options and subentry flows each keep their own errors and aborts.
        return any(
            k.endswith(f".{kind}.{key}")
            and k.startswith(("config.", "options.", "config_subentries.", "issues."))
            for k in STRINGS
        )

    for source, key in _keys_used(FLOW_PATTERNS):
        assert translated("error", key), (source, key)
    for source, key in _keys_used(ABORT_PATTERNS):
        assert translated("abort", key), (source, key)
    assert _keys_used(FLOW_PATTERNS), "the patterns no longer find the flow's errors"


def test_every_translation_key_exists() -> None:
    """translation_key= on exceptions, issues, entities and selectors points at real text."""
    sections = ("exceptions.", "issues.", "entity.", "selector.", "services.")
    used = _keys_used((r'translation_key=(?:"|CONF_)([A-Za-z_]+)"?',))
    assert used
    for source, key in used:
        name = key.lower()
        assert any(k.startswith(sections) and f".{name}." in f".{k}." for k in STRINGS), (
            source,
            key,
        )


def test_every_flow_field_is_translated_with_a_description() -> None:
    """Every field of every step has a label and a data_description (config-flow rule)."""
    strings = _load(INTEGRATION / "strings.json")
    for section in ("config", "options"):
        for step_id, step in strings[section]["step"].items():
            data = step.get("data", {})
            descriptions = step.get("data_description", {})
            assert set(data) == set(descriptions), f"{section}.{step_id}"


def test_texts_have_no_markup_the_frontend_would_misread() -> None:
    """The frontend parses `<word>` in translations as a tag ("Translation error")."""
    text = (INTEGRATION / "strings.json").read_text(encoding="utf-8")
    assert not re.findall(r"<[A-Za-z][^>]*>", text)
