"""Boot a rendered project on a Docker engine, the way its users do: ``docker compose up --wait``.

The images are built with BuildKit (``compose build``), then the services come
up with the development file (or the production file) and Compose waits for
every healthcheck. The URLs of the published ports go to ``boot.json`` in the
same shape as the native boot's (:mod:`stackplate.boot`), so the same e2e
suite, probes and benchmarks run against either. When the boot ends the
project goes ``down``, keeping its named volumes.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from stackplate.answers import app_services
from stackplate.boot import BOOT_FILE, STATE_DIR, Booted, BootedService, write_private
from stackplate.compose import COMBINATIONS, compose_command, resolved
from stackplate.native import ServiceError, dotenv, project_secret
from stackplate.project import load_answers

Progress = Callable[[str], None]
WAIT_TIMEOUT = 300  # seconds for every healthcheck to pass
LOG_LINES = 30


class ComposeProject:
    """One project and one combination of its compose files."""

    def __init__(self, project: Path, production: bool) -> None:
        self.project = project.resolve()
        self.combination = "production" if production else "development"

    def command(self, *args: str) -> list[str]:
        files = [arg for name in COMBINATIONS[self.combination] for arg in ("-f", str(self.project / name))]
        return [*compose_command(), "--project-directory", str(self.project), *files, *args]

    def run(self, *args: str, timeout: int = 1800, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            self.command(*args), capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and result.returncode != 0:
            tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-LOG_LINES:])
            raise ServiceError(f"compose {args[0]} failed (exit {result.returncode}):\n{tail}")
        return result

    def config(self) -> dict[str, Any]:
        return resolved(self.project, self.combination)

    def containers(self) -> list[dict[str, Any]]:
        """``compose ps --all`` as Compose reports it (one JSON object per container)."""
        output = self.run("ps", "--all", "--format", "json").stdout
        return [json.loads(line) for line in output.splitlines() if line.strip().startswith("{")]

    def logs(self, service: str, lines: int = LOG_LINES) -> str:
        return self.run("logs", "--no-color", "--tail", str(lines), service, check=False).stdout

    def down(self, *, volumes: bool = False) -> None:
        """Stop and remove the containers, their anonymous volumes and the networks.

        Named volumes stay unless ``volumes``: ``rm --volumes`` takes only the
        anonymous ones (``/app/node_modules`` and the like), ``down`` the rest.
        """
        # A container can vanish while rm is stopping its neighbours (the engine
        # answers "No such container"); a second rm sees the state as it is now.
        if self.run("rm", "--stop", "--force", "--volumes", timeout=300, check=False).returncode != 0:
            self.run("rm", "--stop", "--force", "--volumes", timeout=300)
        self.run("down", "--remove-orphans", *(["--volumes"] if volumes else []), timeout=300)


@contextlib.contextmanager
def booted_on_engine(
    project: Path,
    *,
    production: bool = False,
    fresh: bool = False,
    leave_out: Sequence[str] = (),
    stand_ins: bool = False,
    wait_timeout: int = WAIT_TIMEOUT,
    progress: Progress = print,
) -> Iterator[Booted]:
    """Build, ``up --wait``, yield where everything runs, then ``down`` (volumes kept).

    With ``stand_ins``, upstream images that cannot be pulled are stood in for
    first (:mod:`stackplate.standins`), and services whose image cannot be had
    at all are left out, each said in one line.
    """
    compose = ComposeProject(project, production)
    answers = load_answers(compose.project)
    config = compose.config()
    if stand_ins:
        leave_out = [*leave_out, *_unavailable_services(compose, config, progress)]
    # A name is checked against both combinations: development services are
    # absent from production, and leaving them out there is no mistake.
    known = set(config["services"]) | set(ComposeProject(project, not production).config()["services"])
    unknown = sorted(set(leave_out) - known)
    if unknown:
        raise ServiceError(f"--leave-out {', '.join(unknown)}: no such service in the compose files")
    services = [name for name in config["services"] if name not in leave_out]
    left_out = sorted(set(leave_out) & set(config["services"]))
    if left_out:
        progress(f"leaving out {', '.join(left_out)} (--leave-out)")
    state = compose.project / STATE_DIR
    state.mkdir(parents=True, exist_ok=True)
    (state / ".gitignore").write_text("*\n")
    boot_file = state / BOOT_FILE
    boot_file.unlink(missing_ok=True)
    if fresh:
        progress("removing the project's containers and volumes (--fresh)")
        compose.down(volumes=True)
    progress(f"building images ({compose.combination})")
    compose.run("build", *[name for name in services if config["services"][name].get("build")])
    try:
        progress(f"starting {', '.join(services)} and waiting for their healthchecks")
        _up(compose, services, wait_timeout)
        result = _booted(compose, answers, config, services)
        write_private(boot_file, json.dumps(result.as_json(), indent=2) + "\n")
        yield result
    finally:
        boot_file.unlink(missing_ok=True)
        progress("stopping: docker compose down (named volumes kept)")
        compose.down()


def _unavailable_services(compose: ComposeProject, config: dict[str, Any], progress: Progress) -> list[str]:
    """Stand in where needed; the services whose image neither a registry nor a stand-in provides."""
    from stackplate import standins
    from stackplate.engine import client

    outcomes = standins.ensure(compose.project, client(), progress=progress)
    missing = {outcome.reference: outcome.detail for outcome in outcomes if outcome.state == "unavailable"}
    left_out = []
    for name, service in config["services"].items():
        image = service.get("image")
        if image in missing:
            progress(f"leaving out {name}: {image} cannot be had here ({missing[image]})")
            left_out.append(name)
    return left_out


def _up(compose: ComposeProject, services: list[str], wait_timeout: int) -> None:
    up = ("up", "--detach", "--wait", "--wait-timeout", str(wait_timeout))
    result = compose.run(*up, *services, check=False)
    failing = [
        c for c in compose.containers() if c.get("Health") not in ("", "healthy") or c["State"] != "running"
    ]
    # Compose's exit status alone is not trusted: every container must be running and healthy.
    if result.returncode == 0 and not failing:
        return
    if not failing:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-LOG_LINES:])
        raise ServiceError(f"compose up failed (exit {result.returncode}):\n{tail}")
    first = failing[0]
    state = first.get("Health") or first["State"]
    raise ServiceError(f"{first['Service']} is {state}; its log ends:\n{compose.logs(first['Service'])}")


# The container port each development tool serves its web UI or API on.
DEVELOPMENT_TOOL_PORTS = {"pgadmin": 80, "redis-commander": 8081, "ollama": 11434}


def _booted(
    compose: ComposeProject, answers: dict[str, Any], config: dict[str, Any], services: list[str]
) -> Booted:
    """What boot.json says: published URLs of the app services and backing services."""
    published = _published_ports(compose.containers())
    settings = dotenv(compose.project / "config" / ".env")
    booted_services = {}
    for app in app_services(answers["services"]):
        name = app["name"]
        if name not in services:
            continue
        port = published.get((name, app["port"])) if app["port"] else None
        url = f"http://127.0.0.1:{port}" if port else ""
        booted_services[name] = BootedService(name, app["kind"], url, f"docker compose logs {name}")
    return Booted(
        project=str(compose.project),
        services=booted_services,
        backing=_backing_urls(published, _backing_credentials(compose.project, config), services),
        admin={
            "email": settings.get("FIRST_ADMIN_EMAIL", ""),
            "password": project_secret(compose.project, "first_admin_password", "FIRST_ADMIN_PASSWORD"),
        },
        tools={
            name: f"http://127.0.0.1:{published[(name, port)]}"
            for name, port in DEVELOPMENT_TOOL_PORTS.items()
            if name in services and (name, port) in published
        },
    )


def _published_ports(containers: list[dict[str, Any]]) -> dict[tuple[str, int], int]:
    """(service, container port) -> host port, for every port published on the host."""
    found = {}
    for container in containers:
        for publisher in container.get("Publishers") or []:
            if publisher.get("PublishedPort"):
                found[(container["Service"], int(publisher["TargetPort"]))] = int(publisher["PublishedPort"])
    return found


def _backing_credentials(project: Path, config: dict[str, Any]) -> dict[str, str]:
    """The superusers' names (from the compose files) and passwords (config/secrets/)."""
    services = config["services"]

    def setting(service: str, name: str, default: str) -> str:
        return str((services.get(service, {}).get("environment") or {}).get(name) or default)

    apps_env = [service.get("environment") or {} for service in services.values()]

    return {
        "POSTGRES_USER": setting("postgres", "POSTGRES_USER", "postgres"),
        "POSTGRES_PASSWORD": project_secret(project, "postgres_password", "POSTGRES_PASSWORD"),
        "REDIS_PASSWORD": project_secret(project, "redis_password", "REDIS_PASSWORD"),
        # The user the apps log in as (every app service names the same one).
        "RABBITMQ_DEFAULT_USER": next(
            (str(env["RABBITMQ_DEFAULT_USER"]) for env in apps_env if env.get("RABBITMQ_DEFAULT_USER")), "app"
        ),
        "RABBITMQ_DEFAULT_PASS": project_secret(project, "rabbitmq_password", "RABBITMQ_DEFAULT_PASS"),
    }


