"""The stand-ins for the service and the device are packages of their own, in small modules.

`realtime_server/` (the OpenAI Realtime service) and `simulator/` (the xiaozhi board) are run
by `scripts/develop`, `scripts/simulate` and the benchmarks, so they import nothing from
`tests/`; like the integration, no module of theirs is over 500 lines.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
STAND_INS = ("realtime_server", "simulator")
MAX_LINES = 500


def modules(package: str) -> list[Path]:
    """The Python files of one stand-in (it must exist)."""
    found = sorted((ROOT / package).rglob("*.py"))
    assert found, f"{package}/ has no modules"
    return found


def imported(path: Path) -> set[str]:
    """The absolute module names a file imports (relative imports stay in the package)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("package", STAND_INS)
def test_stand_ins_import_nothing_from_tests(package: str) -> None:
    """A stand-in runs without the test suite on the path."""
    for path in modules(package):
        for name in imported(path):
            assert name != "tests", f"{path.relative_to(ROOT)} imports {name}"
            assert not name.startswith("tests."), f"{path.relative_to(ROOT)} imports {name}"


@pytest.mark.parametrize("package", STAND_INS)
def test_stand_in_modules_stay_small(package: str) -> None:
    """Each module holds one concern: none is over 500 lines."""
    for path in modules(package):
        lines = len(path.read_text(encoding="utf-8").splitlines())
        assert lines <= MAX_LINES, f"{path.relative_to(ROOT)} has {lines} lines"


def test_the_test_server_is_not_under_tests() -> None:
    """The stand-in service left `tests/`: nothing there defines the server any more."""
    assert not (ROOT / "tests" / "realtime_server.py").exists()
    assert not (ROOT / "tests" / "realtime_discipline.py").exists()
    for path in (ROOT / "tests").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        classes = {node.name for node in ast.walk(tree) if isinstance(node, ast.ClassDef)}
        assert "RealtimeServer" not in classes, f"{path.relative_to(ROOT)} defines one"
