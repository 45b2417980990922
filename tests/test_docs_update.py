"""Updates keep the docs blocks equal to a fresh generation from the compose files, and the user's prose."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import copier
import pytest
from updating import commit_all, edit, versioned_template

from stackplate import markers
from stackplate.check import write_docs
from stackplate.project import conflicted_files
from stackplate.update import update_project

OVERVIEW = "docs/architecture/overview.md"
PARAGRAPH = "\nOur ops team owns the published ports: ask #ops before changing one.\n"


def v2_smaller_frontends(template: Path) -> None:
    """v2 lowers memory limits (docs blocks change) and rewords prose of the overview.

    The broker's row is the last of the template's in the resource table, right
    above the user's service: Copier's merge cannot apply that hunk cleanly.
    """
    # The limits come from one table (answers.RESOURCES), which the compose files read.
    resources = template / "src/stackplate/answers.py"
    edit(
        resources,
        '"react-vite": {"limit_cpu": 500, "limit_mib": 512,',
        '"react-vite": {"limit_cpu": 500, "limit_mib": 384,',
    )
    edit(
        resources,
        '"rabbitmq": {"limit_cpu": 1000, "limit_mib": 1024,',
        '"rabbitmq": {"limit_cpu": 1000, "limit_mib": 768,',
    )
    edit(
        template / "template/docs/architecture/overview.md.jinja",
        "Internal: the port the service listens on inside the network.",
        "Internal: the port a service listens on inside the network.",
    )


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    return versioned_template(tmp_path_factory.mktemp("docs-versions"), v2_smaller_frontends)


def docs_problems(project: Path) -> list[str]:
    """The project's own scripts/docs.py, as its CI runs it (problems(), no links placeholder needed)."""
    spec = importlib.util.spec_from_file_location(
        f"docs_{abs(hash(str(project)))}", project / "scripts/docs.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module.problems(project)


def customise(project: Path) -> str:
    """The user's own service and a paragraph of theirs in the overview; the overview's text returned."""
    compose = project / "docker-compose.yml"
    anchor = "  ##<</BACKING_SERVICES>>\n"
    edit(compose, anchor, anchor + "\n  mine:\n    image: busybox:1.36\n", 1)
    assert write_docs(project)
    edit(project / OVERVIEW, "<!-- <</PORTS>> -->\n", "<!-- <</PORTS>> -->\n" + PARAGRAPH, 1)
    commit_all(project, "my service, my words")
    assert docs_problems(project) == []
    return (project / OVERVIEW).read_text(encoding="utf-8")


def assert_fresh_and_kept(project: Path, before: str) -> None:
    text = (project / OVERVIEW).read_text(encoding="utf-8")
    assert "<!-- <</PORTS>> -->\n" + PARAGRAPH + "\nProduction publishes only" in text
    assert (
        before.split("<!-- <</PORTS>> -->")[1].split("## Data flows")[0]
        == (text.split("<!-- <</PORTS>> -->")[1].split("## Data flows")[0])
    )
    assert "Internal: the port a service listens on" in text  # the template's change arrived
    resources = markers.bodies(text, OVERVIEW)["RESOURCES"]
    assert "| frontend | 1 | 0.5 | 384M |" in resources
    assert "| rabbitmq | 1 | 1 | 768M |\n| mine | 1 | - | - |" in resources
    assert conflicted_files(project) == []
    assert docs_problems(project) == []


@pytest.mark.slow  # a real copier update (several renders)
def test_stackplate_update_regenerates_docs_blocks_and_keeps_prose(project) -> None:
    before = customise(project)
    result = update_project(project, vcs_ref="v2")
    assert result.ok, result
    assert_fresh_and_kept(project, before)


@pytest.mark.slow  # a real copier update (several renders)
def test_plain_copier_update_ends_with_fresh_docs_blocks(project) -> None:
    before = customise(project)
    copier.run_update(
        str(project), vcs_ref="v2", defaults=True, overwrite=True, unsafe=True, quiet=True, conflict="inline"
    )
    assert_fresh_and_kept(project, before)
