"""The GitHub workflows run what the local tests reproduce (see each workflow's header).

hassfest.yml -> tests/test_hassfest.py, tests/test_manifest.py
hacs.yml     -> tests/test_manifest.py (hacs.json), tests/test_docs.py (README and its images)
tests.yml    -> scripts/setup and scripts/test themselves
release.yml  -> tests/test_release.py (scripts/release on a copy of the tree)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"


def _workflow(name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((WORKFLOWS / name).read_text(encoding="utf-8"))
    return data


def _steps(name: str) -> list[dict[str, Any]]:
    return [step for job in _workflow(name)["jobs"].values() for step in job["steps"]]


def _uses(name: str, action: str) -> dict[str, Any]:
    return next(step for step in _steps(name) if step.get("uses", "").startswith(action + "@"))


@pytest.mark.parametrize("name", ["hassfest.yml", "hacs.yml", "tests.yml", "release.yml"])
def test_workflow_is_valid_and_checks_out_the_code(name: str) -> None:
    """Each workflow has a trigger, a runner and a checkout before its own steps."""
    workflow = _workflow(name)
    # PyYAML reads the `on:` key as the boolean True.
    assert workflow.get("on", workflow.get(True))
    for job in workflow["jobs"].values():
        assert job["runs-on"] == "ubuntu-latest"
        uses = [step.get("uses", "") for step in job["steps"]]
        assert any(u.startswith("actions/checkout@") for u in uses)


def test_validation_workflows_use_the_official_actions() -> None:
    """hassfest from home-assistant/actions; HACS validation as an integration."""
    assert _uses("hassfest.yml", "home-assistant/actions/hassfest")
    hacs = _uses("hacs.yml", "hacs/action")
    assert hacs["with"]["category"] == "integration"
    # Only the brands check is skipped: the brand images ship in the integration's folder.
    assert hacs["with"].get("ignore", "") == "brands"
    assert (ROOT / "custom_components" / "openai_realtime_voice" / "brand" / "icon.png").is_file()


def test_tests_workflow_runs_the_readme_commands_with_a_cached_setup() -> None:
    """scripts/setup then scripts/test on Debian 12; the Python root and .venv are cached,
    keyed on everything that decides their content."""
    job = _workflow("tests.yml")["jobs"]["tests"]
    assert job["container"] == "debian:12"
    runs = [step["run"].strip() for step in job["steps"] if "run" in step]
    assert runs[-2:] == ["scripts/setup", "scripts/test"]
    cache = _uses("tests.yml", "actions/cache")
    assert set(cache["with"]["path"].split()) == {"~/.cache/openai_realtime_voice", ".venv"}
    for source in ("scripts/setup", "requirements_test.txt", "requirements_bench.txt"):
        assert source in cache["with"]["key"]


def test_release_workflow_publishes_the_zip_hacs_expects() -> None:
    """On a version tag: scripts/release with the tag, then the zip hacs.json names."""
    workflow = _workflow("release.yml")
    assert workflow.get("on", workflow.get(True))["push"]["tags"]
    runs = " ".join(step.get("run", "") for step in _steps("release.yml"))
    assert 'scripts/release "${GITHUB_REF_NAME}" --out dist' in runs
    publish = _uses("release.yml", "softprops/action-gh-release")
    filename = json.loads((ROOT / "hacs.json").read_text())["filename"]
    assert publish["with"]["files"] == f"dist/{filename}"
    assert publish["with"]["body_path"] == "dist/release-notes.md"
