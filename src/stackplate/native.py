"""Running a rendered project's app services natively (no Docker): environment, install, start, stop.

The environment of each service is what Compose would give it (``config/.env``
merged with the service's ``environment`` in docker-compose.yml, and each of its
Compose secrets as the variable its file in /run/secrets stands for), with the
hosts replaced by the live URLs of natively started backing services.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from stackplate import compose
from stackplate.backing import BackingUrls, free_port


class ServiceError(RuntimeError):
    """A service failed to install or start; the message names it and ends with its log."""


def dotenv(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of an env file (comments and blanks skipped; no interpolation, like Compose's)."""
    values = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            values[key.strip()] = value.strip()
    return values


SECRETS_DIR = "/run/secrets/"


def compose_environment(project: Path, service: str) -> dict[str, str]:
    """The environment Compose gives ``service`` (env_file and environment merged), its secrets included.

    A secret mounted as /run/secrets/NAME becomes the variable NAME (upper case), which
    the apps read as well; a ``*_FILE`` variable pointing into /run/secrets is dropped.
    """
    config = compose.resolved(project, "base")
    resolved = config["services"][service]
    env = {
        key: "" if value is None else str(value)
        for key, value in resolved.get("environment", {}).items()
        if not (key.endswith("_FILE") and str(value).startswith(SECRETS_DIR))
    }
    for secret in resolved.get("secrets", []):
        target = str(secret.get("target") or SECRETS_DIR + secret["source"])
        name = target.removeprefix(SECRETS_DIR)
        if target.startswith(SECRETS_DIR) and "/" not in name:
            env[name.upper()] = read_secret(Path(config["secrets"][secret["source"]]["file"]))
    return env


def read_secret(path: Path) -> str:
    """A secret file's value, as the apps read it (trailing newlines dropped)."""
    return path.read_text().rstrip("\r\n")


def project_secret(project: Path, name: str, variable: str) -> str:
    """Secret ``name`` of the project (config/secrets/NAME), else ``variable`` of an older
    project's config/.env (before 0.3.0 the secrets lived there), else ""."""
    path = project / "config" / "secrets" / name
    if path.is_file():
        return read_secret(path)
    env_file = project / "config" / ".env"
    return dotenv(env_file).get(variable, "") if env_file.is_file() else ""


def api_environment(
    project: Path, service: str, urls: BackingUrls, database_url: str, port: int, exports_dir: Path
) -> dict[str, str]:
    """The environment of a fastapi service run natively against ``urls``."""
    env = compose_environment(project, service)
    env.update(
        PORT=str(port),
        HOST="127.0.0.1",
        DATABASE_URL=database_url,
        REDIS_URL=(urls.redis or "") if env.get("REDIS_URL") else "",
        REDIS_PASSWORD="",  # the throwaway server's is in its URL
        RABBITMQ_URL=(urls.rabbitmq or "") if env.get("RABBITMQ_HOST") else "",
        EXPORTS_DIR=str(exports_dir),
    )
    return env


def worker_environment(
    project: Path, service: str, urls: BackingUrls, database_url: str, health_port: int, exports_dir: Path
) -> dict[str, str]:
    """The environment of a node-worker service run natively against ``urls``."""
    env = compose_environment(project, service)
    env.update(
        HEALTH_PORT=str(health_port),
        HEALTH_HOST="127.0.0.1",
        DATABASE_URL=plain_postgres_url(database_url),
        RABBITMQ_URL=urls.rabbitmq or "",
        EXPORTS_DIR=str(exports_dir),
    )
    return env


def plain_postgres_url(url: str) -> str:
    """``postgresql+asyncpg://...`` -> ``postgresql://...`` (what node-postgres understands)."""
    scheme, rest = url.split("://", 1)
    return f"{scheme.split('+', 1)[0]}://{rest}"


