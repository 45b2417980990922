"""Throwaway PostgreSQL, Redis and RabbitMQ servers for development and tests.

The servers run from the locally installed Debian packages (``postgresql``,
``redis-server``, ``rabbitmq-server``) in a private temporary folder, listen on
free ports on 127.0.0.1 only, and are stopped again without leaving a process
behind::

    with BackingServices() as services:
        print(services.urls.postgres, services.urls.redis, services.urls.rabbitmq)

When ``STACKPLATE_POSTGRES_URL``, ``STACKPLATE_REDIS_URL`` or
``STACKPLATE_RABBITMQ_URL`` is set, that URL is handed out instead of starting
the server, and that server is never stopped by us.

Linux only: leftover detection reads ``/proc``.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from collections.abc import Set as AbstractSet
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import unquote, urlsplit

SERVICES = ("postgres", "redis", "rabbitmq")

#: Environment variables whose URL replaces starting the matching server.
ENV_VARS = {
    "postgres": "STACKPLATE_POSTGRES_URL",
    "redis": "STACKPLATE_REDIS_URL",
    "rabbitmq": "STACKPLATE_RABBITMQ_URL",
}

#: Seconds each server gets to become ready (RabbitMQ boots an Erlang VM).
READY_TIMEOUTS = {"postgres": 30.0, "redis": 30.0, "rabbitmq": 90.0}

_PACKAGES = {"postgres": "postgresql", "redis": "redis-server", "rabbitmq": "rabbitmq-server"}
_USER = "stackplate"  # login of the generated PostgreSQL and RabbitMQ accounts
_LOG_TAIL_LINES = 20
_STOP_GRACE = 30.0  # seconds for a clean shutdown before SIGKILL
_POLL_INTERVAL = 0.1
_POSTGRES_LIB = Path("/usr/lib/postgresql")
# /usr/sbin/rabbitmq-* are wrappers that `su` to the rabbitmq user (dropping our
# HOME and environment) or refuse other users; the real scripts live here.
_RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")


class BackingServiceError(RuntimeError):
    """A backing server could not be found, started, stopped or used."""


class _Cancelled(BackingServiceError):
    """A start was abandoned because a sibling server failed or stop() was called."""


@dataclass(frozen=True)
class BackingUrls:
    """Connection URLs of the backing servers; ``None`` for a server not requested."""

    postgres: str | None  # postgresql://user:password@127.0.0.1:PORT/postgres
    redis: str | None  # redis://:password@127.0.0.1:PORT/0
    rabbitmq: str | None  # amqp://user:password@127.0.0.1:PORT/%2F


# --------------------------------------------------------------------------- binaries


def find_binary(name: str, service: str) -> str:
    """Return the path of executable *name* needed by *service* (one of SERVICES).

    The package's private bin directory wins over PATH, because on Debian the
    PostgreSQL server tools are not on PATH and the RabbitMQ ones on PATH are
    wrappers that switch users.
    """
    for directory in _private_bin_dirs(service):
        candidate = directory / name
        if os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which(name)
    if found is None:
        package = _PACKAGES[service]
        raise BackingServiceError(
            f"{name} not found (needed for {service}): install it with `apt-get install {package}`"
        )
    return found


def _private_bin_dirs(service: str) -> list[Path]:
    if service == "postgres":
        return _postgres_bin_dirs()
    if service == "rabbitmq":
        return [_RABBITMQ_BIN]
    return []


def _postgres_bin_dirs() -> list[Path]:
    """``/usr/lib/postgresql/<version>/bin``, newest version first."""
    versions = [p for p in _POSTGRES_LIB.glob("*") if re.fullmatch(r"\d+(\.\d+)?", p.name)]
    versions.sort(key=lambda p: tuple(int(part) for part in p.name.split(".")), reverse=True)
    return [p / "bin" for p in versions]


_REQUIRED_BINARIES = {
    "postgres": ("initdb", "postgres", "pg_isready"),
    "redis": ("redis-server",),
    "rabbitmq": ("epmd", "rabbitmq-server", "rabbitmq-diagnostics"),
}


def _check_binaries(services: Sequence[str]) -> None:
    """Fail before anything starts if a binary of a requested server is missing."""
    for service in services:
        for name in _REQUIRED_BINARIES[service]:
            find_binary(name, service)
    if "postgres" in services:
        _postgres_identity()


# --------------------------------------------------------------------------- small helpers

_ports_handed_out: set[int] = set()
_ports_lock = threading.Lock()


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1, never the same one twice per process."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        with _ports_lock:
            # The kernel may offer a port again once its socket is closed, and
            # our servers bind theirs only later: remember what we gave out.
            if port not in _ports_handed_out:
                _ports_handed_out.add(port)
                return port


def _accepts(port: int) -> bool:
    """True when something accepts TCP connections on 127.0.0.1:*port*."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _redis_pings(port: int, password: str) -> bool:
    """True when the Redis server on *port* takes *password* and answers PING (it refuses while loading)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(f"AUTH {password}\r\nPING\r\n".encode())
            replies = b""
            while replies.count(b"\r\n") < 2:
                chunk = sock.recv(256)
                if not chunk:
                    return False
                replies += chunk
            return replies.startswith(b"+OK\r\n+PONG")
    except OSError:
        return False


def _succeeds(cmd: Sequence[str], *, timeout: float, env: dict[str, str] | None = None) -> bool:
    """True when *cmd* exits 0 within *timeout* seconds; output is discarded."""
    try:
        done = subprocess.run(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return False
    return done.returncode == 0


def _tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(log is empty)"


def _write_private(path: Path, text: str) -> None:
    """Write *text* to a new file only its owner can read (it may hold a password)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


