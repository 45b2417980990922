"""_migrations: a later template version moves a file without losing the user's data."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import copier_cli
from updating import REPO, commit_all, edit, git, make_template_repo, render_committed

from stackplate import compose


def as_before_0_2_0(template: Path) -> None:
    """The template as it was before 0.2.0: secrets in a root .env."""
    (template / "template/config/.env.jinja").rename(template / "template/.env.jinja")
    edit(template / "copier.yml", "_skip_if_exists:\n  - config/.env", "_skip_if_exists:\n  - .env")
    edit(template / "template/docker-compose.yml.jinja", "./config/.env", "./.env")
    edit(template / "template/.gitignore", "config/.env\n", ".env\n")


@pytest.mark.slow  # a real copier update (several renders)
def test_update_across_0_2_0_moves_the_secrets_and_keeps_them(tmp_path) -> None:
    template = make_template_repo(tmp_path / "template")  # tagged v1 = today's files
    as_before_0_2_0(template)
    commit_all(template, "as it was in 0.1.0")
    git(template, "tag", "v0.1.0")
    git(template, "rm", "-rq", ".")
    git(template, "checkout", "-q", "v1", "--", ".")
    commit_all(template, "0.2.0: secrets in config/.env")
    git(template, "tag", "v0.2.0")

    project = render_committed(template, tmp_path / "project", vcs_ref="v0.1.0")
    secrets = (project / ".env").read_bytes()
    assert not (project / "config/.env").exists()

    result = copier_cli("update", "--trust", "--defaults", "--vcs-ref=v0.2.0", cwd=project)
    assert result.returncode == 0, result.stderr
    assert "moved .env to config/.env, secrets unchanged" in result.stdout + result.stderr
    assert (project / "config/.env").read_bytes() == secrets
    assert not (project / ".env").exists()
    assert "./config/.env" in (project / "docker-compose.yml").read_text()
    assert compose.problems(project) == []


@pytest.mark.slow  # a real copier update (several renders)
def test_migration_leaves_a_project_made_after_the_move_alone(tmp_path) -> None:
    project = tmp_path / "project"
    (project / "config").mkdir(parents=True)
    (project / "config/.env").write_text("SECRET=1\n")
    script = Path(__file__).resolve().parents[1] / "migrations/move_env_into_config.py"
    subprocess.run([sys.executable, str(script)], cwd=project, check=True)
    assert (project / "config/.env").read_text() == "SECRET=1\n"
    assert sorted(p.name for p in project.iterdir()) == ["config"]


@pytest.mark.slow  # a real copier update (several renders)
def test_0_3_0_writes_the_secret_files_from_config_env_and_overwrites_none(tmp_path) -> None:
    """The passwords in an existing project's volumes survive the move to config/secrets/."""
    (tmp_path / "config").mkdir()
    (tmp_path / "config/.env").write_text(
        "POSTGRES_USER=app\nPOSTGRES_PASSWORD=pg-old\nRABBITMQ_DEFAULT_USER=app\n"
        "RABBITMQ_DEFAULT_PASS=rabbit-old\nJWT_SECRET_KEY=jwt-old\nFIRST_ADMIN_PASSWORD=admin-old\n"
    )
    (tmp_path / "config/secrets").mkdir()
    (tmp_path / "config/secrets/jwt_secret_key").write_text("already-there")
    script = REPO / "migrations" / "move_secrets_into_files.py"
    result = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    secrets = {p.name: p.read_text() for p in (tmp_path / "config/secrets").iterdir()}
    assert secrets == {
        "postgres_password": "pg-old",
        "rabbitmq_password": "rabbit-old",
        "rabbitmq_default_user.conf": "default_user = app\ndefault_pass = rabbit-old\n",
        "jwt_secret_key": "already-there",
        "first_admin_password": "admin-old",
    }
