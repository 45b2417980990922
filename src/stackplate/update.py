"""Updating a project: newer template versions, and answers changed by add-service and remove-service.

Every change goes through ``copier update``: Copier renders the old and new
template versions and three-way merges the difference into the project. The
marker lines keep that merge clean, since template changes stay between them
and user changes outside. Afterwards every compose block is set to exactly what
the new answers render, every docs block to what the project's
``scripts/docs.py`` generates from the compose files, and ``stackplate check`` runs.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import copier

from stackplate.answers import first_problem, published_ports
from stackplate.check import DOCS_SCRIPT, check_project, marker_problems, write_docs
from stackplate.markers import MarkerError
from stackplate.project import (
    ProjectError,
    block_drift,
    conflicted_files,
    load_answers,
    project_files,
    reference_render,
    regenerate_blocks,
    require_clean_git,
    template_folder,
    template_source,
    user_answers,
)

# Where add-service starts looking for a free port, by kind.
FIRST_PORT = {"fastapi": 8000, "react-vite": 3000}


@dataclass
class UpdateResult:
    regenerated: list[str] = field(default_factory=list)  # files whose blocks were reset after the merge
    conflicts: list[str] = field(default_factory=list)  # files with inline conflict markers left
    problems: list[str] = field(default_factory=list)  # what stackplate check found afterwards
    removed: list[str] = field(default_factory=list)  # files remove-service deleted itself (--force)

    @property
    def ok(self) -> bool:
        return not self.conflicts and not self.problems


def update_project(
    project: Path,
    *,
    vcs_ref: str | None = None,
    data: dict[str, Any] | None = None,
    force: bool = False,
) -> UpdateResult:
    """``copier update`` the project to ``vcs_ref`` (default: the newest version) with ``data``.

    Refuses a dirty git tree, broken markers, answers that break the rules,
    and (unless ``force``) blocks edited by hand, which the update would
    overwrite.
    """
    require_clean_git(project)
    _refuse_broken_markers(project)
    if not force:
        _refuse_drift(project)
    recorded = load_answers(project)
    problem = first_problem({**user_answers(recorded), **(data or {})})
    if problem:
        raise ProjectError(problem)
    _copier_update(project, vcs_ref, data or {})
    result = UpdateResult(conflicts=conflicted_files(project))
    with reference_render(project) as reference:
        result.regenerated = regenerate_blocks(project, reference)
        _regenerate_docs(project, result)
        result.problems = check_project(project, reference)
    return result


def _regenerate_docs(project: Path, result: UpdateResult) -> None:
    """The docs blocks written anew from the compose blocks just regenerated.

    A docs page whose conflicts lay inside its blocks is resolved by that;
    one with conflicts left, or compose files that cannot be read yet, is for
    the user (stackplate check, run next, names what is left).
    """
    if not (project / DOCS_SCRIPT).is_file():
        return
    try:
        written = write_docs(project)
    except (ProjectError, MarkerError):
        return
    result.regenerated += [name for name in written if name not in result.regenerated]
    still = set(conflicted_files(project))
    result.conflicts = [name for name in result.conflicts if name not in written or name in still]


def _refuse_broken_markers(project: Path) -> None:
    problems = marker_problems(project)
    if problems:
        raise ProjectError(f"fix the markers first: {problems[0]}")


def _refuse_drift(project: Path) -> None:
    with reference_render(project) as reference:
        drift = block_drift(project, reference)
    if drift:
        more = f" (and {len(drift) - 1} more)" if len(drift) > 1 else ""
        raise ProjectError(
            f"{drift[0]}{more}. The blocks belong to the template: move your change "
            "outside the markers (or change the answers), or use --force to let the update "
            "regenerate them"
        )


@contextlib.contextmanager
def _in_folder_copier_searches(project: Path) -> Iterator[None]:
    """Copier looks for a relative ``_src_path`` in the current folder: be where it is found.

    ``template_source`` finds it (see ``template_folders``), or says what was
    tried; the update cannot take another template, since Copier renders the
    old version from the recorded one.
    """
    recorded = load_answers(project)
    template_source(project, recorded)
    source = Path(recorded["_src_path"])
    found_in = None if source.is_absolute() else template_folder(project, source)
    before = Path.cwd()
    if found_in is not None:
        os.chdir(found_in)
    try:
        yield
    finally:
        os.chdir(before)


def _copier_update(project: Path, vcs_ref: str | None, data: dict[str, Any]) -> None:
    project = project.resolve()  # before the folder changes
    try:
        with _in_folder_copier_searches(project):
            _run_copier_update(project, vcs_ref, data)
    except ValueError as error:
        raise ProjectError(str(error).splitlines()[0]) from error


def _run_copier_update(project: Path, vcs_ref: str | None, data: dict[str, Any]) -> None:
    copier.run_update(
        str(project),
        data=data,
        defaults=True,
        overwrite=True,
        unsafe=True,
        quiet=True,
        conflict="inline",
        vcs_ref=vcs_ref,
    )


# -------------------------------------------------------------- services


def add_service(
    project: Path, name: str, kind: str, port: int | None = None, api: str | None = None
) -> UpdateResult:
    """Add an app service to the answers and update the project at its current template version."""
    recorded = load_answers(project)
    services = list(recorded.get("services") or [])
    entry: dict[str, Any] = {"name": name, "kind": kind}
    if kind != "node-worker":
        entry["port"] = port if port is not None else _free_port(recorded, kind)
    elif port is not None:
        entry["port"] = port  # refused below, with the rule's own words
    if api:
        entry["api"] = api
    return update_project(project, vcs_ref=recorded.get("_commit"), data={"services": [*services, entry]})


def _free_port(answers: dict[str, Any], kind: str) -> int:
    taken = published_ports(answers)
    port = FIRST_PORT.get(kind, 8000)
    while port in taken:
        port += 1
    return port


def edited_service_files(project: Path, name: str) -> list[str]:
    """Files of ``services/NAME`` that differ from, or are missing in, a fresh render."""
    folder = f"services/{name}"
    with reference_render(project) as reference:
        edited = []
        for relative in project_files(project, folder):
            rendered = reference / relative
            if not rendered.is_file() or rendered.read_bytes() != (project / relative).read_bytes():
                edited.append(relative)
    return edited


def remove_service(project: Path, name: str, *, force: bool = False) -> UpdateResult:
    """Drop an app service from the answers and update; its files go too.

    Copier deletes a removed service's files even when they were edited, so
    this refuses while the folder holds changes made after the render, unless
    ``force`` (then whatever the folder still holds is removed as well; git
    keeps the history).
    """
    recorded = load_answers(project)
    services = list(recorded.get("services") or [])
    remaining = [service for service in services if service.get("name") != name]
    if len(remaining) == len(services):
        known = ", ".join(str(s.get("name")) for s in services)
        raise ProjectError(f"no app service {name!r} in this project (it has: {known})")
    if not force:
        require_clean_git(project)
        edited = edited_service_files(project, name)
        if edited:
            raise ProjectError(
                f"services/{name} holds changes made after it was rendered: {', '.join(edited)}; "
                "move them elsewhere or use --force to delete them with the service"
            )
    result = update_project(
        project, vcs_ref=recorded.get("_commit"), data={"services": remaining}, force=force
    )
    leftovers = project / "services" / name
    if leftovers.exists():
        result.removed = sorted(str(p.relative_to(project)) for p in leftovers.rglob("*") if p.is_file())
        shutil.rmtree(leftovers)
        result.conflicts = [c for c in result.conflicts if not c.startswith(f"services/{name}/")]
    return result
