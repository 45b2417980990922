"""Secrets: fresh for every project, only in the gitignored config/secrets/, documented in .env.example."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

# config/secrets/<name> of the default project; each a fresh random value.
SECRET_FILES = (
    "postgres_password",
    "api_db_password",
    "worker_db_password",
    "jwt_secret_key",
    "first_admin_password",
    "redis_password",
    "rabbitmq_password",
    "pgadmin_password",
)
# Names that held secrets in config/.env before 0.3.0: none may be there any more.
OLD_SECRET_NAMES = (
    "POSTGRES_PASSWORD",
    "RABBITMQ_DEFAULT_PASS",
    "JWT_SECRET_KEY",
    "FIRST_ADMIN_PASSWORD",
    "PGADMIN_DEFAULT_PASSWORD",
    "REDIS_PASSWORD",
)


def env_of(project: Path, name: str = "config/.env") -> dict[str, str]:
    pairs = (
        line.split("=", 1)
        for line in (project / name).read_text().splitlines()
        if re.match(r"^[A-Z_]+=", line)
    )
    return dict(pairs)


def secrets_of(project: Path) -> dict[str, str]:
    return {name: (project / "config" / "secrets" / name).read_text() for name in SECRET_FILES}


@pytest.fixture(scope="module")
def two_projects(matrix_render, copie_session, template_copy) -> tuple[Path, Path]:
    """The shared default render and a second render of the defaults: each has its own secrets."""
    second = copie_session.copy(template_dir=template_copy)
    assert second.exception is None
    return matrix_render("defaults"), second.project_dir


def test_every_secret_is_fresh_and_strong(two_projects) -> None:
    first, second = (secrets_of(p) for p in two_projects)
    for name in SECRET_FILES:
        assert len(first[name]) >= 24, name
        assert first[name] == first[name].strip(), f"{name} has whitespace around it"
        assert first[name] != second[name], f"{name} repeats across projects"
    values = list(first.values())
    assert len(set(values)) == len(values), "two secrets share a value"


def test_servers_check_the_same_passwords_the_clients_get(two_projects) -> None:
    project = two_projects[0]
    folder = project / "config" / "secrets"
    redis_password = (folder / "redis_password").read_text()
    acl = (folder / "redis_users.acl").read_text()
    assert (
        acl.strip() == f"user default on #{hashlib.sha256(redis_password.encode()).hexdigest()} ~* &* +@all"
    )
    assert redis_password not in acl  # the ACL file keeps only the hash
    rabbit = (folder / "rabbitmq_default_user.conf").read_text()
    assert f"default_pass = {(folder / 'rabbitmq_password').read_text()}\n" in rabbit


def test_config_env_holds_settings_only(two_projects) -> None:
    project = two_projects[0]
    settings = env_of(project)
    assert not set(OLD_SECRET_NAMES) & set(settings), settings
    for value in secrets_of(project).values():
        assert value not in (project / "config" / ".env").read_text()


def test_secrets_stay_out_of_git_and_answers(two_projects) -> None:
    project = two_projects[0]
    ignored = (project / ".gitignore").read_text().splitlines()
    assert "config/.env" in ignored and "config/secrets/*" in ignored
    answers = (project / ".copier-answers.yml").read_text()
    for name, value in secrets_of(project).items():
        assert value not in answers, name


def test_example_documents_every_setting_and_secret_file(two_projects) -> None:
    project = two_projects[0]
    real, example = env_of(project), env_of(project, "config/.env.example")
    assert set(example) == set(real)
    text = (project / "config" / ".env.example").read_text()
    missing = [name for name in SECRET_FILES if f"#   {name} " not in text]
    assert missing == []
