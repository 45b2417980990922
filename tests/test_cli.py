"""The stackplate command line."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from stackplate.cli import app


@pytest.fixture
def cli(template_copy, monkeypatch) -> CliRunner:
    monkeypatch.setenv("STACKPLATE_TEMPLATE", str(template_copy))
    return CliRunner()


def test_new_renders_and_show_lists_it(cli, tmp_path) -> None:
    destination = tmp_path / "shop"
    result = cli.invoke(
        app, ["new", str(destination), "--data", "project_name=Shop Floor", "--data", "redis=false"]
    )
    assert result.exit_code == 0, result.output
    assert (destination / "docker-compose.yml").is_file()
    shown = cli.invoke(app, ["show", str(destination)])
    assert shown.exit_code == 0
    assert "Shop Floor" in shown.output
    assert "redis " not in shown.output
    assert "services/api/Dockerfile" in shown.output


def test_new_with_a_bad_answer_says_one_line_and_writes_nothing(cli, tmp_path) -> None:
    destination = tmp_path / "shop"
    result = cli.invoke(
        app, ["new", str(destination), "--data", "services=[{name: a, kind: fastapi, port: 0}]"]
    )
    assert result.exit_code == 1
    assert result.output.strip() == (
        "stackplate: Validation error for question 'services': service 'a' port 0 is not a port: "
        "use a whole number from 1 to 65535"
    )
    assert not destination.exists()


def test_new_refuses_a_non_empty_folder(cli, tmp_path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    result = cli.invoke(app, ["new", str(tmp_path)])
    assert result.exit_code == 1
    assert "exists and is not empty" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


def test_data_must_be_key_value(cli, tmp_path) -> None:
    result = cli.invoke(app, ["new", str(tmp_path / "x"), "--data", "novalue"])
    assert result.exit_code == 2
    assert "is not KEY=VALUE" in result.output


def test_show_refuses_a_folder_that_is_no_project(cli, tmp_path) -> None:
    result = cli.invoke(app, ["show", str(tmp_path)])
    assert result.exit_code == 1
    assert "is not a stackplate project" in result.output


def test_questions_reference_matches_copier_yml() -> None:
    from stackplate.questions_doc import render

    root = Path(__file__).resolve().parents[1]
    assert (root / "docs/questions.md").read_text() == render(root / "copier.yml"), (
        "docs/questions.md is stale: run python -m stackplate.questions_doc > docs/questions.md"
    )
