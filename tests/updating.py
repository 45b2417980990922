"""Helpers of the update tests: versioned template repositories and committed projects."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import copier

from stackplate import markers

REPO = Path(__file__).resolve().parents[1]
TEMPLATE_PARTS = (
    "copier.yml",
    "template",
    "migrations",
    "extensions",
    "src/stackplate/answers.py",
    "src/stackplate/markers.py",
)
GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
}


def git(cwd: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", "-c", "init.defaultBranch=main", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **GIT_ENV},
    )
    assert result.returncode == 0, f"git {args}: {result.stderr}"
    return result.stdout


def commit_all(cwd: Path, message: str) -> None:
    git(cwd, "add", "-A")
    git(cwd, "commit", "-q", "--allow-empty", "-m", message)


def make_template_repo(destination: Path) -> Path:
    """The template's files in a new git repository, committed and tagged v1."""
    destination.mkdir(parents=True)
    for part in TEMPLATE_PARTS:
        source, target = REPO / part, destination / part
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, target)
    git(destination, "init", "-q")
    commit_all(destination, "template v1")
    git(destination, "tag", "v1")
    return destination


def release(template: Path, tag: str, change: Callable[[Path], None]) -> None:
    """Change the template repository, commit and tag the result as a new version."""
    change(template)
    commit_all(template, f"template {tag}")
    git(template, "tag", tag)


def versioned_template(folder: Path, v2_change: Callable[[Path], None]) -> Path:
    """A template repository tagged v1 (today's files) and v2 (``v2_change`` applied)."""
    repo = make_template_repo(folder / "template")
    release(repo, "v2", v2_change)
    return repo


def edit(path: Path, old: str, new: str, count: int = -1) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, count))


def render_committed(template: Path, destination: Path, vcs_ref: str = "v1", **data) -> Path:
    """A project rendered from ``template`` at ``vcs_ref`` and committed to a new git repository."""
    copier.run_copy(
        str(template), str(destination), data=data, defaults=True, unsafe=True, quiet=True, vcs_ref=vcs_ref
    )
    git(destination, "init", "-q")
    commit_all(destination, "rendered")
    return destination


def outside_blocks(text: str) -> str:
    """The part of a file the user owns: the text with every block body left out."""
    lines = text.splitlines(keepends=True)
    for block in sorted(markers.parse(text).values(), key=lambda b: b.begin, reverse=True):
        del lines[block.begin + 1 : block.end]
    return "".join(lines)


def leftover_rejects(project: Path) -> list[str]:
    return [str(p.relative_to(project)) for p in project.rglob("*.rej")]
