"""A rendered project: its recorded answers, its git state, and what the template renders for it."""

from __future__ import annotations

import contextlib
import re
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from stackplate import markers
from stackplate.template import RenderError, render_project

ANSWERS_FILE = ".copier-answers.yml"
CONFLICT_LINES = ("<<<<<<< before updating", ">>>>>>> after updating")
# Folders never searched for marker files (dependencies, caches, git itself).
_SKIPPED_DIRS = {".git", "node_modules", ".venv", "__pycache__", ".pytest_cache", "dist"}
_MAX_TEXT_BYTES = 1 << 20


class ProjectError(Exception):
    """The project cannot be worked on; the message is one line for the user."""


# ------------------------------------------------------------------ answers


def load_answers(project: Path) -> dict[str, Any]:
    """The answers Copier recorded, with ``_src_path`` and ``_commit``."""
    path = project / ANSWERS_FILE
    if not path.is_file():
        raise ProjectError(f"{project} is not a stackplate project: no {ANSWERS_FILE}")
    answers = yaml.safe_load(path.read_text()) or {}
    if "_src_path" not in answers:
        raise ProjectError(f"{path}: no _src_path; was it written by copier?")
    return answers


# What a template source that is not a local folder looks like: a URL, scp-style git, a shortcut.
_REMOTE_SOURCE = re.compile(r"^(?:[A-Za-z][A-Za-z0-9+.-]*://|[\w.-]+@[\w.-]+:|gh:|gl:)")


def template_folders(project: Path) -> list[Path]:
    """Where a relative local ``_src_path`` is looked for, in order.

    ``copier copy tpl proj`` records ``_src_path: tpl`` as given, relative to
    wherever it ran, and Copier looks for it in the current folder. So: the
    project folder, the current folder (Copier's choice), and the project's
    parent (where ``copier copy tpl proj`` usually runs).
    """
    folders = [project, Path.cwd(), project.absolute().parent]
    return list({folder.absolute(): folder.absolute() for folder in folders}.values())


def template_folder(project: Path, source: Path) -> Path | None:
    """The first of :func:`template_folders` in which the relative ``source`` is a folder."""
    return next((folder for folder in template_folders(project) if (folder / source).is_dir()), None)


def template_source(project: Path, answers: Mapping[str, Any], template: str | Path | None = None) -> str:
    """The template to render the project from: ``template`` if given, else the recorded ``_src_path``.

    A local path comes back absolute (a relative one looked up in
    :func:`template_folders`); a URL as it is.
    """
    given = template is not None
    source = str(template if given else answers["_src_path"])
    if _REMOTE_SOURCE.match(source):
        return source
    path = Path(source).expanduser()
    # A path given on the command line is the user's, relative to where they are.
    if path.is_absolute() or given:
        if path.is_dir():
            return str(path.resolve())
        candidates = [path.absolute()]
    else:
        found_in = template_folder(project, path)
        if found_in is not None:
            return str((found_in / path).resolve())
        candidates = [folder / path for folder in template_folders(project)]
    tried = ", ".join(str(candidate) for candidate in candidates)
    if given:
        raise ProjectError(f"--template {source}: no template folder at {tried}")
    raise ProjectError(
        f"{project / ANSWERS_FILE}: _src_path {source!r} is not a template folder (tried {tried}); "
        f"pass --template PATH, or set _src_path in {ANSWERS_FILE} to the template's path or git URL"
    )


def user_answers(answers: Mapping[str, Any]) -> dict[str, Any]:
    """The answers without Copier's private keys (``_src_path``, ``_commit``)."""
    return {key: value for key, value in answers.items() if not key.startswith("_")}


# ---------------------------------------------------------------------- git


