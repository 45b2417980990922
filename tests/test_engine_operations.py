"""Operating the stack on the real engine: faults with nothing lost (a worker killed mid-export,
backing services restarted under load, a job queued while no worker runs), and backups that
restore, made the way docs/operations/backup-restore.md says.

One default project (development services off) is booted with the development
file for the whole module, as ``stackplate boot --engine docker`` does it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
import redis
from apiclient import EventStream, call, login
from booting import stackplate_boot
from conftest import HOST_PORTS, render
from engine import (
    compose_name,
    engine_or_fail,
    ensure_stand_ins,
    leftovers,
    own_network,
    remove_project,
    wait_for,
)
from matrix import ALL_DEV_OFF

from stackplate.compose_boot import ComposeProject

pytestmark = [pytest.mark.engine, pytest.mark.slow, HOST_PORTS]

BULK_USERS = 50_000


@dataclass
class Stack:
    project: Path
    compose: ComposeProject
    api: str
    token: str
    postgres: str
    redis: str
    engine: object
    jobs: list[str] = field(default_factory=list)

    def container(self, service: str):
        (entry,) = [c for c in self.compose.containers() if c["Service"] == service]
        return self.engine.containers.get(entry["ID"])

    def export(self) -> str:
        job = json.loads(call(f"{self.api}/api/v1/exports", "POST", {"format": "csv"}, self.token))
        self.jobs.append(job["id"])
        return job["id"]

    def job(self, job_id: str) -> dict:
        return json.loads(call(f"{self.api}/api/v1/exports/{job_id}", token=self.token))

    def export_files(self) -> list[str]:
        listing = self.compose.run("exec", "-T", "api", "ls", "-A", "/data/exports/api").stdout
        return sorted(listing.split())


@pytest.fixture(scope="module")
def stack(template_copy, tmp_path_factory):
    engine = engine_or_fail()
    folder = tmp_path_factory.mktemp("faults")
    project = folder / "project"
    answers = {**own_network("sp-faults"), **ALL_DEV_OFF}
    render(template_copy, project, answers)
    ensure_stand_ins(project)
    try:
        with stackplate_boot(project, folder / "boot.log", "--engine", "docker") as booted:
            api = booted["services"]["api"]["url"]
            token = login(api, booted["admin"]["email"], booted["admin"]["password"])
            postgres = booted["backing"]["postgres"].rsplit("/", 1)[0] + "/api"
            compose = ComposeProject(project, production=False)
            yield Stack(project, compose, api, token, postgres, booted["backing"]["redis"], engine)
    finally:
        remove_project(project)
    assert leftovers(engine, compose_name(project)) == {"containers": [], "networks": [], "volumes": []}


def test_a_job_queued_while_no_worker_runs_completes_when_one_starts(stack) -> None:
    stack.compose.run("stop", "worker")
    job = stack.export()
    assert stack.job(job)["status"] == "queued"
    stack.compose.run("start", "worker")
    wait_for(lambda: stack.job(job)["status"] == "done", 60, "the queued job done once the worker runs")


def test_a_worker_crashing_mid_export_restarts_and_the_job_ends_done_once(stack) -> None:
    with psycopg.connect(stack.postgres, autocommit=True) as connection:
        connection.execute(
            "INSERT INTO users (id, email, hashed_password, full_name) "
            "SELECT gen_random_uuid(), 'bulk' || n || '@example.com', 'not a hash', 'Bulk ' || n "
            "FROM generate_series(1, %s) AS n",
            (BULK_USERS,),
        )
        (users,) = connection.execute("SELECT count(*) FROM users").fetchone()
    stream = EventStream(stack.api, stack.token)
    stream.start()
    try:
        stack.compose.run("stop", "worker")
        job = stack.export()
        # A transaction that holds the users table: the export stops mid-way, its job
        # running. While it holds, the job is read from PostgreSQL (the API reads users).
        with (
            psycopg.connect(stack.postgres) as blocker,
            psycopg.connect(stack.postgres, autocommit=True) as db,
        ):
            blocker.execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
            stack.compose.run("start", "worker")
            restarts = stack.container("worker").attrs["RestartCount"]
            status = "SELECT status FROM export_jobs WHERE id = %s"
            wait_for(lambda: db.execute(status, (job,)).fetchone()[0] == "running", 60, "the export running")
            crash(stack.container("worker"))
            blocker.rollback()
        wait_for(lambda: stack.job(job)["status"] == "done", 120, "the job done after the worker's restart")
    finally:
        stream.close()
    final = stack.job(job)
    assert final["row_count"] == users and final["attempts"] == 2, final
    assert stack.container("worker").attrs["RestartCount"] == restarts + 1, "the restart policy did not act"
    done = [e for e in stream.events if e["job_id"] == job and e["status"] == "done"]
    assert len(done) == 1, stream.events
    files = [name for name in stack.export_files() if job in name]
    assert files == [f"{job}.csv"], files


def crash(container) -> None:
    """SIGKILL the container's main process from the host, as a crash or the OOM killer would.

    Not ``docker kill``: the engine counts that as a manual stop, after which no
    restart policy acts (checked on this engine, ``restart: always`` included).
    """
    os.kill(container.attrs["State"]["Pid"], signal.SIGKILL)


class Load(threading.Thread):
    """Light load on the API: a cached read every 100 ms, each outcome recorded."""

    def __init__(self, stack: Stack) -> None:
        super().__init__(daemon=True)
        self.stack, self.stopping = stack, threading.Event()
        self.outcomes: list[tuple[float, int]] = []

    def run(self) -> None:
        while not self.stopping.wait(0.1):
            try:
                call(f"{self.stack.api}/api/v1/users?limit=5", token=self.stack.token)
                status = 200
            except urllib.error.HTTPError as error:
                status = error.code
            except OSError:
                status = 0
            self.outcomes.append((time.monotonic(), status))


def ready(api: str) -> bool:
    try:
        with urllib.request.urlopen(f"{api}/ready", timeout=5) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def wait_until_done(stack: Stack, job: str, when: str) -> None:
    """Wait for the job's ``done``; a job that ends otherwise fails at once, naming its row."""
    rows: list[dict] = []

    def finished() -> bool:
        rows.append(stack.job(job))
        return rows[-1]["status"] in ("done", "failed")

    wait_for(finished, 90, f"job {job} finished {when}")
    assert rows[-1]["status"] == "done", f"job {job} {when}: {rows[-1]}"


