"""``stackplate check``: is a project's template-owned part what its answers render?"""

from __future__ import annotations

import contextlib
from pathlib import Path

from stackplate import compose, markers
from stackplate.project import block_drift, marker_files, reference_render


def marker_problems(project: Path) -> list[str]:
    """One line for each file whose markers break the rules."""
    problems = []
    for path in marker_files(project):
        try:
            markers.parse(path.read_text(encoding="utf-8"), str(path.relative_to(project)))
        except markers.MarkerError as error:
            problems.append(str(error))
    return problems


def check_project(project: Path, reference: Path | None = None) -> list[str]:
    """Every problem found, one line each; empty when the project is in sync.

    Markers well formed; every block equal to what the recorded answers render
    with the recorded template version (``reference``, a render of exactly
    that, when the caller has one); the compose combinations valid.
    """
    problems = marker_problems(project)
    if not problems:
        render = contextlib.nullcontext(reference) if reference else reference_render(project)
        with render as rendered:
            problems += [str(drift) for drift in block_drift(project, rendered)]
    problems += compose.problems(project)
    return problems
