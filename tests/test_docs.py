"""The README, CONTRIBUTING.md and the issue templates: links that resolve, diagrams and tables that
match the code, and what HACS's validation looks for (an information file with images)."""

from __future__ import annotations

import html
import json
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


RAW = "https://raw.githubusercontent.com/openai-realtime-voice/openai_realtime_voice/main/"
MANIFEST = json.loads(
    (ROOT / "custom_components" / "openai_realtime_voice" / "manifest.json").read_text()
)


def readme_images() -> list[str]:
    """Every image the README shows (its URL as written)."""
    return re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", README)


def test_readme_is_an_information_file_with_images() -> None:
    """HACS's `information` and `images` checks: a README that shows images of the integration,
    among them the config flow in German and Chinese and a paired device."""
    images = [url.removeprefix(RAW) for url in readme_images()]
    assert {
        "docs/images/config-flow.png",
        "docs/images/config-flow-de.png",
        "docs/images/config-flow-zh-Hans.png",
        "docs/images/device.png",
    } <= set(images)
    for image in images:
        assert (ROOT / image).stat().st_size > 4_000, f"{image} is empty or a stub"


def test_readme_images_render_in_hacs() -> None:
    """HACS renders the README outside the repository: images need absolute URLs (raw files of
    the repository the manifest names), and Mermaid is shown as code, so diagrams are pictures."""
    assert (
        MANIFEST["documentation"]
        == "https://github.com/openai-realtime-voice/openai_realtime_voice"
    )
    assert RAW.startswith(
        MANIFEST["documentation"].replace("github.com", "raw.githubusercontent.com")
    )
    images = readme_images()
    assert images
    for url in images:
        assert url.startswith(RAW), f"{url} is not an absolute URL HACS can load"
        assert (ROOT / url.removeprefix(RAW)).is_file(), url
    assert "```mermaid" not in README


def test_readme_gives_the_hacs_repository_and_version() -> None:
    """The repository URL to add in HACS, and the Home Assistant version hacs.json asks for."""
    install = section(README, "Installation")
    assert f"`{MANIFEST['documentation']}`" in install
    assert f"`{MANIFEST['documentation']}`" in section(README, CHINESE_QUICK_START)
    minimum = json.loads((ROOT / "hacs.json").read_text())["homeassistant"]
    assert f"Home Assistant {minimum} or newer" in install
    assert re.findall(r"Home Assistant (20\d\d\.\d+(?:\.\d+)?) or newer", README) == [minimum]


def test_try_it_without_hardware_comes_first() -> None:
    """A newcomer finds the way to try it before the installation and configuration."""
    headings = re.findall(r"^## (.+)$", re.sub(r"```.*?```", "", README, flags=re.DOTALL), re.M)
    assert headings.index("Try it without hardware") < headings.index("Installation")


def test_chinese_quick_start_is_linked_from_the_top_and_complete() -> None:
    """Linked above the fold; install, pair and the first sentence, with the real OTA path."""
    top = "\n".join(README.splitlines()[:5])
    assert f"(#{CHINESE_QUICK_START})" in top
    quick = section(README, CHINESE_QUICK_START)
    for step in ("安装", "配对设备", "说出第一句话"):
        assert step in quick
    assert OTA_PATH in quick
    assert "docs/images/config-flow-zh-Hans.png" in quick


def test_how_it_works_shows_both_diagrams() -> None:
    """The data path (device -> endpoint -> bridge -> Realtime -> tools) and the pairing, as
    pictures rendered from their Mermaid sources in docs/ (every label of a source is drawn)."""
    how = section(README, "How it works")
    assert [url.removeprefix(RAW) for url in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", how)] == [
        "docs/architecture.svg",
        "docs/pairing.svg",
    ]
    data_path = (ROOT / "docs" / "architecture.mmd").read_text(encoding="utf-8")
    pairing = (ROOT / "docs" / "pairing.mmd").read_text(encoding="utf-8")
    assert data_path.split(None, 1)[0] == "flowchart"
    assert pairing.split(None, 1)[0] == "sequenceDiagram"
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
    for source, picture in ((data_path, "architecture.svg"), (pairing, "pairing.svg")):
        drawn = html.unescape((ROOT / "docs" / picture).read_text(encoding="utf-8"))
        labels = re.findall(r'"([^"]+)"\]|: (.+)$|-- "([^"]+)" --', source, re.MULTILINE)
        for label in ("".join(parts) for parts in labels):
            for part in label.split("<br/>"):
                assert part in drawn, f"{picture} lacks {part!r}: run docs/diagrams.py"


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