def git(project: Path, *args: str) -> str:
    result = subprocess.run(["git", *args], cwd=project, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ProjectError(f"git {' '.join(args)} failed in {project}: {result.stderr.strip()}")
    return result.stdout


def require_clean_git(project: Path) -> None:
    """Copier updates merge against git: the project must be a repository with nothing uncommitted."""
    inside = subprocess.run(
        ["git", "rev-parse", "--is-inside-work-tree"],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
    )
    if inside.returncode != 0:
        raise ProjectError(f"{project} is not a git repository: git init, then commit the project")
    dirty = git(project, "status", "--porcelain").splitlines()
    if dirty:
        names = ", ".join(line[3:] for line in dirty[:5]) + (" ..." if len(dirty) > 5 else "")
        raise ProjectError(f"{project} has uncommitted changes ({names}): commit or stash them first")


def project_files(project: Path, under: str = ".") -> list[str]:
    """Files git tracks or would track (not ignored) below ``under``, relative to the project."""
    listed = git(project, "ls-files", "--cached", "--others", "--exclude-standard", "--", under)
    return sorted({line for line in listed.splitlines() if (project / line).is_file()})


# ------------------------------------------------------------ marker files


def marker_files(root: Path) -> list[Path]:
    """Text files below ``root`` holding at least one marker line."""
    found = []
    for path in sorted(root.rglob("*")):
        if _SKIPPED_DIRS.intersection(path.relative_to(root).parts) or not path.is_file():
            continue
        if path.stat().st_size > _MAX_TEXT_BYTES:
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        if markers.has_markers(text):
            found.append(path)
    return found


def conflicted_files(project: Path) -> list[str]:
    """Files that still hold Copier's inline conflict markers."""
    conflicted = []
    for name in project_files(project):
        with contextlib.suppress(UnicodeDecodeError, OSError):
            lines = (project / name).read_text(encoding="utf-8").splitlines()
            if any(line.rstrip() in CONFLICT_LINES for line in lines):
                conflicted.append(name)
    return conflicted


# --------------------------------------------------------- reference render


@contextlib.contextmanager
def reference_render(
    project: Path,
    answers: Mapping[str, Any] | None = None,
    vcs_ref: str | None = None,
    template: str | Path | None = None,
) -> Iterator[Path]:
    """What the template renders for the project, in a temporary folder.

    By default the template, version and answers recorded in the project;
    ``answers`` (whole user answers), ``vcs_ref`` and ``template`` override them.
    """
    recorded = load_answers(project)
    source = template_source(project, recorded, template)
    data = user_answers(recorded if answers is None else answers)
    with tempfile.TemporaryDirectory(prefix="stackplate-reference-") as folder:
        destination = Path(folder) / "project"
        try:
            render_project(destination, data, template=source, vcs_ref=vcs_ref or recorded.get("_commit"))
        except RenderError as error:
            raise ProjectError(str(error)) from error
        yield destination


@dataclass(frozen=True)
class Drift:
    """A block whose content differs from what the answers render."""

    file: str
    block: str
    line: int  # 1-based line in the project file where they first differ
    found: str | None
    expected: str | None

    def __str__(self) -> str:
        if self.found is None and self.expected is None:
            return f"{self.file}: block {self.block} is missing (the template renders it)"
        return (
            f"{self.file}:{self.line}: block {self.block} differs from what the answers render: "
            f"found {self.found!r}, expected {self.expected!r}"
        )


def _paired_marker_files(project: Path, reference: Path) -> Iterator[tuple[str, Path, str]]:
    """Each marker file of the reference render that the project also has: name, project path, rendered text.

    A file the user deleted is theirs to delete, so it is skipped.
    """
    for rendered in marker_files(reference):
        name = str(rendered.relative_to(reference))
        if (project / name).is_file():
            yield name, project / name, rendered.read_text(encoding="utf-8")


def block_drift(project: Path, reference: Path) -> list[Drift]:
    """Blocks of the project that differ from the reference render's blocks.

    Only the compose form: Markdown blocks are written from the compose files
    by the project's scripts/docs.py, not from the answers (check.docs_problems).
    """
    drift = []
    for name, path, rendered in _paired_marker_files(project, reference):
        text = path.read_text(encoding="utf-8")
        ours, theirs = markers.parse(text, name), markers.parse(rendered, name)
        lines, expected_lines = text.splitlines(), rendered.splitlines()
        for block, expected in theirs.items():
            if expected.style == markers.MARKDOWN:
                continue
            if block not in ours:
                drift.append(Drift(name, block, 0, None, None))
                continue
            found_body = ours[block].body(lines)
            expected_body = expected.body(expected_lines)
            if found_body != expected_body:
                drift.append(_first_difference(name, ours[block], found_body, expected_body))
    return drift


def _first_difference(name: str, block: markers.Block, found: list[str], expected: list[str]) -> Drift:
    for offset in range(max(len(found), len(expected))):
        here = found[offset] if offset < len(found) else "(end of block)"
        there = expected[offset] if offset < len(expected) else "(end of block)"
        if here != there:
            return Drift(name, block.name, block.begin + 2 + offset, here.strip(), there.strip())
    raise AssertionError("bodies differ but no line does")


def regenerate_blocks(project: Path, reference: Path) -> list[str]:
    """Give every compose block of the project the reference render's content; the files changed.

    Markdown blocks are left to the project's scripts/docs.py (check.write_docs).
    """
    changed = []
    for name, path, rendered in _paired_marker_files(project, reference):
        present = markers.parse(path.read_text(encoding="utf-8"), name)
        lines = rendered.splitlines()
        bodies = {
            block: "\n".join(wanted.body(lines))
            for block, wanted in markers.parse(rendered, name).items()
            if wanted.style == markers.COMPOSE and block in present
        }
        if markers.rewrite_file(path, bodies, name):
            changed.append(name)
    return changed