def npm_ci(service_dir: Path) -> None:
    """Install a Node service's locked dependencies (``npm ci``; the npm cache makes repeats fast)."""
    run_checked(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], service_dir, {}, "npm ci")


def uv_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "uv", *args]


def uv_sync(service_dir: Path, venv: Path) -> None:
    """Install a Python service's locked dependencies into ``venv``."""
    run_checked(uv_command("sync", "--frozen"), service_dir, {"UV_PROJECT_ENVIRONMENT": str(venv)}, "uv sync")


def run_checked(command: list[str], cwd: Path, env: Mapping[str, str], what: str, timeout: int = 900) -> str:
    full_env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never", **env}
    result = subprocess.run(
        command, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-20:])
        raise ServiceError(f"{cwd.name}: {what} failed (exit {result.returncode}):\n{tail}")
    return result.stdout


@dataclass
class RunningService:
    """A service process started by :func:`start_service`."""

    name: str
    url: str
    process: subprocess.Popen[bytes]
    log: Path
    env: Mapping[str, str] = field(default_factory=dict)  # what the process was started with

    def log_tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM the service's process group, SIGKILL it if it lingers."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def start_service(
    name: str, command: list[str], cwd: Path, env: Mapping[str, str], url: str, log_dir: Path
) -> RunningService:
    """Start ``command`` in its own process group, logging to ``log_dir/<name>.log``."""
    log = log_dir / f"{name}.log"
    with log.open("wb") as stream:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env={**os.environ, "UV_PYTHON_DOWNLOADS": "never", **env},
            stdout=stream,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return RunningService(name, url, process, log, dict(env))


def wait_healthy(service: RunningService, path: str = "/health", timeout: float = 60.0) -> None:
    """Poll ``url + path`` until it answers 200; ServiceError with the log tail if it never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            raise ServiceError(
                f"{service.name} exited with {service.process.returncode} before it was healthy:\n"
                f"{service.log_tail()}"
            )
        with (
            contextlib.suppress(urllib.error.URLError, OSError),
            urllib.request.urlopen(service.url + path, timeout=2) as response,
        ):
            if response.status == 200:
                return
        time.sleep(0.2)
    raise ServiceError(f"{service.name} was not healthy after {timeout:.0f} s:\n{service.log_tail()}")


@contextlib.contextmanager
def running_api(
    project: Path,
    service: str,
    urls: BackingUrls,
    database_url: str,
    venv: Path,
    workdir: Path,
    extra_env: Mapping[str, str] | None = None,
    workers: int = 1,
    exports_dir: Path | None = None,
    port: int | None = None,
    install: bool = True,
) -> Iterator[RunningService]:
    """A rendered fastapi service: installed, migrated and serving until the block ends.

    It listens on ``port`` (default: a free one). Its export files go to ``exports_dir``
    (default ``workdir/<service>-exports``); hand the same folder to the worker that
    serves this API. ``install=False`` when ``venv`` is already synced.
    """
    service_dir = project / "services" / service
    port = port or free_port()
    exports_dir = exports_dir or workdir / f"{service}-exports"
    env = api_environment(project, service, urls, database_url, port, exports_dir)
    env.update(extra_env or {})
    env.update(UV_PROJECT_ENVIRONMENT=str(venv), WEB_CONCURRENCY=str(workers))
    if install:
        uv_sync(service_dir, venv)
    run_checked(uv_command("run", "--frozen", "python", "-m", "app", "migrate"), service_dir, env, "migrate")
    command = uv_command("run", "--frozen", "python", "-m", "app")
    api = start_service(service, command, service_dir, env, f"http://127.0.0.1:{port}", workdir)
    try:
        wait_healthy(api)
        yield api
    finally:
        api.stop()


@contextlib.contextmanager
def running_worker(
    project: Path,
    service: str,
    urls: BackingUrls,
    database_url: str,
    exports_dir: Path,
    workdir: Path,
    extra_env: Mapping[str, str] | None = None,
    install: bool = True,
) -> Iterator[RunningService]:
    """A rendered node-worker service: installed and consuming until the block ends.

    ``exports_dir`` must be the one its API serves downloads from (Compose shares a volume).
    """
    service_dir = project / "services" / service
    port = free_port()
    env = worker_environment(project, service, urls, database_url, port, exports_dir)
    env.update(extra_env or {})
    if install:
        npm_ci(service_dir)
    command = ["node", "src/index.js"]
    worker = start_service(service, command, service_dir, env, f"http://127.0.0.1:{port}", workdir)
    try:
        wait_healthy(worker)
        yield worker
    finally:
        worker.stop()


# --------------------------------------------------------------------------- frontends

# nginx's own settings around the frontend's server block (nginx/default.conf.template):
# everything in ``root``, so nginx runs unprivileged and leaves nothing elsewhere.
_NGINX_MAIN = """\
daemon off;
{user}worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log {root}/access.log;
    client_body_temp_path {root}/tmp/body;
    proxy_temp_path {root}/tmp/proxy;
    fastcgi_temp_path {root}/tmp/fastcgi;
    uwsgi_temp_path {root}/tmp/uwsgi;
    scgi_temp_path {root}/tmp/scgi;
    include {root}/server.conf;
}}
"""


def fill_template(text: str, values: Mapping[str, str]) -> str:
    """Replace ``${NAME}`` for the given names only, as the nginx image's envsubst does."""
    for name, value in values.items():
        text = text.replace("${" + name + "}", value)
    return text


