"""What the Registry gets: pyproject's metadata, and which files `comfy node pack` puts in the archive.

In a git checkout comfy-cli archives the tracked files minus the .comfyignore matches (gitignore
syntax), plus pyproject's ``[tool.comfy] includes``. The matcher below follows gitignore's rules for
the kinds of patterns .comfyignore uses, and is checked against git's own matcher first.
"""
from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
import tomllib

import pytest

from harness.host import REPO

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
DEVELOPMENT_ONLY = ("tests/", "bench/", "scripts/", ".ci/", "docs/")


def git(*args: str) -> list[str]:
    if not shutil.which("git") or not (REPO / ".git").exists():
        pytest.skip("needs the git checkout: the archive is built from git's file list")
    result = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True)
    return [line for line in result.stdout.split("\0" if "-z" in args else "\n") if line]


def comfyignore_patterns() -> list[str]:
    lines = (REPO / ".comfyignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def _matches(path: str, pattern: str) -> bool:
    """gitignore: a trailing / matches directories only; a / elsewhere anchors the pattern at the root,
    otherwise it matches a name at any depth; a matched directory excludes everything below it."""
    directory_only, pattern = pattern.endswith("/"), pattern.rstrip("/")
    anchored, pattern = "/" in pattern, pattern.lstrip("/")
    parts = path.split("/")
    candidates = ["/".join(parts[:i]) for i in range(1, len(parts))] + ([] if directory_only else [path])
    for candidate in candidates:
        name = candidate if anchored else candidate.rsplit("/", 1)[-1]
        if fnmatch.fnmatchcase(name, pattern):
            return True
    return False


def ignored(path: str, patterns: list[str]) -> bool:
    """The last matching pattern decides; ``!pattern`` takes a path back in."""
    verdict = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        if _matches(path, pattern[1:] if negated else pattern):
            verdict = not negated
    return verdict


def archive(patterns: list[str]) -> set[str]:
    """The files `comfy node pack` would archive once the working tree is committed: the tracked and the
    new (not git-ignored) files, minus the .comfyignore matches, plus the includes."""
    files = [f for f in git("ls-files", "-z", "--cached", "--others", "--exclude-standard") if (REPO / f).is_file()]
    packed = {f for f in files if not ignored(f, patterns)}
    for include in PYPROJECT["tool"]["comfy"].get("includes", []):
        packed |= {f for f in files if f == include or f.startswith(include.rstrip("/") + "/")}
    return packed


def test_the_matcher_agrees_with_git():
    patterns = comfyignore_patterns()
    tracked = git("ls-files", "-z", "--cached")
    by_git = set(git("ls-files", "-z", "--cached", "--ignored", "--exclude-from=.comfyignore"))
    assert by_git, ".comfyignore excludes no tracked file"
    assert {f for f in tracked if ignored(f, patterns)} == by_git


def test_the_archive_leaves_development_files_out():
    packed = archive(comfyignore_patterns())
    for folder in DEVELOPMENT_ONLY:
        assert not [f for f in packed if f.startswith(folder)], f"{folder} would be in the Registry archive"
    assert "Makefile" not in packed
    assert not [f for f in packed if "__pycache__" in f or f.endswith(".pyc") or f.startswith("test-output/")]


def test_the_archive_keeps_the_pack():
    packed = archive(comfyignore_patterns())
    for name in ("__init__.py", "pyproject.toml", "requirements.txt", "README.md", "LICENSE"):
        assert name in packed, name
    packages = {p.parent.name for p in REPO.glob("*/__init__.py")} - {"tests", "bench", "scripts"}
    assert {"nodes", "flow", "keyframes", "propagation", "video", "host"} <= packages
    for package in packages:
        modules = {p.relative_to(REPO).as_posix() for p in (REPO / package).glob("*.py")}
        assert modules <= packed, f"{package}/ would be missing from the archive: {sorted(modules - packed)}"
    workflows = {p.relative_to(REPO).as_posix() for p in (REPO / "example_workflows").glob("*.*")}
    assert {f for f in workflows if f.endswith(".json")} and workflows <= packed
    for include in PYPROJECT["tool"]["comfy"]["includes"]:
        assert (REPO / include).exists() and not ignored(include + "/x", comfyignore_patterns()), include


def test_pyproject_has_what_the_registry_reads():
    project = PYPROJECT["project"]
    assert set(project["urls"]) == {"Homepage", "Documentation", "Repository", "Issues"}
    assert all(url.startswith("https://") for url in project["urls"].values())
    assert re.fullmatch(r"\d+\.\d+\.\d+", project["version"])
    assert re.fullmatch(r"[a-z0-9][a-z0-9._-]*[a-z0-9]", project["name"]) and "comfyui" not in project["name"].lower()
    comfy = PYPROJECT["tool"]["comfy"]
    assert comfy["PublisherId"] and comfy["DisplayName"] and comfy["Icon"].startswith("https://")
    assert comfy["includes"] == ["example_workflows"]
