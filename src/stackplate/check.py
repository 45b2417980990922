"""``stackplate check``: is a project's template-owned part what its answers render?"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
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


# The rendered project's own docs checker; older template versions have none.
DOCS_CHECKER = "scripts/check_docs.py"


def docs_problems(project: Path) -> list[str]:
    """What the project's ``scripts/check_docs.py`` finds (the docs against the compose files).

    The script is the one implementation: stackplate only imports it from the
    project and calls ``problems(project)``. No script, no check.
    """
    script = project / DOCS_CHECKER
    if not script.is_file():
        return []
    name = f"_stackplate_check_docs_{abs(hash(str(script.resolve())))}"
    spec = importlib.util.spec_from_file_location(name, script)
    if spec is None or spec.loader is None:
        return [f"{DOCS_CHECKER}: cannot be loaded"]
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
        return [str(line) for line in module.problems(project)]
    except (Exception, SystemExit) as error:
        return [f"{DOCS_CHECKER}: failed: {type(error).__name__}: {error}"]
    finally:
        sys.modules.pop(name, None)


def check_project(
    project: Path, reference: Path | None = None, template: str | Path | None = None
) -> list[str]:
    """Every problem found, one line each; empty when the project is in sync.

    Markers well formed; every block equal to what the recorded answers render
    with the recorded template version (``reference``, a render of exactly
    that, when the caller has one); the compose combinations valid; the
    docs in step with the compose files (``scripts/check_docs.py``).
    ``template`` replaces the recorded template source.
    """
    problems = marker_problems(project)
    if not problems:
        render = (
            contextlib.nullcontext(reference) if reference else reference_render(project, template=template)
        )
        with render as rendered:
            problems += [str(drift) for drift in block_drift(project, rendered)]
    problems += compose.problems(project)
    problems += docs_problems(project)
    return problems
