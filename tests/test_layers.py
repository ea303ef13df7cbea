"""The layers of the integration: nothing imports upward.

Every import counts, at module level, inside functions or under `TYPE_CHECKING`: a deferred
import hides a dependency, it does not remove it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent.parent / "custom_components" / "openai_realtime_voice"

LIBRARIES = ("realtime", "audio", "xiaozhi")
"""Library-grade packages: no Home Assistant, nothing of the glue beside them."""

ABOVE_ENDPOINT = (
    "bridge",
    "agent",
    "conversation",
    "assist_satellite",
    "binary_sensor",
    "sensor",
    "number",
    "services",
    "services_api",
    "config_flow",
    "diagnostics",
    "entity",
)
"""What serves the devices and what Home Assistant sees of them: the endpoint knows none."""


def imports(source: str, package: tuple[str, ...]) -> set[str]:
    """The absolute names a module of `package` imports (relative imports resolved)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                base = node.module or ""
            else:
                parent = package[: len(package) - node.level + 1]
                base = ".".join((*parent, *filter(None, [node.module])))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def imports_of(path: Path) -> set[str]:
    """What one file of the integration imports."""
    package = path.relative_to(PACKAGE.parent).parts[:-1]
    return imports(path.read_text(), package)


def modules(under: str) -> list[Path]:
    """The Python files of one package (or the one module) of the integration."""
    target = PACKAGE / under
    return sorted(target.rglob("*.py")) if target.is_dir() else [target.with_suffix(".py")]


def starts(name: str, prefixes: list[str]) -> bool:
    """Whether `name` is one of `prefixes` or inside one."""
    return any(name == prefix or name.startswith(f"{prefix}.") for prefix in prefixes)


@pytest.mark.parametrize("library", LIBRARIES)
def test_libraries_import_no_home_assistant_and_no_glue(library: str) -> None:
    """`realtime/`, `audio/` and `xiaozhi/` stand alone (their tests need no Home Assistant)."""
    own = [f"openai_realtime_voice.{name}" for name in LIBRARIES]
    for path in modules(library):
        for name in imports_of(path):
            assert not starts(name, ["homeassistant"]), f"{path.name} imports {name}"
            if starts(name, ["openai_realtime_voice"]):
                assert starts(name, own), f"{path.name} imports the glue: {name}"


def test_the_endpoint_imports_nothing_above_it() -> None:
    """`endpoint/` (OTA, pairing, the hub, the connection) knows no bridge, entity or action."""
    above = [f"openai_realtime_voice.{under}" for under in ABOVE_ENDPOINT]
    for path in modules("endpoint"):
        for name in imports_of(path):
            assert not starts(name, above), f"endpoint/{path.name} imports {name}"


def test_the_layer_check_sees_deferred_imports() -> None:
    """The scan counts imports inside functions and under `TYPE_CHECKING` too."""
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from ..bridge import SpeechBridge\n"
        "def late():\n    from ..services import SERVICE_SPEAK\n"
        "from .hub import DATA_HUB\n"
    )
    found = imports(source, ("openai_realtime_voice", "endpoint"))
    assert {
        "openai_realtime_voice.bridge.SpeechBridge",
        "openai_realtime_voice.services",
        "openai_realtime_voice.endpoint.hub",
    } <= found


def module_name(path: Path, package: Path = PACKAGE) -> str:
    """The dotted name of one file of a package (a package by its `__init__`)."""
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def dependency_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    """Which modules of a package each module imports (deferred and type-checking imports
    included).

    `from . import policy` depends on the submodule, not on the package's `__init__`.
    """
    paths = {module_name(path, root): path for path in root.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        package = path.relative_to(root.parent).parts[:-1]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                found = imports(ast.unparse(node), package)
                base = min(found, key=len)
                submodules = found - {base}
                targets.update(submodules if submodules <= paths.keys() else found)
        graph[name] = {target for target in targets if target in paths and target != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while (member := stack.pop()) != node:
                group.append(member)
            group.append(node)
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


@pytest.mark.parametrize(
    "root",
    [PACKAGE, PACKAGE.parent.parent / "simulator", PACKAGE.parent.parent / "realtime_server"],
    ids=["integration", "simulator", "realtime_server"],
)
def test_no_import_cycle(root: Path) -> None:
    """No two modules of the integration, the device simulator or the test server import each
    other, directly or around a circle (an import only for type checking counts too)."""
    assert cycles(dependency_graph(root)) == []


def test_the_cycle_check_finds_a_circle() -> None:
    """The check sees a circle through three modules, and none in a chain."""
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_each_bridge_module_has_a_test_module() -> None:
    """`bridge/<module>.py` is tested by `tests/test_bridge_<module>.py`."""
    tests = Path(__file__).parent
    missing = [
        path.name
        for path in modules("bridge")
        if path.stem != "__init__" and not (tests / f"test_bridge_{path.stem}.py").exists()
    ]
    assert missing == []
