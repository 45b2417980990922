"""An update whose template change meets a user's edit of the same lines: what is left, and said.

Copier merges with inline conflict markers; ``stackplate update`` names every
file left with them, still applies the rest of the new version, and exits 1
until the user resolves them.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner
from updating import commit_all, edit, versioned_template

from stackplate.cli import app
from stackplate.project import conflicted_files

ADR = "docs/adr/0001-record-architecture-decisions.md"
STATUS_IN_V1 = "## Status\n\nAccepted\n"


def v2_changes_the_adr_status_and_a_block(template: Path) -> None:
    edit(template / f"template/{ADR}.jinja", STATUS_IN_V1, "## Status\n\nAccepted (reviewed yearly)\n")
    edit(template / "template/docker-compose.yml.jinja", "      start_period: 20s", "      start_period: 25s")


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    return versioned_template(tmp_path_factory.mktemp("versions"), v2_changes_the_adr_status_and_a_block)


@pytest.mark.slow  # a real copier update (several renders)
def test_update_names_the_conflicted_file_applies_the_rest_and_checks_once_resolved(project) -> None:
    edit(project / ADR, STATUS_IN_V1, "## Status\n\nSuperseded by ADR 7\n")
    commit_all(project, "our decision record")
    result = CliRunner().invoke(app, ["update", "-C", str(project), "--vcs-ref", "v2"])

    assert result.exit_code == 1, result.output
    assert f"conflict left in {ADR}: resolve the <<<<<<< markers" in result.output
    assert "updated; stackplate check passes" not in result.output
    assert conflicted_files(project) == [ADR]
    text = (project / ADR).read_text()
    ours, theirs = text.index("Superseded by ADR 7"), text.index("Accepted (reviewed yearly)")
    assert text.index("<<<<<<< before updating") < ours < theirs < text.index(">>>>>>> after updating")
    # Everything else of v2 arrived: the block change and the recorded version.
    assert "start_period: 25s" in (project / "docker-compose.yml").read_text()
    assert "_commit: v2" in (project / ".copier-answers.yml").read_text()

    # Once the user keeps their line and commits, the project checks clean.
    closer = ">>>>>>> after updating\n"
    start, end = text.index("<<<<<<< before updating"), text.index(closer) + len(closer)
    (project / ADR).write_text(text[:start] + "Superseded by ADR 7\n" + text[end:])
    commit_all(project, "resolved")
    assert conflicted_files(project) == []
    checked = CliRunner().invoke(app, ["check", str(project)])
    assert checked.exit_code == 0, checked.output