@pytest.mark.parametrize("order", [("postgres", "rabbitmq", "redis")], ids=["postgres-rabbitmq-redis"])
def test_backing_services_restarted_under_load_lose_nothing(stack, order) -> None:
    api_before = stack.container("api").attrs
    worker_before = stack.container("worker").attrs
    load = Load(stack)
    load.start()
    try:
        for service in order:
            before = stack.export()
            stack.compose.run("restart", service)
            restarted = time.monotonic()
            wait_for(lambda: ready(stack.api), 30, f"the API ready again after {service} restarted")
            wait_for(
                lambda since=restarted: any(t > since and s == 200 for t, s in load.outcomes),
                30,
                f"the API answering reads after {service} restarted",
            )
            after = stack.export()
            for job in (before, after):
                wait_until_done(stack, job, f"after {service} restarted")
    finally:
        load.stopping.set()
        load.join()
    for service, before in (("api", api_before), ("worker", worker_before)):
        now = stack.container(service).attrs
        assert now["RestartCount"] == before["RestartCount"], f"{service} restarted"
        assert now["State"]["StartedAt"] == before["State"]["StartedAt"], f"{service} restarted"
    assert load.outcomes and load.outcomes[-1][1] == 200, load.outcomes[-5:]


# --------------------------------------------------------------------------- backup and restore


def test_postgres_backup_in_a_one_off_container_restores_the_same_rows(stack) -> None:
    """The documented one-off ``postgres`` container runs the scripts against the stack's server."""
    backups = stack.project / "backups"
    backups.mkdir(exist_ok=True)
    one_off = (
        "run", "--rm", "--no-deps", "-e", "POSTGRES_HOST=postgres", "-e", "BACKUP_DIR=/backups",
        "-v", f"{stack.project / 'scripts'}:/scripts:ro", "-v", f"{backups}:/backups",
    )  # fmt: skip
    stack.compose.run(*one_off, "--entrypoint", "/scripts/backup-postgres.sh", "postgres", "api")
    (dump,) = backups.glob("api-*.dump")
    restore = ("--entrypoint", "/scripts/restore-postgres.sh", "postgres", "--create")
    stack.compose.run(*one_off, *restore, f"/backups/{dump.name}", "api_restored")
    query = "SELECT id, email, role FROM users ORDER BY id"
    with psycopg.connect(stack.postgres) as original:
        assert original.execute("SHOW server_encoding").fetchone() == ("UTF8",)
        rows = original.execute(query).fetchall()
    with psycopg.connect(stack.postgres.rsplit("/", 1)[0] + "/api_restored") as restored:
        assert restored.execute(query).fetchall() == rows
    assert rows, "nothing was backed up"


def test_redis_backup_from_the_host_restores_the_same_keys(stack) -> None:
    """The development way: the scripts on the host against the published Redis port."""
    url = stack.redis
    client = redis.Redis.from_url(url)
    for number in range(20):
        client.set(f"backup-test:{number}", f"value {number}", ex=3600)
    keys = {key: client.get(key) for key in client.scan_iter("backup-test:*")}
    backups = stack.project / "backups"
    env = {"REDIS_URL": url, "BACKUP_DIR": str(backups)}
    run_script(stack.project, "backup-redis.sh", env)
    (snapshot,) = backups.glob("redis-*.rdb")
    client.flushall()
    run_script(stack.project, "restore-redis.sh", env, "--flush", str(snapshot))
    assert {key: client.get(key) for key in client.scan_iter("backup-test:*")} == keys
    assert all(0 < client.ttl(key) <= 3600 for key in keys)


def run_script(project: Path, name: str, env: dict[str, str], *args: str) -> None:
    result = subprocess.run(
        ["bash", str(project / "scripts" / name), *args],
        cwd=project,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, f"{name}: {result.stdout}{result.stderr}"
