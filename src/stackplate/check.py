"""``stackplate check``: is a project's template-owned part what its answers render?"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

from stackplate import compose, markers
from stackplate.project import ProjectError, block_drift, marker_files, reference_render


def marker_problems(project: Path) -> list[str]:
    """One line for each file whose markers break the rules."""
    problems = []
    for path in marker_files(project):
        try:
            markers.parse(path.read_text(encoding="utf-8"), str(path.relative_to(project)))
        except markers.MarkerError as error:
            problems.append(str(error))
    return problems


# The rendered project's own docs script (it writes and checks the docs blocks);
# template versions before it had only a checker, older ones neither.
DOCS_SCRIPT = "scripts/docs.py"
LEGACY_DOCS_CHECKER = "scripts/check_docs.py"


@contextlib.contextmanager
def project_script(project: Path, relative: str) -> Iterator[ModuleType]:
    """A script of the project (scripts/docs.py, scripts/swarm.py) as a module, for the ``with`` block."""
    script = project / relative
    name = f"_stackplate_script_{abs(hash(str(script.resolve())))}"
    spec = importlib.util.spec_from_file_location(name, script)
    if spec is None or spec.loader is None:
        raise ProjectError(f"{relative}: cannot be loaded")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(name, None)


def docs_problems(project: Path) -> list[str]:
    """What the project's ``scripts/docs.py`` finds: stale docs blocks, production ports, links.

    The script is the one implementation: stackplate only imports it from the
    project and calls ``problems(project)`` (an older project's
    ``scripts/check_docs.py`` the same way). No script, no check.
    """
    relative = next((r for r in (DOCS_SCRIPT, LEGACY_DOCS_CHECKER) if (project / r).is_file()), None)
    if relative is None:
        return []
    try:
        with project_script(project, relative) as module:
            return [str(line) for line in module.problems(project)]
    except (Exception, SystemExit) as error:
        return [f"{relative}: failed: {type(error).__name__}: {error}"]


def write_docs(project: Path) -> list[str]:
    """Rewrite the docs blocks with the project's ``scripts/docs.py``; the files it changed.

    A broken marker is a :class:`markers.MarkerError` and unreadable compose
    files a :class:`ProjectError`; either way nothing is written.
    """
    if not (project / DOCS_SCRIPT).is_file():
        raise ProjectError(
            f"{project} has no {DOCS_SCRIPT} (a project of an older template): stackplate update brings it"
        )
    with project_script(project, DOCS_SCRIPT) as module:
        try:
            return [str(name) for name in module.write(project)]
        except module.markers.MarkerError as error:
            # The project's copy of the marker module: the same rules, another class.
            raise markers.MarkerError(error.filename, error.line, error.block, error.problem) from error
        except module.DocsError as error:
            raise ProjectError(f"{DOCS_SCRIPT}: {error}") from error


def check_project(
    project: Path, reference: Path | None = None, template: str | Path | None = None
) -> list[str]:
    """Every problem found, one line each; empty when the project is in sync.

    Markers well formed; every block equal to what the recorded answers render
    with the recorded template version (``reference``, a render of exactly
    that, when the caller has one); the compose combinations valid; the
    docs blocks equal to what the compose files generate (``scripts/docs.py``).
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
