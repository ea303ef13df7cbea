"""scripts/release, as the release workflow runs it on a tag: the checks and the HACS zip."""

from __future__ import annotations

import json
from pathlib import Path
import re
import subprocess
import sys
import zipfile

import pytest

ROOT = Path(__file__).parent.parent
INTEGRATION = ROOT / "custom_components" / "openai_realtime_voice"
VERSION = json.loads((INTEGRATION / "manifest.json").read_text())["version"]


DATED = f"## {VERSION} - 2026-12-05"


def git(root: Path, *args: str) -> str:
    """Run git in `root` (a throwaway clone; never this repository's tags)."""
    return subprocess.run(
        ["git", "-C", str(root), *args], capture_output=True, text=True, check=True
    ).stdout


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A temporary clone of this repository whose current version's CHANGELOG section is dated
    and tagged, as the lead releases it; a stray bytecode cache must not ship."""
    root = tmp_path / "repo"
    subprocess.run(
        ["git", "clone", "--quiet", "--no-hardlinks", str(ROOT), str(root)],
        check=True,
        capture_output=True,
    )
    git(root, "config", "user.email", "release-test@example.invalid")
    git(root, "config", "user.name", "Release test")
    changelog = (root / "CHANGELOG.md").read_text(encoding="utf-8")
    changelog = re.sub(
        rf"^## {re.escape(VERSION)}\b.*$", DATED, changelog, count=1, flags=re.MULTILINE
    )
    (root / "CHANGELOG.md").write_text(changelog, encoding="utf-8")
    # The section may already be dated as released: the release commit may then be empty.
    git(root, "commit", "--quiet", "--allow-empty", "-am", f"Release {VERSION}")
    git(root, "tag", f"v{VERSION}")
    cache = root / "custom_components" / "openai_realtime_voice" / "__pycache__"
    cache.mkdir(exist_ok=True)
    (cache / "const.cpython-314.pyc").write_bytes(b"\0")
    return root


def release(root: Path, tag: str) -> subprocess.CompletedProcess[str]:
    """`scripts/release TAG --root ROOT --out ROOT/dist`, as the workflow calls it."""
    return subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "release"),
            tag,
            "--root",
            str(root),
            "--out",
            str(root / "dist"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )


def test_hacs_json_asks_for_the_release_zip() -> None:
    """HACS installs openai_realtime_voice.zip from the release instead of the repository tree."""
    hacs = json.loads((ROOT / "hacs.json").read_text())
    assert hacs["zip_release"] is True
    assert hacs["filename"] == "openai_realtime_voice.zip"


@pytest.mark.parametrize("tag", [f"v{VERSION}", VERSION])
def test_release_builds_the_zip_hacs_installs(tree: Path, tag: str) -> None:
    """The zip holds the integration folder's files at its root, caches left out."""
    result = release(tree, tag)
    assert result.returncode == 0, result.stderr
    archive = tree / "dist" / "openai_realtime_voice.zip"
    assert f"tag v{VERSION}" in result.stdout
    assert f"version {VERSION}" in result.stdout
    with zipfile.ZipFile(archive) as built:
        names = set(built.namelist())
        manifest = json.loads(built.read("manifest.json"))
    source = tree / "custom_components" / "openai_realtime_voice"
    shipped = {
        p.relative_to(source).as_posix()
        for p in source.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert names == shipped
    assert {"manifest.json", "__init__.py", "translations/en.json", "brand/icon.png"} <= names
    assert manifest["version"] == VERSION
    notes = (tree / "dist" / "release-notes.md").read_text(encoding="utf-8")
    assert notes.strip()
    assert not re.search(r"^## ", notes, re.MULTILINE)  # this version's section only (### inside)


def test_release_zip_is_reproducible(tree: Path) -> None:
    """The same tree gives the same bytes (fixed timestamps, sorted entries)."""
    assert release(tree, VERSION).returncode == 0
    first = (tree / "dist" / "openai_realtime_voice.zip").read_bytes()
    assert release(tree, VERSION).returncode == 0
    assert (tree / "dist" / "openai_realtime_voice.zip").read_bytes() == first


def test_release_builds_what_the_tag_holds(tree: Path) -> None:
    """A commit after the tag does not reach the zip: the release is the tagged tree."""
    later = tree / "custom_components" / "openai_realtime_voice" / "after_the_tag.py"
    later.write_text('"""Committed after the release."""\n')
    git(tree, "add", str(later))
    git(tree, "commit", "--quiet", "-m", "After the release")
    assert release(tree, f"v{VERSION}").returncode == 0
    with zipfile.ZipFile(tree / "dist" / "openai_realtime_voice.zip") as built:
        assert "after_the_tag.py" not in built.namelist()


@pytest.mark.parametrize(
    ("tag", "edit", "reason"),
    [
        ("v99.0.0", None, "no tag 'v99.0.0' or '99.0.0'"),
        ("release-1", None, "is not a version like v0.2.0"),
        (VERSION, ("CHANGELOG.md", " - 2026-12-05", " (unreleased)"), "as unreleased"),
        (VERSION, ("CHANGELOG.md", " - 2026-12-05", ""), "has no date"),
        (VERSION, ("CHANGELOG.md", f"## {VERSION}", "## 0.0.0"), "has no '## "),
        (VERSION, ("hacs.json", '"zip_release": true', '"zip_release": false'), "zip_release"),
        (
            VERSION,
            ("custom_components/openai_realtime_voice/manifest.json", f'"{VERSION}"', '"9.9.9"'),
            "manifest.json has version",
        ),
    ],
)
def test_release_refuses_a_tree_that_does_not_follow_the_tag(
    tree: Path, tag: str, edit: tuple[str, str, str] | None, reason: str
) -> None:
    """A tag the manifest or CHANGELOG do not follow fails the release, and builds nothing."""
    if edit is not None:
        name, old, new = edit
        text = (tree / name).read_text(encoding="utf-8")
        assert old in text
        (tree / name).write_text(text.replace(old, new, 1), encoding="utf-8")
        git(tree, "commit", "--quiet", "-am", "Edit")
        git(tree, "tag", "--force", f"v{VERSION}")
    result = release(tree, tag)
    assert result.returncode == 1
    assert reason in result.stderr
    assert not (tree / "dist").exists()
