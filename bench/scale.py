"""Scaling curves on Docker Swarm: the API's cached ``GET /users`` and the worker's jobs at 1, 2, 4 replicas.

Renders the default project (rate limits and the per-user export limit
lifted in ``config/.env``, as bench/api.py and bench/worker.py do), makes its
upstream images available (stand-ins where no registry answers), makes this
engine a one-node swarm unless it is one (left again at the end) and deploys
the production stack with ``stackplate deploy --swarm``. Then:

- API: ``docker service scale api=N``; once N replicas are healthy, ``wrk``
  (2 threads, 64 connections) sends ``GET /api/v1/users`` (cached: JWT check
  and one Redis GET) to the frontend's port, whose nginx spreads the requests
  over the replicas by DNS round robin (the stack's way without IPVS, see the
  project's scripts/swarm.py; a kernel with IPVS would put Swarm's routing
  mesh here instead);
- worker: the API at 2 replicas, ``docker service scale worker=N``; JOBS
  ``POST /api/v1/exports`` from 16 client threads through the frontend; jobs/s
  is JOBS over the span from the first job's ``created_at`` to the last one's
  ``finished_at`` (the export_jobs table), p50/p99 of ``finished_at -
  created_at`` per job.

Everything shares this machine's cores with wrk and the clients: read the
curve's bend against ``nproc``. So each row also says how busy the cores were
(``busy``: cores' worth of CPU time during the row, from /proc/stat) and where
that time went (``CPU by part``: each service's containers, from their cgroups'
CPU accounting; ``rest`` is wrk, the client threads and the engine). A
benchmark prints a table; it asserts nothing.

Run: ``python bench/scale.py [--seconds S] [--jobs N]`` (defaults 10 s, 1,000 jobs).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import copier
from api import call, login, wrk  # bench/api.py: the same calls and the same wrk run

REPO = Path(__file__).resolve().parent.parent
STACK = "sp-scale"
FRONTEND = "http://127.0.0.1:3000"
REPLICAS = (1, 2, 4)
CLIENTS = 16
SEED_USERS = 19  # with the admin, 20 users in each export (as bench/worker.py)
SETTINGS = {
    "GENERAL_RATE_LIMIT": "100000000/minute",
    "LOGIN_RATE_LIMIT": "100000000/minute",
    "LOGIN_IP_RATE_LIMIT": "100000000/minute",
    "EXPORT_MAX_ACTIVE_PER_USER": "100000",
}
TOOK = "finished_at - created_at"  # one job, from the API's insert to the worker's commit
NO_DEVELOPMENT_SERVICES = {"ollama": False, "pgadmin": False, "redis_commander": False}


def docker(*args: str) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=True, timeout=600).stdout


def render(destination: Path) -> Path:
    answers = {"project_slug": STACK, **NO_DEVELOPMENT_SERVICES}
    copier.run_copy(
        str(REPO), str(destination), data=answers, defaults=True, unsafe=True, quiet=True, vcs_ref="HEAD"
    )
    env = destination / "config" / ".env"
    lines = [line for line in env.read_text().splitlines() if line.split("=", 1)[0] not in SETTINGS]
    env.write_text("\n".join([*lines, *(f"{key}={value}" for key, value in SETTINGS.items())]) + "\n")
    return destination


def stackplate(*args: str) -> None:
    subprocess.run([str(Path(sys.executable).with_name("stackplate")), *args], check=True, timeout=1800)


def healthy(service: str) -> int:
    """Running tasks of ``service`` whose containers pass their healthcheck."""
    count = 0
    for container in docker("ps", "-q", "--filter", f"label=com.docker.swarm.service.name={service}").split():
        count += docker("inspect", "--format", "{{.State.Health.Status}}", container).strip() == "healthy"
    return count


def scale(name: str, replicas: int, timeout: float = 180) -> None:
    service = f"{STACK}_{name}"
    docker("service", "scale", "--detach", f"{service}={replicas}")
    deadline = time.monotonic() + timeout
    while healthy(service) != replicas or _stale(service, replicas):
        if time.monotonic() > deadline:
            raise SystemExit(f"{service}: not {replicas} healthy replicas within {timeout:g} s")
        time.sleep(0.5)  # a poll interval


def _stale(service: str, replicas: int) -> bool:
    """Whether more containers than replicas still run (scaled down, not yet stopped)."""
    return (
        len(docker("ps", "-q", "--filter", f"label=com.docker.swarm.service.name={service}").split())
        > replicas
    )


def psql(sql: str) -> str:
    container = docker(
        "ps", "-q", "--filter", f"label=com.docker.swarm.service.name={STACK}_postgres"
    ).split()[0]
    return docker("exec", container, "psql", "-U", "app", "-d", "api", "-AtX", "-c", sql).strip()


class CpuMeter:
    """Cores' worth of CPU time used during a ``with`` block: the machine's, and each service's."""

    def __enter__(self) -> CpuMeter:
        self.started = time.monotonic()
        self.busy_before, self.parts_before = _busy_seconds(), _service_seconds()
        return self

    def __exit__(self, *exc: object) -> None:
        elapsed = time.monotonic() - self.started
        self.busy = (_busy_seconds() - self.busy_before) / elapsed
        after = _service_seconds()
        self.parts = {
            name: (seconds - self.parts_before.get(name, 0.0)) / elapsed for name, seconds in after.items()
        }

    def columns(self) -> list[str]:
        parts = sorted(((share, name) for name, share in self.parts.items() if share >= 0.05), reverse=True)
        rest = self.busy - sum(self.parts.values())
        text = ", ".join(f"{name} {share:.2f}" for share, name in parts) + f", rest {rest:.2f}"
        return [f"{self.busy:.2f} of {os.cpu_count()}", text]


