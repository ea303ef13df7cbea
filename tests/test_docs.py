"""The README, CONTRIBUTING.md and the issue templates: links that resolve, diagrams and tables that
match the code, and what HACS's validation looks for (an information file with images)."""

from __future__ import annotations

from pathlib import Path
import re
from typing import Any
import unicodedata

import pytest
import yaml

from custom_components.openai_realtime_voice.const import DEVICE_WS_PATH, OTA_PATH
from custom_components.openai_realtime_voice.repairs import MIN_FIRMWARE
from simulator.device import DeviceSimulator

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
CHINESE_QUICK_START = "中文快速上手"


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    kept = "".join(
        ch
        for ch in heading.strip().lower()
        if ch in " -_" or unicodedata.category(ch)[0] in {"L", "N"}
    )
    return kept.replace(" ", "-")


def anchors(markdown: str) -> set[str]:
    """The anchors of every heading outside code blocks."""
    prose = re.sub(r"```.*?```", "", markdown, flags=re.DOTALL)
    return {slug(m.group(1)) for m in re.finditer(r"^#{1,6} (.+)$", prose, re.MULTILINE)}


def section(markdown: str, heading: str) -> str:
    """The text under `## heading` up to the next `## `."""
    return markdown.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]


def test_slug_follows_github() -> None:
    """The anchor rules the links below rely on."""
    assert slug("Try it without hardware") == "try-it-without-hardware"
    assert slug("Tuning turn detection (VAD)") == "tuning-turn-detection-vad"
    assert slug("Actions (for automations and scripts)") == "actions-for-automations-and-scripts"
    assert slug("中文快速上手") == "中文快速上手"


@pytest.mark.parametrize("name", ["README.md", "CONTRIBUTING.md"])
def test_links_resolve(name: str) -> None:
    """Every in-page anchor names a heading; every relative link and image exists."""
    text = (ROOT / name).read_text(encoding="utf-8")
    prose = re.sub(r"```.*?```", "", text, flags=re.DOTALL)
    targets = re.findall(r"\]\(([^)\s]+)\)", prose)
    assert targets or name == "CONTRIBUTING.md"
    for target in targets:
        if target.startswith(("http://", "https://")):
            continue
        if target.startswith("#"):
            assert target[1:] in anchors(text), f"{name}: no heading for {target}"
        else:
            assert (ROOT / target.split("#", 1)[0]).exists(), f"{name}: {target} is missing"


def test_readme_is_an_information_file_with_images() -> None:
    """HACS's `information` and `images` checks: a README that shows images of the integration,
    among them the config flow in German and Chinese and a paired device."""
    images = re.findall(r"!\[[^\]]*\]\((docs/images/[^)]+\.png)\)", README)
    assert {
        "docs/images/config-flow.png",
        "docs/images/config-flow-de.png",
        "docs/images/config-flow-zh-Hans.png",
        "docs/images/device.png",
    } <= set(images)
    for image in images:
        assert (ROOT / image).stat().st_size > 10_000, f"{image} is empty or a stub"


def test_chinese_quick_start_is_linked_from_the_top_and_complete() -> None:
    """Linked above the fold; install, pair and the first sentence, with the real OTA path."""
    top = "\n".join(README.splitlines()[:5])
    assert f"(#{CHINESE_QUICK_START})" in top
    quick = section(README, CHINESE_QUICK_START)
    for step in ("安装", "配对设备", "说出第一句话"):
        assert step in quick
    assert OTA_PATH in quick
    assert "docs/images/config-flow-zh-Hans.png" in quick


def test_how_it_works_has_both_mermaid_diagrams() -> None:
    """The data path (device -> endpoint -> bridge -> Realtime -> tools) and the pairing."""
    blocks = re.findall(r"```mermaid\n(.*?)```", section(README, "How it works"), re.DOTALL)
    kinds = [block.split(None, 1)[0] for block in blocks]
    assert kinds == ["flowchart", "sequenceDiagram"]
    data_path, pairing = blocks
    edges = re.findall(r"^\s*(\w+) --(?: .* --)?> (\w+)$", data_path, re.MULTILINE)
    declared = set(re.findall(r"^\s*(\w+)\[", data_path, re.MULTILINE))
    assert {node for edge in edges for node in edge} == declared
    assert ("device", "endpoint") in edges
    assert ("endpoint", "bridge") in edges
    assert ("bridge", "realtime") in edges
    assert ("bridge", "tools") in edges
    assert DEVICE_WS_PATH in data_path
    assert OTA_PATH in pairing
    assert "ota/activate" in pairing


def test_compatibility_table_matches_the_code() -> None:
    """The minimum firmware is the one repairs.py enforces; the simulated board and firmware
    are the simulator's defaults; every listening mode has a row."""
    table = section(README, "Compatibility")
    minimum = ".".join(map(str, MIN_FIRMWARE))
    assert f"| any board | {minimum} (the minimum: MCP) |" in table
    sim = DeviceSimulator()
    assert f"| `{sim.board_name}` (the simulator's default) | {sim.firmware_version} |" in table
    modes = re.findall(r"^\| `(auto|manual|realtime)` \|", table, re.MULTILINE)
    assert modes == ["auto", "manual", "realtime"]


def _template(name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(
        (ROOT / ".github" / "ISSUE_TEMPLATE" / name).read_text(encoding="utf-8")
    )
    return data


def _required(template: dict[str, Any]) -> set[str]:
    return {
        item["id"]
        for item in template["body"]
        if item.get("validations", {}).get("required") and "id" in item
    }


def test_issue_templates_ask_for_diagnostics_board_and_firmware() -> None:
    """A bug comes with diagnostics; a compatibility report names board, firmware and mode."""
    bug = _template("bug_report.yml")
    assert {"what-happened", "diagnostics", "version", "ha-version"} <= _required(bug)
    compatibility = _template("device_compatibility.yml")
    assert {"board", "firmware", "mode", "version"} <= _required(compatibility)
    for template in (bug, compatibility):
        assert template["name"]
        assert template["description"]
        for item in template["body"]:
            assert item["type"] in {"markdown", "textarea", "input", "dropdown", "checkboxes"}
