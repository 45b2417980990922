"""The ``stackplate`` command line."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from types import ModuleType
from typing import Annotated

import typer
import yaml

from stackplate.answers import BACKING_SERVICES, app_services
from stackplate.backing import ENV_VARS, BackingServiceError
from stackplate.boot import BOOT_FILE, STATE_DIR, Booted, booted
from stackplate.check import check_project, project_script, write_docs
from stackplate.compose import ComposeError
from stackplate.compose_boot import booted_on_engine
from stackplate.engine import EngineError, engine_problem
from stackplate.engine import client as engine_client
from stackplate.markers import MarkerError
from stackplate.native import ServiceError
from stackplate.project import ProjectError
from stackplate.template import RenderError, render_project
from stackplate.update import UpdateResult, add_service, remove_service, update_project

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
        typer.Option("--data", "-d", metavar="KEY=VALUE", help="An answer as KEY=VALUE (YAML); repeatable"),
    ] = None,
    template: Annotated[
        str | None,
        typer.Option(metavar="TEMPLATE", help="Template path or git URL (default: this stackplate)"),
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


class Kind(StrEnum):
    fastapi = "fastapi"
    node_worker = "node-worker"
    react_vite = "react-vite"


ProjectDir = Annotated[Path, typer.Option("--project", "-C", metavar="DIR", help="The project folder")]


def report(result: UpdateResult) -> None:
    """Say what an update did; exit 1 when conflicts or problems are left."""
    for name in result.regenerated:
        typer.echo(f"regenerated blocks in {name}")
    for name in result.removed:
        typer.echo(f"removed {name}")
    for name in result.conflicts:
        typer.secho(f"conflict left in {name}: resolve the <<<<<<< markers", err=True, fg="red")
    for problem in result.problems:
        typer.secho(f"check: {problem}", err=True, fg="red")
    if not result.ok:
        raise typer.Exit(1)
    typer.echo("updated; stackplate check passes")


@app.command()
def check(
    project: Annotated[Path, typer.Argument(help="A rendered project folder")] = Path("."),
    template: Annotated[
        str | None,
        typer.Option(
            metavar="TEMPLATE", help="Template path or git URL (default: _src_path in .copier-answers.yml)"
        ),
    ] = None,
) -> None:
    """Markers well formed, blocks equal to what the answers render, compose files valid."""
    try:
        problems = check_project(project, template=template)
    except (ProjectError, ComposeError) as error:
        fail(str(error))
    for problem in problems:
        typer.echo(problem)
    if problems:
        fail(f"{len(problems)} problem(s) in {project}")
    typer.echo(f"{project}: in sync with its answers")


@app.command()
def docs(
    project: Annotated[Path, typer.Argument(help="A rendered project folder")] = Path("."),
) -> None:
    """Rewrite the docs blocks from the merged compose files (the project's scripts/docs.py)."""
    try:
        changed = write_docs(project)
    except (ProjectError, MarkerError) as error:
        fail(f"{error}; nothing written")
    for name in changed:
        typer.echo(f"wrote {name}")
    if not changed:
        typer.echo(f"{project}: docs blocks are up to date")


@app.command()
def update(
    project: ProjectDir = Path("."),
    vcs_ref: Annotated[
        str | None,
        typer.Option(metavar="REF", help="Template version (git tag or commit); default the newest"),
    ] = None,
    force: Annotated[
        bool, typer.Option(help="Regenerate blocks even where they were edited by hand")
    ] = False,
) -> None:
    """Pull template changes: copier update with inline conflicts, then stackplate check."""
    report(_run(lambda: update_project(project, vcs_ref=vcs_ref, force=force)))


@app.command("add-service")
def add_service_command(
    name: Annotated[str, typer.Argument(help="Service name (a DNS label)")],
    kind: Annotated[Kind, typer.Option(metavar="KIND", help="What the service is")],
    port: Annotated[int | None, typer.Option(help="Port (default: the next free one)")] = None,
    api: Annotated[str | None, typer.Option(help="The fastapi service a worker or frontend serves")] = None,
    project: ProjectDir = Path("."),
) -> None:
    """Add an app service: update the answers, then copier update renders its files."""
    report(_run(lambda: add_service(project, name, kind.value, port, api)))


@app.command("remove-service")
def remove_service_command(
    name: Annotated[str, typer.Argument(help="The app service to remove")],
    force: Annotated[
        bool, typer.Option(help="Remove it even if its folder was changed after rendering")
    ] = False,
    project: ProjectDir = Path("."),
) -> None:
    """Remove an app service and its files; refuses while its folder holds your changes."""
    report(_run(lambda: remove_service(project, name, force=force)))


class Engine(StrEnum):
    native = "native"
    docker = "docker"


class _Stop(Exception):
    """SIGTERM arrived: unwind and stop every service."""


def _raise_stop(signum: int, frame: object) -> None:
    raise _Stop


@app.command()
def boot(
    project: Annotated[Path, typer.Argument(help="A rendered project folder")] = Path("."),
    engine: Annotated[
        Engine, typer.Option(help="native: throwaway servers and local processes; docker: compose up")
    ] = Engine.native,
    postgres_url: Annotated[
        str | None,
        typer.Option(metavar="URL", help="Use this PostgreSQL server (its user may create databases)"),
    ] = None,
    redis_url: Annotated[str | None, typer.Option(metavar="URL", help="Use this Redis server")] = None,
    rabbitmq_url: Annotated[str | None, typer.Option(metavar="URL", help="Use this RabbitMQ server")] = None,
    production: Annotated[
        bool, typer.Option("--production", help="--engine docker: the production file, not development")
    ] = False,
    fresh: Annotated[
        bool, typer.Option("--fresh", help="--engine docker: remove the project's containers and volumes")
    ] = False,
    leave_out: Annotated[
        list[str] | None,
        typer.Option(
            "--leave-out",
            metavar="SERVICE",
            help="--engine docker: a compose service not to start (repeatable)",
        ),
    ] = None,
    stand_ins: Annotated[
        bool,
        typer.Option(
            "--stand-ins",
            help="--engine docker: build stand-ins for images no registry serves (stackplate standins) "
            "and leave out the services whose image cannot be had",
        ),
    ] = False,
    wait_timeout: Annotated[
        int,
        typer.Option(
            "--wait-timeout", metavar="SECONDS", help="--engine docker: seconds for every healthcheck to pass"
        ),
    ] = 300,
) -> None:
    """Boot a rendered project and keep it running until Ctrl-C (or SIGTERM).

    Native: throwaway PostgreSQL, Redis and RabbitMQ (or the STACKPLATE_*_URL
    servers), migrations, then every app service. Docker: build the images,
    then docker compose up --wait (development file, or --production); Ctrl-C
    runs docker compose down, keeping the named volumes. Either way it prints
    the URLs and writes them to PROJECT/.stackplate/boot.json.
    """
    progress = lambda line: typer.echo(f"boot: {line}", err=True)  # noqa: E731
    if engine is Engine.docker:
        problem = engine_problem()
        if problem:
            fail(f"--engine docker: {problem}; use --engine native")
        stack = booted_on_engine(
            project,
            production=production,
            fresh=fresh,
            leave_out=leave_out or (),
            stand_ins=stand_ins,
            wait_timeout=wait_timeout,
            progress=progress,
        )
    else:
        # The backing module hands out these servers instead of starting throwaway ones.
        given = {"postgres": postgres_url, "redis": redis_url, "rabbitmq": rabbitmq_url}
        for name, url in given.items():
            if url:
                os.environ[ENV_VARS[name]] = url
        stack = booted(project, progress=progress)
    signal.signal(signal.SIGTERM, _raise_stop)
    try:
        with stack as running:
            _print_urls(running)
            _watch(running)
    except (_Stop, KeyboardInterrupt):
        typer.echo("boot: stopped; nothing left running", err=True)
    except (ProjectError, ServiceError, BackingServiceError, ComposeError, EngineError) as error:
        fail(str(error))


def _print_urls(stack: Booted) -> None:
    typer.echo(f"{Path(stack.project).name} is up:")
    for service in stack.services.values():
        if service.url:
            where = service.url + ("/health" if service.kind == "node-worker" else "")
        else:
            where = "(no published port)"
        typer.echo(f"  {service.name:<20} {service.kind:<12} {where}")
    for name, url in stack.backing.items():
        if url:
            typer.echo(f"  {name:<20} {'backing':<12} {url}")
    for name, url in stack.tools.items():
        typer.echo(f"  {name:<20} {'tool':<12} {url}")
    frontends = [s.url for s in stack.services.values() if s.kind == "react-vite"]
    where = f"open {frontends[0]} and sign in" if frontends else "sign in"
    typer.echo(f"{where} as {stack.admin['email']} (FIRST_ADMIN_PASSWORD in config/.env)")
    typer.echo(f"URLs in {Path(stack.project) / STATE_DIR / BOOT_FILE}; Ctrl-C stops everything.")


def _watch(stack: Booted) -> None:
    """Wait for Ctrl-C; a service that dies meanwhile ends the boot with its log."""
    while True:
        time.sleep(1)
        for service in stack.running.values():
            if service.process.poll() is not None:
                raise ServiceError(
                    f"{service.name} exited with {service.process.returncode}:\n{service.log_tail()}"
                )


# The rendered project's own deploy script: stackplate only runs it (one implementation).
SWARM_SCRIPT = "scripts/swarm.py"


@app.command()
def deploy(
    project: Annotated[Path, typer.Argument(help="A rendered project folder")] = Path("."),
    swarm: Annotated[
        bool, typer.Option("--swarm", help="To Docker Swarm: this engine must be a swarm manager")
    ] = False,
    stack: Annotated[
        str | None, typer.Option(metavar="NAME", help="The stack's name (default: the compose project's)")
    ] = None,
    service: Annotated[
        list[str] | None,
        typer.Option(
            "--service", metavar="SERVICE", help="Only this service and its migrations (repeatable)"
        ),
    ] = None,
    build: Annotated[bool, typer.Option(help="Build the production images first")] = True,
    timeout: Annotated[
        int, typer.Option(metavar="SECONDS", help="Seconds each service has to run (or finish)")
    ] = 300,
) -> None:
    """Deploy the production stack: --swarm runs the project's scripts/swarm.py deploy.

    It builds the production images, converts the production compose files
    into a stack file and runs docker stack deploy in the order depends_on
    gives, waiting for each service's healthchecks (migrations first, once).
    """
    if not swarm:
        fail("deploy: say where to: --swarm (the only target so far)")
    problem = engine_problem()
    if problem:
        fail(f"deploy: {problem}")
    if not (project / SWARM_SCRIPT).is_file():
        fail(f"{project} has no {SWARM_SCRIPT} (a project of an older template): stackplate update brings it")
    progress = lambda line: typer.echo(f"deploy: {line}", err=True)  # noqa: E731
    with project_script(project, SWARM_SCRIPT) as module:
        try:
            name = module.deploy(
                project, stack=stack, only=service or (), build=build, timeout=timeout, progress=progress
            )
        except module.SwarmError as error:
            fail(str(error))
    typer.echo(f"stack {name} is running: docker stack services {name}")


@app.command()
def standins(
    project: Annotated[Path, typer.Argument(help="A rendered project folder")] = Path("."),
    list_only: Annotated[
        bool,
        typer.Option("--list", help="Only list the stand-ins and the tools our files need in each image"),
    ] = False,
) -> None:
    """Build local stand-ins for the upstream images this engine lacks and cannot pull.

    Test infrastructure for machines without an image registry (CI sandboxes,
    air-gapped labs): each stand-in is labelled as one, and an image that is
    not a stand-in is never replaced.
    """
    from stackplate import standins as stand_ins  # docker SDK and friends: only when asked

    problem = engine_problem()
    if problem:
        fail(f"standins: {problem}")
    try:
        if list_only:
            _print_stand_ins(project, stand_ins)
            return
        outcomes = stand_ins.ensure(
            project, engine_client(), progress=lambda line: typer.echo(line, err=True)
        )
    except (EngineError, ComposeError, ProjectError) as error:
        fail(str(error))
    for outcome in outcomes:
        typer.echo(f"{outcome.reference:<48} {outcome.state:<12} {outcome.detail}")


def _print_stand_ins(project: Path, stand_ins: ModuleType) -> None:
    typer.echo("stand-in image | what it really contains")
    for reference, contents in stand_ins.listing(engine_client()):
        typer.echo(f"{reference} | {contents}")
    typer.echo("")
    typer.echo("image | tool our files run in it | where the upstream image is known to have it")
    for reference, tool, upstream in stand_ins.tool_rows(project):
        typer.echo(f"{reference} | {tool} | {upstream}")


def _run(operation: Callable[[], UpdateResult]) -> UpdateResult:
    try:
        return operation()
    except (ProjectError, MarkerError, ComposeError) as error:
        fail(str(error))
    raise AssertionError("unreachable")


def main() -> None:  # pragma: no cover - console script entry point
    app()