def _busy_seconds() -> float:
    """CPU seconds all cores spent not idle since boot (/proc/stat's first line)."""
    ticks = [int(value) for value in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = ticks[3] + ticks[4]  # idle, iowait
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _service_seconds() -> dict[str, float]:
    """CPU seconds each of the stack's services has used, summed over its running containers."""
    used: dict[str, float] = {}
    lines = docker("ps", "--filter", f"label=com.docker.stack.namespace={STACK}", "--format", "{{.ID}}")
    for short in lines.split():
        container = json.loads(docker("inspect", short))[0]
        name = container["Config"]["Labels"]["com.docker.swarm.service.name"].removeprefix(f"{STACK}_")
        used[name] = used.get(name, 0.0) + _container_seconds(container["Id"])
    return used


def _container_seconds(container_id: str) -> float:
    """A container's CPU seconds from its cgroup (cgroup v1's cpuacct or v2's cpu.stat; 0 if neither)."""
    v1 = Path(f"/sys/fs/cgroup/cpuacct/docker/{container_id}/cpuacct.usage")
    if v1.exists():
        return int(v1.read_text()) / 1e9
    v2 = Path(f"/sys/fs/cgroup/system.slice/docker-{container_id}.scope/cpu.stat")
    if v2.exists():
        return int(v2.read_text().split()[1]) / 1e6  # usage_usec
    return 0.0


def api_curve(token: str, seconds: int) -> list[list[str]]:
    rows = []
    for replicas in REPLICAS:
        scale("api", replicas)
        with CpuMeter() as cpu:
            load = wrk(f"{FRONTEND}/api/v1/users?limit=20", seconds, 64, {"authorization": f"Bearer {token}"})
        rows.append(
            [
                str(replicas),
                f"{load.requests_per_s:,.0f}",
                f"{load.p50_ms:.1f}",
                f"{load.p99_ms:.1f}",
                str(load.errors),
                *cpu.columns(),
            ]
        )
    return rows


def worker_curve(token: str, jobs: int) -> list[list[str]]:
    scale("api", 2)
    rows = []
    for replicas in REPLICAS:
        scale("worker", replicas)
        psql("DELETE FROM export_jobs")
        with CpuMeter() as cpu:
            with ThreadPoolExecutor(CLIENTS) as pool:
                list(
                    pool.map(
                        lambda _: call(f"{FRONTEND}/api/v1/exports", "POST", {"format": "csv"}, token),
                        range(jobs),
                    )
                )
            deadline = time.monotonic() + 600
            while int(psql("SELECT count(*) FROM export_jobs WHERE status IN ('done', 'failed')")) < jobs:
                if time.monotonic() > deadline:
                    raise SystemExit(f"{jobs} jobs not done within 600 s")
                time.sleep(0.5)  # a poll interval
        span, p50, p99, failed = psql(
            "SELECT extract(epoch FROM max(finished_at) - min(created_at)),"
            f" 1000 * extract(epoch FROM percentile_cont(0.5) WITHIN GROUP (ORDER BY {TOOK})),"
            f" 1000 * extract(epoch FROM percentile_cont(0.99) WITHIN GROUP (ORDER BY {TOOK})),"
            " count(*) FILTER (WHERE status = 'failed') FROM export_jobs"
        ).split("|")
        rows.append(
            [
                str(replicas),
                f"{jobs / float(span):,.0f}",
                f"{float(p50):.0f}",
                f"{float(p99):.0f}",
                failed,
                *cpu.columns(),
            ]
        )
    return rows


def table(title: str, header: list[str], rows: list[list[str]]) -> None:
    print(f"\n{title}\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---:" for _ in header) + "|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10, help="wrk run per replica count (10)")
    parser.add_argument("--jobs", type=int, default=1000, help="export jobs per replica count (1,000)")
    args = parser.parse_args()
    had_gateway = "docker_gwbridge" in docker("network", "ls", "--format", "{{.Name}}").split()
    made_swarm = json.loads(docker("info", "--format", "{{json .Swarm}}"))["LocalNodeState"] != "active"
    if made_swarm:
        docker("swarm", "init", "--advertise-addr", "127.0.0.1")
    try:
        with tempfile.TemporaryDirectory(prefix="bench-scale-") as scratch:
            project = render(Path(scratch) / STACK)
            stackplate("standins", str(project))
            stackplate("deploy", "--swarm", str(project))
            settings = dict(
                line.split("=", 1)
                for line in (project / "config" / ".env").read_text().split()
                if "=" in line
            )
            password = (project / "config" / "secrets" / "first_admin_password").read_text().strip()
            token = login(FRONTEND, settings["FIRST_ADMIN_EMAIL"], password)
            for number in range(SEED_USERS):
                user = {"email": f"user{number}@bench.example.com", "password": "bench-password-123"}
                call(f"{FRONTEND}/api/v1/users", "POST", {**user, "full_name": f"User {number}"}, token)
            engine = docker("version", "--format", "{{.Server.Version}}").strip()
            print(f"{os.cpu_count()} cores; stack {STACK} on Docker {engine}")
            table(
                "API GET /api/v1/users (cached), 64 connections through the frontend",
                ["API replicas", "req/s", "p50 ms", "p99 ms", "errors", "busy", "CPU by part"],
                api_curve(token, args.seconds),
            )
            table(
                f"Worker: {args.jobs} exports (20 users each), API at 2 replicas",
                ["worker replicas", "jobs/s", "p50 ms", "p99 ms", "failed", "busy", "CPU by part"],
                worker_curve(token, args.jobs),
            )
    finally:
        remove_stack()
        if made_swarm:
            docker("swarm", "leave", "--force")
            if not had_gateway:
                docker("network", "rm", "docker_gwbridge")


def remove_stack(timeout: float = 120) -> None:
    """``docker stack rm``, waited for, then the stack's volumes."""
    namespace = f"label=com.docker.stack.namespace={STACK}"
    subprocess.run(["docker", "stack", "rm", STACK], capture_output=True, check=False)
    deadline = time.monotonic() + timeout
    while docker("ps", "-aq", "--filter", namespace) or docker("network", "ls", "-q", "--filter", namespace):
        if time.monotonic() > deadline:
            raise SystemExit(f"stack {STACK} not gone within {timeout:g} s")
        time.sleep(0.5)  # a poll interval
    volumes = docker("volume", "ls", "-q", "--filter", namespace).split()
    if volumes:
        docker("volume", "rm", *volumes)


if __name__ == "__main__":
    main()
