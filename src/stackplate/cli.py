"""The ``stackplate`` command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
import yaml

from stackplate.answers import BACKING_SERVICES, app_services
from stackplate.template import RenderError, render_project

app = typer.Typer(
    help="Render and maintain a multi-service project from the stackplate template.",
    no_args_is_help=True,
    add_completion=False,
)


def parse_data(pairs: list[str]) -> dict[str, object]:
    """``--data key=value`` pairs, each value read as YAML (like ``copier --data``)."""
    data: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--data")
        data[key] = yaml.safe_load(value) if value else ""
    return data


def fail(message: str) -> None:
    typer.secho(f"stackplate: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(1)


@app.command()
def new(
    destination: Annotated[Path, typer.Argument(help="Folder to create the project in")],
    data: Annotated[
        list[str] | None,
        typer.Option("--data", "-d", help="An answer as KEY=VALUE (YAML); repeatable"),
    ] = None,
    template: Annotated[
        str | None, typer.Option(help="Template path or git URL (default: this stackplate)")
    ] = None,
) -> None:
    """Render a new project: ``copier copy`` with every answer not given at its default."""
    if destination.exists() and any(destination.iterdir()):
        fail(f"{destination} exists and is not empty")
    try:
        render_project(destination, parse_data(data or []), template=template)
    except RenderError as error:
        fail(str(error))
    typer.echo(f"Rendered {destination}")


@app.command()
def show(
    project: Annotated[Path, typer.Argument(help="A rendered project folder")] = Path("."),
) -> None:
    """Show what a rendered project holds: its services and its files."""
    answers_file = project / ".copier-answers.yml"
    if not answers_file.is_file():
        fail(f"{project} is not a stackplate project: no .copier-answers.yml")
    answers = yaml.safe_load(answers_file.read_text())
    typer.echo(f"{answers['project_name']} ({project.resolve()})")
    for service in app_services(answers["services"]):
        port = service["port"] or "-"
        typer.echo(f"  {service['name']:<20} {service['kind']:<12} port {port}")
    for name in ("postgres", "redis", "rabbitmq", "ollama", "pgadmin", "redis_commander"):
        if answers.get(name):
            typer.echo(
                f"  {name:<20} {'backing' if name in BACKING_SERVICES else 'development':<12} "
                f"port {answers.get(name + '_port')}"
            )
    files = sorted(p for p in project.rglob("*") if p.is_file() and ".git" not in p.parts)
    typer.echo(f"{len(files)} files:")
    for path in files:
        typer.echo(f"  {path.relative_to(project)}")


def main() -> None:  # pragma: no cover - console script entry point
    app()