def _backing_urls(
    published: dict[tuple[str, int], int], secrets: dict[str, str], services: list[str]
) -> dict[str, str | None]:
    """Host URLs of the backing services whose ports are published (development), else None."""

    def url(service: str, port: int, make: Callable[[int], str]) -> str | None:
        host_port = published.get((service, port))
        return make(host_port) if service in services and host_port else None

    user, password = (
        quote(secrets.get("POSTGRES_USER", ""), safe=""),
        quote(secrets.get("POSTGRES_PASSWORD", ""), safe=""),
    )
    redis_password = quote(secrets.get("REDIS_PASSWORD", ""), safe="")
    rabbit_user = quote(secrets.get("RABBITMQ_DEFAULT_USER", ""), safe="")
    rabbit_password = quote(secrets.get("RABBITMQ_DEFAULT_PASS", ""), safe="")
    return {
        "postgres": url("postgres", 5432, lambda p: f"postgresql://{user}:{password}@127.0.0.1:{p}/postgres"),
        "redis": url("redis", 6379, lambda p: f"redis://:{redis_password}@127.0.0.1:{p}/0"),
        "rabbitmq": url("rabbitmq", 5672, lambda p: f"amqp://{rabbit_user}:{rabbit_password}@127.0.0.1:{p}/"),
    }