def nginx_config(service_dir: Path, root: Path, port: int, api_url: str) -> Path:
    """Write nginx settings that serve ``service_dir/dist`` on 127.0.0.1:``port`` with the /api proxy."""
    for temp in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (root / "tmp" / temp).mkdir(parents=True, exist_ok=True)
    server = fill_template(
        (service_dir / "nginx" / "default.conf.template").read_text(),
        {"PORT": f"127.0.0.1:{port}", "API_UPSTREAM": api_url, "STATIC_ROOT": str(service_dir / "dist")},
    )
    (root / "server.conf").write_text(server)
    main = root / "nginx.conf"
    main.write_text(_NGINX_MAIN.format(root=root, user=_nginx_user(service_dir)))
    return main


def _nginx_user(service_dir: Path) -> str:
    """As root, nginx's workers would drop to ``nobody``, who may not read a private project
    folder (pytest's are 0700): let them run as the folder's owner instead."""
    if os.geteuid() != 0:
        return ""  # nginx keeps our user; a "user" line would only draw a warning
    owner = pwd.getpwuid(service_dir.stat().st_uid)
    group = grp.getgrgid(owner.pw_gid).gr_name
    return f"user {owner.pw_name} {group};\n"


def build_frontend(service_dir: Path) -> None:
    """Install a react-vite service's locked dependencies and build its static files into dist/."""
    npm_ci(service_dir)
    run_checked(["npm", "run", "build"], service_dir, {}, "npm run build")


@contextlib.contextmanager
def running_frontend(
    project: Path,
    service: str,
    api_url: str,
    workdir: Path,
    port: int | None = None,
    install: bool = True,
) -> Iterator[RunningService]:
    """A rendered react-vite service, built and served by nginx with the production /api proxy."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        raise ServiceError(f"{service}: nginx is not installed (apt-get install nginx)")
    service_dir = project / "services" / service
    port = port or free_port()
    if install:
        build_frontend(service_dir)
    config = nginx_config(service_dir, workdir / f"{service}-nginx", port, api_url)
    command = [nginx, "-c", str(config), "-p", str(config.parent), "-e", str(config.parent / "error.log")]
    frontend = start_service(service, command, service_dir, {}, f"http://127.0.0.1:{port}", workdir)
    try:
        wait_healthy(frontend)
        yield frontend
    finally:
        frontend.stop()