@dataclass(frozen=True)
class _ProcInfo:
    """A process, identified by pid and start time so a recycled pid never matches."""

    pid: int
    start_time: int  # clock ticks since boot
    ppid: int = field(compare=False)  # changes when the process is orphaned
    pgrp: int = field(compare=False)


def _live_processes() -> list[_ProcInfo]:
    """Every live (non-zombie) process, read from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # exited while we looked
        # After "(comm)", which may contain spaces: state ppid pgrp ...; starttime is field 22.
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] != "Z":
            found.append(
                _ProcInfo(int(entry.name), int(fields[19]), ppid=int(fields[1]), pgrp=int(fields[2]))
            )
    return found


def _family(leader: int) -> set[_ProcInfo]:
    """Live processes in *leader*'s process group or descending from it.

    Both, because PostgreSQL backends call setsid() and so leave the group.
    """
    processes = _live_processes()
    family = {p for p in processes if p.pgrp == leader or p.pid == leader}
    while True:
        pids = {p.pid for p in family}
        children = {p for p in processes if p.ppid in pids} - family
        if not children:
            return family
        family |= children


def _still_running(processes: AbstractSet[_ProcInfo]) -> AbstractSet[_ProcInfo]:
    return processes & set(_live_processes())


# --------------------------------------------------------------------------- processes


@dataclass
class _Process:
    """A child started in its own session, so its whole process group can be killed."""

    popen: subprocess.Popen[bytes]
    stop_signal: int
    setup: bool  # a setup command that is expected to exit, not a server

    @property
    def name(self) -> str:
        return Path(str(self.popen.args[0])).name  # type: ignore[index]

    def exit_code(self) -> int | None:
        """The exit code once the process has exited; its leftover helpers are then killed."""
        if self.popen.returncode is not None:
            return self.popen.returncode
        if self.popen.poll() is None:
            return None
        # Kill helpers right after reaping: once the group is empty its id may be reused.
        self._kill_group()
        return self.popen.returncode

    def stop(self, grace: float = _STOP_GRACE) -> None:
        """Ask the process to shut down cleanly, then SIGKILL whatever is left of its family."""
        if self.popen.returncode is not None:
            return  # reaped earlier, and its group was cleaned up then
        # Remember the descendants now: once the leader is reaped they are orphans.
        family = _family(self.popen.pid)
        try:
            self.popen.send_signal(self.stop_signal)
            self.popen.wait(grace)
        except subprocess.TimeoutExpired:
            pass
        self._kill_group(family)

    def _kill_group(self, family: AbstractSet[_ProcInfo] = frozenset()) -> None:
        # Helpers (erl_child_setup, inet_gethost) share the group; see _family for the rest.
        with contextlib.suppress(OSError):  # the group may be empty already
            os.killpg(self.popen.pid, signal.SIGKILL)
        for straggler in _still_running(family):
            with contextlib.suppress(OSError):
                os.kill(straggler.pid, signal.SIGKILL)
        self.popen.wait()
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline and (
            _still_running(family) or any(p.pgrp == self.popen.pid for p in _live_processes())
        ):
            time.sleep(0.05)


class _Server:
    """The processes and log of one server we start; stops them in reverse start order."""

    def __init__(self, name: str, root: Path, cancelled: threading.Event) -> None:
        self.name = name
        self.dir = root / name
        self.log = self.dir / f"{name}.log"
        self._cancelled = cancelled
        self._processes: list[_Process] = []
        self._lock = threading.Lock()
        self._stopped = False

    @property
    def pids(self) -> list[int]:
        return [process.popen.pid for process in self._processes]

    def spawn(
        self,
        cmd: Sequence[str],
        *,
        stop_signal: int = signal.SIGTERM,
        log: Path | None = None,
        setup: bool = False,
        **popen_kwargs: Any,
    ) -> _Process:
        """Start a child whose output goes to *log* (default: the server log)."""
        with self._lock:
            # Checked under the lock so stop() can never miss a process.
            if self._stopped or self._cancelled.is_set():
                raise _Cancelled(f"{self.name}: start cancelled")
            with open(log or self.log, "ab") as out:
                popen = subprocess.Popen(
                    cmd,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    **popen_kwargs,
                )
            process = _Process(popen, stop_signal, setup)
            self._processes.append(process)
            return process

    def run(self, cmd: Sequence[str], *, timeout: float, **popen_kwargs: Any) -> None:
        """Run a setup command to completion, logging its output; raise if it fails."""
        process = self.spawn(cmd, setup=True, **popen_kwargs)
        deadline = time.monotonic() + timeout
        while (code := process.exit_code()) is None:
            if self._cancelled.is_set():
                raise _Cancelled(f"{self.name}: start cancelled")
            if time.monotonic() > deadline:
                raise self.error(f"{process.name} did not finish within {timeout:g} s")
            time.sleep(_POLL_INTERVAL)
        if code != 0:
            raise self.error(f"{process.name} failed with exit code {code}")

    def wait_ready(self, is_ready: Callable[[], bool], timeout: float) -> None:
        """Poll *is_ready* until it is true; fail fast if a server dies or time runs out."""
        deadline = time.monotonic() + timeout
        while not is_ready():
            if self._cancelled.is_set():
                raise _Cancelled(f"{self.name}: start cancelled")
            for process in self._processes:
                if not process.setup and (code := process.exit_code()) is not None:
                    raise self.error(f"{process.name} exited with code {code} before it was ready")
            if time.monotonic() > deadline:
                raise self.error(f"did not become ready within {timeout:g} s")
            time.sleep(_POLL_INTERVAL)

    def error(self, problem: str) -> BackingServiceError:
        """An error naming this server, with the end of its log for diagnosis."""
        return BackingServiceError(f"{self.name}: {problem}; last lines of {self.log}:\n{_tail(self.log)}")

    def stop(self) -> None:
        """Stop every process of this server (idempotent)."""
        with self._lock:
            self._stopped = True
        for process in reversed(self._processes):
            process.stop()


# --------------------------------------------------------------------------- PostgreSQL


def _postgres_identity() -> dict[str, Any]:
    """Popen arguments that run PostgreSQL as the ``postgres`` user when we are root.

    PostgreSQL refuses to run as root; as any other user it runs as that user.
    """
    if os.geteuid() != 0:
        return {}
    try:
        entry = pwd.getpwnam("postgres")
    except KeyError:
        raise BackingServiceError(
            "postgres: running as root needs the 'postgres' system user: "
            "install it with `apt-get install postgresql`"
        ) from None
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def _hand_to_postgres_user(directory: Path, identity: dict[str, Any]) -> None:
    if identity:
        for path in [directory, *directory.rglob("*")]:
            os.chown(path, identity["user"], identity["group"])


def _check_reachable(directory: Path, identity: dict[str, Any]) -> None:
    """Fail clearly when the postgres user cannot reach its folder (e.g. under a 0700 parent)."""
    probe = subprocess.run(["test", "-w", str(directory)], check=False, **identity)
    if probe.returncode != 0:
        raise BackingServiceError(
            f"postgres: the postgres user cannot write {directory}; "
            "use a workdir that every user can traverse (the default temp dir is fine)"
        )


def _start_postgres(server: _Server) -> str:
    """Initialise a cluster with a generated password, run it, and return its URL."""
    identity = _postgres_identity()
    password = secrets.token_urlsafe(18)
    port = free_port()
    data, sockets, pwfile = server.dir / "data", server.dir / "run", server.dir / "pwfile"
    sockets.mkdir(parents=True)
    _write_private(pwfile, password + "\n")
    _hand_to_postgres_user(server.dir, identity)
    _check_reachable(server.dir, identity)

    initdb = find_binary("initdb", "postgres")
    server.run(
        [initdb, "-D", str(data), "-U", _USER, f"--pwfile={pwfile}", "--auth=scram-sha-256",
         "--no-locale", "--encoding=UTF8", "--no-sync", "--no-instructions"],
        timeout=120, cwd=server.dir, **identity,
    )  # fmt: skip
    pwfile.unlink()
    server.spawn(
        [find_binary("postgres", "postgres"), "-D", str(data), "-p", str(port), "-k", str(sockets),
         "-c", "listen_addresses=127.0.0.1",
         # Throwaway data: durability only costs time.
         "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"],
        stop_signal=signal.SIGINT,  # "fast" shutdown: abort sessions, exit cleanly
        cwd=server.dir, **identity,
    )  # fmt: skip
    pg_isready = find_binary("pg_isready", "postgres")
    ping = [pg_isready, "-q", "-h", "127.0.0.1", "-p", str(port), "-d", "postgres"]
    server.wait_ready(lambda: _succeeds(ping, timeout=5), READY_TIMEOUTS["postgres"])
    return f"postgresql://{_USER}:{password}@127.0.0.1:{port}/postgres"


_DATABASE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


def create_database(url: str, name: str, *, exist_ok: bool = False) -> str:
    """Create database *name* on the PostgreSQL server at *url*; return the new database's URL.

    *name* must be a plain identifier (letters, digits, underscores). Uses the
    server package's ``psql``, so it works for external servers too.
    """
    if not _DATABASE_NAME.fullmatch(name):
        raise ValueError(f"invalid database name {name!r}: use letters, digits and underscores")
    exists = _psql(url, f"SELECT 1 FROM pg_database WHERE datname = '{name}'") == "1"
    if exists and not exist_ok:
        raise BackingServiceError(f"postgres: database {name!r} already exists")
    if not exists:
        _psql(url, f'CREATE DATABASE "{name}"')
    return urlsplit(url)._replace(path=f"/{name}").geturl()


def _psql(url: str, sql: str) -> str:
    """Run one SQL statement with psql and return its unaligned, tuples-only output."""
    # The password goes through the environment: command lines are visible to every user.
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    user = f"{parts.username}@" if parts.username else ""
    env = {**os.environ, "PGCONNECT_TIMEOUT": "10"}
    if parts.password is not None:
        env["PGPASSWORD"] = unquote(parts.password)
    dbname = parts._replace(netloc=f"{user}{host}").geturl()
    cmd = [
        find_binary("psql", "postgres"),
        "--no-psqlrc",
        "--quiet",
        "--tuples-only",
        "--no-align",
        "--set=ON_ERROR_STOP=1",
        f"--dbname={dbname}",
        f"--command={sql}",
    ]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60, check=False)
    except subprocess.TimeoutExpired:
        raise BackingServiceError(f"postgres: psql timed out running {sql!r}") from None
    if done.returncode != 0:
        raise BackingServiceError(f"postgres: {sql!r} failed: {done.stderr.strip()}")
    return done.stdout.strip()


# --------------------------------------------------------------------------- Redis


def _start_redis(server: _Server) -> str:
    """Run an in-memory Redis (no RDB/AOF persistence) with a generated password; return its URL."""
    port = free_port()
    password = secrets.token_urlsafe(18)
    server.dir.mkdir()
    # The password goes in a private config file: command lines are visible to every user.
    config = server.dir / "redis.conf"
    _write_private(config, f"requirepass {password}\n")
    server.spawn(
        [find_binary("redis-server", "redis"), str(config), "--bind", "127.0.0.1", "--port", str(port),
         "--dir", str(server.dir), "--save", "", "--appendonly", "no", "--daemonize", "no",
         "--logfile", ""],  # an empty logfile means stdout, i.e. our log
    )  # fmt: skip
    server.wait_ready(lambda: _redis_pings(port, password), READY_TIMEOUTS["redis"])
    return f"redis://:{password}@127.0.0.1:{port}/0"


# --------------------------------------------------------------------------- RabbitMQ


@dataclass(frozen=True)
class _RabbitNode:
    """Identity and ports of one private RabbitMQ node."""

    dir: Path
    password: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    nodename: str = field(default_factory=lambda: f"stackplate-{secrets.token_hex(4)}@localhost")
    amqp_port: int = field(default_factory=free_port)
    dist_port: int = field(default_factory=free_port)
    epmd_port: int = field(default_factory=free_port)

    @property
    def url(self) -> str:
        return f"amqp://{_USER}:{self.password}@127.0.0.1:{self.amqp_port}/%2F"

    def write_files(self) -> None:
        """Config, cookie and plugin files, all inside our folder so nothing global is used."""
        home = self.dir / "home"
        for directory in (home, self.dir / "mnesia", self.dir / "log"):
            directory.mkdir(parents=True)
        # Our own cookie: the server and the CLI read it from the same HOME.
        _write_private(home / ".erlang.cookie", secrets.token_hex(20))
        (home / ".erlang.cookie").chmod(0o400)
        _write_private(self.dir / "rabbitmq.conf", self._config())
        (self.dir / "enabled_plugins").write_text("[].\n")  # no plugins: faster boot
        (self.dir / "rabbitmq-env.conf").write_text("")  # ignore /etc/rabbitmq/rabbitmq-env.conf

    def _config(self) -> str:
        return (
            f"listeners.tcp.1 = 127.0.0.1:{self.amqp_port}\n"
            "loopback_users = none\n"
            f"default_user = {_USER}\n"
            f"default_pass = {self.password}\n"
            "distribution.listener.interface = 127.0.0.1\n"
            f"distribution.listener.port_range.min = {self.dist_port}\n"
            f"distribution.listener.port_range.max = {self.dist_port}\n"
        )

    def env(self) -> dict[str, str]:
        """Environment shared by rabbitmq-server and the CLI tools talking to it."""
        return {
            **os.environ,
            "HOME": str(self.dir / "home"),
            "RABBITMQ_NODENAME": self.nodename,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.amqp_port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.dir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.dir / "log"),
            "RABBITMQ_LOGS": "-",  # log to stdout, which is our log file
            "RABBITMQ_CONFIG_FILE": str(self.dir / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.dir / "advanced.config"),  # absent
            "RABBITMQ_CONF_ENV_FILE": str(self.dir / "rabbitmq-env.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.dir / "enabled_plugins"),
            # Our own epmd, so no global one is started and left behind.
            "ERL_EPMD_PORT": str(self.epmd_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_CTL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        }


def _start_rabbitmq(server: _Server) -> str:
    """Run a private epmd and RabbitMQ node and return the AMQP URL."""
    node = _RabbitNode(server.dir)
    node.write_files()
    epmd = find_binary("epmd", "rabbitmq")
    server.spawn(
        [epmd, "-address", "127.0.0.1", "-port", str(node.epmd_port)],
        log=server.dir / "epmd.log",
    )
    server.wait_ready(lambda: _accepts(node.epmd_port), READY_TIMEOUTS["rabbitmq"])
    env = node.env()
    server.spawn([find_binary("rabbitmq-server", "rabbitmq")], env=env, cwd=server.dir)
    ping = [find_binary("rabbitmq-diagnostics", "rabbitmq"), "-q", "ping"]
    # The AMQP port opens near the end of the boot; only then pay for a CLI round trip.
    server.wait_ready(
        lambda: _accepts(node.amqp_port) and _succeeds(ping, env=env, timeout=15),
        READY_TIMEOUTS["rabbitmq"],
    )
    return node.url


_STARTERS: dict[str, Callable[[_Server], str]] = {
    "postgres": _start_postgres,
    "redis": _start_redis,
    "rabbitmq": _start_rabbitmq,
}


# --------------------------------------------------------------------------- orchestration

_live: set[BackingServices] = set()  # started and not yet stopped, for the atexit fallback


@atexit.register
def _stop_leftovers() -> None:
    for services in list(_live):
        services.stop()


class BackingServices:
    """Start the requested backing servers in a temporary folder; stop them on exit.

    Use as a context manager, or call start() and stop() yourself. Servers named
    by an ``STACKPLATE_*_URL`` environment variable are not started; their URL
    is handed out as is.
    """

    def __init__(
        self,
        postgres: bool = True,
        redis: bool = True,
        rabbitmq: bool = True,
        workdir: Path | None = None,
    ) -> None:
        """*workdir* is where the temporary folder is created (default: the system temp dir).

        When running as root it must be traversable by the ``postgres`` user.
        """
        self._wanted = {"postgres": postgres, "redis": redis, "rabbitmq": rabbitmq}
        self._workdir = workdir
        self._root: Path | None = None
        self._servers: dict[str, _Server] = {}
        self._external: set[str] = set()
        self._cancelled = threading.Event()
        self._urls: BackingUrls | None = None

    @property
    def urls(self) -> BackingUrls:
        """The URLs handed out by start()."""
        if self._urls is None:
            raise BackingServiceError("backing services are not started")
        return self._urls

    @property
    def root(self) -> Path | None:
        """The temporary folder of the started servers (removed by stop())."""
        return self._root

    @property
    def pids(self) -> tuple[int, ...]:
        """Every process this object started, running or not, to verify cleanup."""
        return tuple(pid for server in self._servers.values() for pid in server.pids)

    def start(self) -> BackingUrls:
        """Start the requested servers in parallel and wait until all accept connections.

        On any failure everything already started is stopped before the error propagates.
        """
        if self._urls is not None:
            return self._urls
        if self._cancelled.is_set():
            raise BackingServiceError("these backing services were stopped; create new ones")
        urls: dict[str, str | None] = dict.fromkeys(SERVICES)
        to_start = []
        for name in SERVICES:
            if not self._wanted[name]:
                continue
            if external := os.environ.get(ENV_VARS[name]):
                urls[name] = external
                self._external.add(name)
            else:
                to_start.append(name)
        _check_binaries(to_start)
        if to_start:
            try:
                urls.update(self._start_servers(to_start))
            except BaseException:
                self.stop()
                raise
        self._urls = BackingUrls(**urls)
        return self._urls

    def _start_servers(self, names: list[str]) -> dict[str, str]:
        self._root = Path(tempfile.mkdtemp(prefix="stackplate-", dir=self._workdir))
        self._root.chmod(0o711)  # the postgres user must reach its data dir inside
        _live.add(self)
        self._servers = {name: _Server(name, self._root, self._cancelled) for name in names}
        with ThreadPoolExecutor(len(names), thread_name_prefix="stackplate-backing") as pool:
            futures = {pool.submit(_STARTERS[name], self._servers[name]): name for name in names}
            try:
                wait(futures, return_when=FIRST_EXCEPTION)
            except BaseException:  # e.g. KeyboardInterrupt
                self._cancelled.set()
                raise
            if any(f.done() and f.exception() for f in futures):
                self._cancelled.set()  # siblings give up at their next poll
            # Leaving the block waits for cancelled siblings, so none spawns after stop().
        _raise_first_failure(futures)
        return {name: future.result() for future, name in futures.items()}

    def stop_service(self, name: str) -> None:
        """Stop one server we started (e.g. to test readiness checks); the rest keep running."""
        if name not in SERVICES:
            raise ValueError(f"unknown service {name!r}; expected one of {SERVICES}")
        if name in self._external:
            raise BackingServiceError(f"{name} comes from {ENV_VARS[name]}; not ours to stop")
        if name not in self._servers:
            raise BackingServiceError(f"{name} was not started")
        self._servers[name].stop()

    def stop(self) -> None:
        """Stop every process this object started and remove its folder (idempotent)."""
        self._cancelled.set()
        for server in reversed(list(self._servers.values())):
            server.stop()
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
        _live.discard(self)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def _raise_first_failure(futures: dict[Future[str], str]) -> None:
    """Raise the error that caused the failure, not the cancellations it triggered."""
    errors = [error for future in futures if (error := future.exception()) is not None]
    for error in sorted(errors, key=lambda e: isinstance(e, _Cancelled)):
        raise error
