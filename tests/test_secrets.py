"""Secrets: fresh for every project, only in the gitignored config/.env, documented in .env.example."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

SECRET_NAMES = (
    "POSTGRES_PASSWORD",
    "RABBITMQ_DEFAULT_PASS",
    "JWT_SECRET_KEY",
    "FIRST_ADMIN_PASSWORD",
    "PGADMIN_DEFAULT_PASSWORD",
)


def env_of(project: Path, name: str = "config/.env") -> dict[str, str]:
    pairs = (
        line.split("=", 1)
        for line in (project / name).read_text().splitlines()
        if re.match(r"^[A-Z_]+=", line)
    )
    return dict(pairs)


@pytest.fixture(scope="module")
def two_projects(copie_session, template_copy) -> tuple[Path, Path]:
    first = copie_session.copy(template_dir=template_copy)
    second = copie_session.copy(template_dir=template_copy)
    assert first.exception is None and second.exception is None
    return first.project_dir, second.project_dir


def test_every_secret_is_fresh_and_strong(two_projects) -> None:
    first, second = (env_of(p) for p in two_projects)
    for name in SECRET_NAMES:
        assert len(first[name]) >= 24, name
        assert first[name] != second[name], f"{name} repeats across projects"
    values = [first[name] for name in SECRET_NAMES]
    assert len(set(values)) == len(values), "two secrets share a value"


def test_secrets_stay_out_of_git_and_answers(two_projects) -> None:
    project = two_projects[0]
    ignored = (project / ".gitignore").read_text().splitlines()
    assert "config/.env" in ignored
    answers = (project / ".copier-answers.yml").read_text()
    for name in SECRET_NAMES:
        assert env_of(project)[name] not in answers
        assert name not in answers


def test_example_documents_every_variable_with_placeholders(two_projects) -> None:
    project = two_projects[0]
    real, example = env_of(project), env_of(project, "config/.env.example")
    assert set(example) == set(real)
    for name in SECRET_NAMES:
        assert example[name].startswith("<") and example[name].endswith(">"), name
