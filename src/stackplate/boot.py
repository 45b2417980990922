"""Boot a rendered project natively: backing servers, migrations, then every app service.

No Docker: PostgreSQL, Redis and RabbitMQ are throwaway servers from
:mod:`stackplate.backing` (or the ``STACKPLATE_*_URL`` servers given), each API
runs with uvicorn from its own virtualenv, each worker with node, each frontend
is built and served by nginx with the production ``/api`` proxy. Every service
gets the environment Compose would give it (:mod:`stackplate.native`).

Everything the boot makes lives in ``PROJECT/.stackplate/`` (gitignored): logs,
virtualenvs, export files, nginx settings, and ``boot.json`` with the URLs for
scripts and CI jobs. It is removed again (but for logs, virtualenvs and exports)
when the boot stops.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stackplate.answers import app_services
from stackplate.backing import ENV_VARS, BackingServices, BackingUrls, create_database, free_port
from stackplate.native import (
    RunningService,
    build_frontend,
    dotenv,
    npm_ci,
    project_secret,
    running_api,
    running_frontend,
    running_worker,
    uv_sync,
)
from stackplate.project import load_answers

STATE_DIR = ".stackplate"
BOOT_FILE = "boot.json"

Progress = Callable[[str], None]
START_ORDER = ("fastapi", "node-worker", "react-vite")


@dataclass
class BootedService:
    name: str
    kind: str
    url: str  # the health endpoint's base URL for workers
    log: str
    # The port the answers give it (None: a worker, or --engine docker). When the
    # native boot found it taken, ``url`` has another port.
    answer_port: int | None = None


@dataclass
class Booted:
    """What ``boot.json`` holds: where everything runs, and how to log in."""

    project: str
    services: dict[str, BootedService]
    backing: dict[str, str | None]
    admin: dict[str, str]
    # Development tools (pgAdmin, Redis Commander, Ollama) by URL: only containers run them.
    tools: dict[str, str] = field(default_factory=dict)
    pid: int = field(default_factory=os.getpid)
    running: dict[str, RunningService] = field(default_factory=dict, repr=False)  # not in boot.json

    def as_json(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "pid": self.pid,
            "services": {name: vars(service) for name, service in self.services.items()},
            "backing": self.backing,
            "admin": self.admin,
            "tools": self.tools,
        }


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def pick_port(wanted: int | None, progress: Progress, name: str) -> int:
    """The answer's port when it is free here, else any free one (said so)."""
    if wanted and _port_free(wanted):
        return wanted
    port = free_port()
    if wanted:
        progress(f"{name}: port {wanted} is taken here, using {port}")
    return port


def install_all(project: Path, apps: list[dict[str, Any]], state: Path, progress: Progress) -> None:
    """Install every service's dependencies (and build frontends) in parallel: the slow part."""

    def install(service: dict[str, Any]) -> None:
        service_dir = project / "services" / service["name"]
        if service["kind"] == "fastapi":
            uv_sync(service_dir, state / "venvs" / service["name"])
        elif service["kind"] == "node-worker":
            npm_ci(service_dir)
        else:
            build_frontend(service_dir)
        progress(f"{service['name']}: installed")

    progress("installing: " + ", ".join(f"{s['name']} ({s['kind']})" for s in apps))
    with ThreadPoolExecutor(max_workers=4) as pool:
        for future in [pool.submit(install, service) for service in apps]:
            future.result()


@contextlib.contextmanager
def booted(project: Path, progress: Progress = print) -> Iterator[Booted]:
    """Boot ``project`` natively; yield where it runs; stop everything when the block ends."""
    project = project.resolve()
    answers = load_answers(project)
    apps = app_services(answers["services"])
    state = project / STATE_DIR
    logs = state / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    (state / ".gitignore").write_text("*\n")
    boot_file = state / BOOT_FILE
    boot_file.unlink(missing_ok=True)
    switches = {name: bool(answers.get(name)) for name in ("postgres", "redis", "rabbitmq")}

    with contextlib.ExitStack() as stack:
        progress(_backing_plan(switches))
        # In the system temp dir: the postgres user must reach its data dir, and a
        # project under /root would not let it.
        backing = stack.enter_context(BackingServices(**switches))
        urls: BackingUrls = backing.urls
        install_all(project, apps, state, progress)
        running: dict[str, RunningService] = {}
        by_name = {service["name"]: service for service in apps}
        # APIs first: workers and frontends need their API's exports folder and URL.
        for service in sorted(apps, key=lambda s: START_ORDER.index(s["kind"])):
            name = service["name"]
            progress(f"{name}: starting")
            running[name] = stack.enter_context(
                _start(project, service, by_name, urls, state, running, progress)
            )
            progress(f"{name}: healthy at {running[name].url}")
        secrets = dotenv(project / "config" / ".env")
        result = Booted(
            project=str(project),
            services={name: _booted_service(by_name[name], r) for name, r in running.items()},
            backing={"postgres": urls.postgres, "redis": urls.redis, "rabbitmq": urls.rabbitmq},
            admin={
                "email": secrets.get("FIRST_ADMIN_EMAIL", ""),
                "password": project_secret(project, "first_admin_password", "FIRST_ADMIN_PASSWORD"),
            },
            running=running,
        )
        write_private(boot_file, json.dumps(result.as_json(), indent=2) + "\n")
        stack.callback(boot_file.unlink, missing_ok=True)
        yield result


def _booted_service(service: dict[str, Any], running: RunningService) -> BootedService:
    return BootedService(service["name"], service["kind"], running.url, str(running.log), service.get("port"))


def _backing_plan(switches: dict[str, bool]) -> str:
    """What the boot is about to do about PostgreSQL, Redis and RabbitMQ, in words."""
    given = [name for name, on in switches.items() if on and os.environ.get(ENV_VARS[name])]
    started = [name for name, on in switches.items() if on and name not in given]
    parts = [f"starting {', '.join(started)} (throwaway servers)"] if started else []
    parts += [f"using the given {', '.join(given)}"] if given else []
    return "; ".join(parts) or "no backing services"


def _start(
    project: Path,
    service: dict[str, Any],
    by_name: dict[str, dict[str, Any]],
    urls: BackingUrls,
    state: Path,
    running: dict[str, RunningService],
    progress: Progress,
) -> contextlib.AbstractContextManager[RunningService]:
    """The context manager that runs one app service (its API, if any, is already running)."""
    name, kind = service["name"], service["kind"]
    logs = state / "logs"
    # An API and its workers share the API's database and exports folder, as in Compose.
    api = service if kind == "fastapi" else by_name[service["api"]]
    exports = state / "exports" / api["name"]
    if kind == "fastapi":
        database = create_database(urls.postgres, api["database"], exist_ok=True)
        port = pick_port(service["port"], progress, name)
        venv = state / "venvs" / name
        return running_api(
            project, name, urls, database, venv, logs, exports_dir=exports, port=port, install=False
        )
    if kind == "node-worker":
        database = create_database(urls.postgres, api["database"], exist_ok=True)
        return running_worker(project, name, urls, database, exports, logs, install=False)
    port = pick_port(service["port"], progress, name)
    return running_frontend(project, name, running[api["name"]].url, logs, port=port, install=False)


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (it holds the first admin's password).

    Written beside it and renamed into place, so whoever waits for it never reads half a file.
    """
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.unlink(missing_ok=True)
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as stream:
        stream.write(text)
    temporary.replace(path)
