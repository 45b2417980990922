"""stackplate check, update, add-service and remove-service on committed projects."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner
from updating import commit_all, edit, git, render_committed, versioned_template

from stackplate.cli import app


def v2_longer_start_period(template: Path) -> None:
    edit(template / "template/docker-compose.yml.jinja", "      start_period: 20s", "      start_period: 25s")


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """The template at v1 and at v2 (the change below); `pristine` and `project` build on it."""
    return versioned_template(tmp_path_factory.mktemp("versions"), v2_longer_start_period)


def run(*args: str):
    return CliRunner().invoke(app, list(args))


def is_clean(project: Path) -> bool:
    return git(project, "status", "--porcelain") == ""


def test_check_passes_on_a_fresh_project(project) -> None:
    result = run("check", str(project))
    assert result.exit_code == 0, result.output
    assert "in sync with its answers" in result.output


@pytest.mark.slow  # a real copier update (several renders)
def test_edit_inside_a_block_is_drift_and_update_refuses_it(project) -> None:
    edit(project / "docker-compose.yml", "    image: redis:", "    image: myredis:", 1)
    commit_all(project, "edit inside a block")
    checked = run("check", str(project))
    assert checked.exit_code == 1
    line = next(
        n
        for n, text in enumerate((project / "docker-compose.yml").read_text().splitlines(), 1)
        if "myredis" in text
    )
    assert (
        f"docker-compose.yml:{line}: block BACKING_SERVICES differs from what the answers render"
        in checked.output
    )
    before = (project / "docker-compose.yml").read_bytes()
    refused = run("update", "-C", str(project), "--vcs-ref", "v2")
    assert refused.exit_code == 1
    assert "The blocks belong to the template" in refused.output and "--force" in refused.output
    assert (project / "docker-compose.yml").read_bytes() == before
    forced = run("update", "-C", str(project), "--vcs-ref", "v2", "--force")
    assert forced.exit_code == 0, forced.output
    text = (project / "docker-compose.yml").read_text()
    assert "myredis" not in text and "start_period: 25s" in text
    assert run("check", str(project)).exit_code == 0


def test_update_refuses_a_dirty_tree(project) -> None:
    (project / "README.md").write_text("changed, not committed\n")
    result = run("update", "-C", str(project), "--vcs-ref", "v2")
    assert result.exit_code == 1
    assert "has uncommitted changes (README.md): commit or stash them first" in result.output
    assert (project / "README.md").read_text() == "changed, not committed\n"


def test_update_takes_a_new_version_and_keeps_edits_outside(project) -> None:
    edit(project / "docker-compose.yml", "\nvolumes:\n", "\n# backups run nightly\nvolumes:\n")
    commit_all(project, "comment")
    result = run("update", "-C", str(project), "--vcs-ref", "v2")
    assert result.exit_code == 0, result.output
    text = (project / "docker-compose.yml").read_text()
    assert "# backups run nightly\nvolumes:\n" in text and "start_period: 25s" in text
    assert "v2" in (project / ".copier-answers.yml").read_text()


@pytest.mark.slow  # a real copier update (several renders)
def test_legacy_closers_are_read_and_rewritten_by_update(project) -> None:
    """Both spellings from before the markers were settled, one per block, in one update."""
    legacy = {"SERVICES": "##</SERVICES>", "BACKING_SERVICES": "##</BACKING_SERVICES>>"}
    for name, closer in legacy.items():
        edit(project / "docker-compose.yml", f"##<</{name}>>", closer)
    commit_all(project, "a project from before the markers were settled")
    assert run("check", str(project)).exit_code == 0
    result = run("update", "-C", str(project), "--vcs-ref", "v2")
    assert result.exit_code == 0, result.output
    text = (project / "docker-compose.yml").read_text()
    for name, closer in legacy.items():
        assert closer + "\n" not in text and f"  ##<</{name}>>\n" in text, name


def test_broken_markers_are_named_and_nothing_is_touched(project) -> None:
    edit(project / "docker-compose.yml", "  ##<</BACKING_SERVICES>>\n", "")
    commit_all(project, "lost an end marker")
    before = (project / "docker-compose.yml").read_bytes()
    checked = run("check", str(project))
    assert checked.exit_code == 1
    assert "block BACKING_SERVICES: begun at line" in checked.output
    assert "has no end before block SECRETS begins here" in checked.output
    refused = run("update", "-C", str(project), "--vcs-ref", "v2")
    assert refused.exit_code == 1
    assert "fix the markers first: docker-compose.yml:" in refused.output
    assert (project / "docker-compose.yml").read_bytes() == before and is_clean(project)


@pytest.mark.slow  # a real copier update (several renders)
def test_add_service_renders_folder_compose_entries_devcontainer_and_docs(project) -> None:
    result = run("add-service", "billing", "--kind", "fastapi", "-C", str(project))
    assert result.exit_code == 0, result.output
    assert (project / "services/billing/Dockerfile").is_file()
    assert (project / ".devcontainer/billing-container/devcontainer.json").is_file()
    base = (project / "docker-compose.yml").read_text()
    assert "  billing:\n" in base and 'PORT: "8001"' in base  # 8000 is taken by api
    # The README's service table is written from the compose files (scripts/docs.py).
    assert (
        "| [billing](docs/services/billing.md) | API | ./services/billing | 8001:8001 |"
        in (project / "README.md").read_text()
    )
    roles = (project / "config/postgres/init/10-app-roles.sh").read_text()
    assert "CREATE DATABASE billing OWNER billing_user" in roles
    assert (project / "config/secrets/billing_db_password").is_file()
    assert run("check", str(project)).exit_code == 0


@pytest.mark.slow  # a real copier update (several renders)
@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["Billing", "--kind", "fastapi"], "'Billing' is not a DNS label"),
        (["api", "--kind", "fastapi"], "'api' is used twice"),
        (
            ["cache", "--kind", "fastapi", "--port", "6379"],
            "redis_port 6379 is already published by service 'cache'",
        ),
        (["jobs", "--kind", "node-worker", "--port", "9000"], "'jobs' is a node-worker and has no port"),
        (["web", "--kind", "react-vite", "--api", "nope"], "names api 'nope'"),
    ],
)
def test_add_service_refuses_bad_input_and_changes_nothing(project, args, words) -> None:
    result = run("add-service", *args, "-C", str(project))
    assert result.exit_code == 1
    assert words in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert is_clean(project)


def test_add_service_rejects_an_unknown_kind(project) -> None:
    result = run("add-service", "x", "--kind", "django", "-C", str(project))
    assert result.exit_code == 2
    assert "django" in result.output


@pytest.mark.slow  # a real copier update (several renders)
def test_remove_service_refuses_edited_folder_then_force_removes(project) -> None:
    (project / "services/worker/src/mine.js").write_text("export const mine = 1;\n")
    index = project / "services/worker/src/index.js"
    index.write_text(index.read_text() + "// Our change.\n")
    commit_all(project, "worker changes")
    refused = run("remove-service", "worker", "-C", str(project))
    assert refused.exit_code == 1
    assert "services/worker holds changes made after it was rendered" in refused.output
    assert (
        "services/worker/src/index.js" in refused.output and "services/worker/src/mine.js" in refused.output
    )
    assert is_clean(project)
    forced = run("remove-service", "worker", "--force", "-C", str(project))
    assert forced.exit_code == 0, forced.output
    assert not (project / "services/worker").exists()
    assert not (project / ".devcontainer/worker-container").exists()
    assert "  worker:\n" not in (project / "docker-compose.yml").read_text()
    assert run("check", str(project)).exit_code == 0


@pytest.mark.slow  # a real copier update (several renders)
def test_remove_service_of_an_untouched_service(project) -> None:
    result = run("remove-service", "frontend", "-C", str(project))
    assert result.exit_code == 0, result.output
    assert not (project / "services/frontend").exists()


def test_remove_service_names_the_services_it_knows(project) -> None:
    result = run("remove-service", "nope", "-C", str(project))
    assert result.exit_code == 1
    assert "no app service 'nope' in this project (it has: api, worker, frontend)" in result.output


@pytest.mark.slow  # a real copier update (several renders)
def test_remove_the_api_a_frontend_needs_is_refused(project) -> None:
    result = run("remove-service", "api", "-C", str(project))
    assert result.exit_code == 1
    assert "Validation error for question 'services'" in result.output
    assert is_clean(project)


def relative_project(template: Path, folder: Path, monkeypatch) -> Path:
    """``copier copy tpl project`` run in ``folder``, as a user types it: ``_src_path: tpl``."""
    shutil.copytree(template, folder / "tpl", symlinks=True)
    monkeypatch.chdir(folder)
    project = render_committed(Path("tpl"), Path("project"))
    assert "_src_path: tpl\n" in (project / ".copier-answers.yml").read_text()
    return folder / project


@pytest.mark.slow  # a real copier update (several renders)
def test_a_relative_template_path_is_found_from_inside_the_project(template, tmp_path, monkeypatch) -> None:
    project = relative_project(template, tmp_path, monkeypatch)
    monkeypatch.chdir(project)
    checked = run("check")
    assert checked.exit_code == 0, checked.output
    updated = run("update", "--vcs-ref", "v2")
    assert updated.exit_code == 0, updated.output
    assert "start_period: 25s" in (project / "docker-compose.yml").read_text()
    assert "_src_path: tpl\n" in (project / ".copier-answers.yml").read_text()


def test_a_template_path_that_is_gone_is_named_with_the_fix(template, tmp_path, monkeypatch) -> None:
    project = relative_project(template, tmp_path, monkeypatch)
    (tmp_path / "tpl").rename(tmp_path / "moved")
    monkeypatch.chdir(project)
    for command in (["check"], ["update", "--vcs-ref", "v2"]):
        result = run(*command)
        assert result.exit_code == 1, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1, result.output
        assert "_src_path 'tpl' is not a template folder (tried " in lines[0]
        assert str(tmp_path / "tpl") in lines[0] and str(project / "tpl") in lines[0]
        assert "pass --template PATH, or set _src_path in .copier-answers.yml" in lines[0]
        assert is_clean(project)
    moved = run("check", "--template", str(tmp_path / "moved"))
    assert moved.exit_code == 0, moved.output
    missing = run("check", "--template", "nowhere")
    assert missing.exit_code == 1
    assert f"--template nowhere: no template folder at {project / 'nowhere'}" in missing.output
