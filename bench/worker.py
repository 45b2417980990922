"""How many export jobs per second do the rendered API and worker carry, and how long does one take?

Renders the default project, starts throwaway PostgreSQL, Redis and RabbitMQ,
boots the API (2 uvicorn workers unless ``--api-workers``) and one and then two
node workers natively, seeds a small users table (SEED_USERS users, CLIENTS of
them admins, so every export holds all SEED_USERS), then sends
``POST /api/v1/exports`` JOBS times from CLIENTS client threads, each as its own
admin on its own kept-alive HTTP connection, and listens on the events exchange
for each job's ``done``.

Per run it prints jobs per second (first POST sent to last ``done`` received),
p50/p99 of the time from sending the POST to receiving the job's ``done`` event,
and where that time goes (p50 of each): the POST's answer on the client, the wait
from the row's ``created_at`` to the worker's claim (``started_at``: the publish,
the queue, the prefetch) and the worker's run (``started_at`` to ``finished_at``).
The ``load`` column is the 1-minute load average when the run ended: the machine
may be shared, so read figures next to it and repeat runs. The last columns are
CPU milliseconds per job, by part (see ``cpu_seconds``), which hardly depend on
that load: two idle cores carry at most 2000 / ``cpu`` jobs per second.

``--ref REF`` (repeatable) also renders the template as it is at git ref REF (the
anchor, e.g. ``main``) and measures it in the same run, interleaved with the
working tree (committed or not), so all rows share the machine's conditions.
``--profile DIR`` records the API with py-spy during each row's jobs (a
collapsed-stack file per row in DIR) and prints which libraries its samples fall in.
``--env KEY=VALUE`` sets a variable for the API and the worker of every row (a
lever to measure, e.g. ``WORKER_PREFETCH=16``). The per-user export limit and the
rate limits are raised out of the way, and bcrypt is cheap for the seeding.
A benchmark prints a table; it asserts nothing.

Run: ``python bench/worker.py [--jobs N] [--quick] [--ref main ...] [--repeat N]
[--workers 1,2] [--api-workers N] [--env KEY=VALUE ...] [--profile DIR]`` (default 1,000 jobs;
``--quick``: 200).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import io
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import copier
import pika
import psycopg
from api import call, login  # bench/api.py: the same JSON calls to the rendered API

from stackplate.backing import BackingServices, BackingUrls, create_database
from stackplate.native import dotenv, plain_postgres_url, project_secret, running_api, running_worker

REPO = Path(__file__).resolve().parent.parent
TEMPLATE_PARTS = ("copier.yml", "template", "extensions", "src")  # what a render reads
SEED_USERS = 20
CLIENTS = 16
PASSWORD = "bench-password-123"
NO_LIMITS = {
    "GENERAL_RATE_LIMIT": "100000000/minute",
    "LOGIN_RATE_LIMIT": "100000000/minute",
    "LOGIN_IP_RATE_LIMIT": "100000000/minute",  # 16 logins a row from 127.0.0.1, counted in Redis
    "EXPORT_MAX_ACTIVE_PER_USER": "1000000",
    "BCRYPT_ROUNDS": "4",  # seeding 20 users and 16 logins per run: not what is measured
}


@dataclass
class Variant:
    """One rendered project under test: the working tree or the template at a git ref."""

    label: str
    project: Path


@dataclass
class Result:
    variant: str
    workers: int
    jobs: int
    jobs_per_s: float
    p50_ms: float
    p99_ms: float
    post_ms: float
    wait_ms: float
    run_ms: float
    failed: int
    load: float
    cpu: dict[str, float] = field(default_factory=dict)  # CPU ms per job, by part (PARTS)


class DoneListener(threading.Thread):
    """Records when each job's final event (done or failed) arrives on the events exchange."""

    def __init__(self, rabbitmq_url: str, exchange: str) -> None:
        super().__init__(daemon=True)
        self.connection = pika.BlockingConnection(pika.URLParameters(rabbitmq_url))
        channel = self.connection.channel()
        channel.exchange_declare(exchange, "topic", durable=True)
        queue = channel.queue_declare("", exclusive=True).method.queue
        for key in ("export.done", "export.failed"):
            channel.queue_bind(queue, exchange, key)
        channel.basic_consume(queue, self._on_message, auto_ack=True)
        self.finished: dict[str, tuple[float, str]] = {}
        self.stop = threading.Event()

    def _on_message(self, _channel, _method, _properties, body: bytes) -> None:
        event = json.loads(body)
        self.finished.setdefault(event["job_id"], (time.perf_counter(), event["status"]))

    def run(self) -> None:
        while not self.stop.is_set():
            self.connection.process_data_events(time_limit=0.1)
        self.connection.close()


@dataclass
class Sent:
    at: float  # perf_counter when the POST went out
    answered_ms: float


class KeptAlive:
    """One client thread's HTTP/1.1 connection to the API, kept open between requests as a browser
    keeps it (urllib would open one per request, and on two cores the handshakes are not free)."""

    def __init__(self, api_url: str, token: str) -> None:
        parts = urlsplit(api_url)
        self.connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
        self.headers = {"content-type": "application/json", "authorization": f"Bearer {token}"}

    def post(self, path: str, body: dict) -> dict:
        self.connection.request("POST", path, json.dumps(body), self.headers)
        response = self.connection.getresponse()
        data = response.read()
        if response.status >= 400:
            raise RuntimeError(f"POST {path}: {response.status} {data[:200]!r}")
        return json.loads(data)


def push_jobs(api_url: str, tokens: list[str], jobs: int, listener: DoneListener) -> dict[str, Sent]:
    """POST ``jobs`` exports, client thread i as admin i; wait (at most 300 s) for every final event."""
    sent: dict[str, Sent] = {}
    local = threading.local()
    clients = iter([KeptAlive(api_url, token) for token in tokens])

    def one(number: int) -> None:
        if not hasattr(local, "client"):
            local.client = next(clients)
        started = time.perf_counter()
        body = {"format": "csv" if number % 2 else "json"}
        job = local.client.post("/api/v1/exports", body)["id"]
        sent[job] = Sent(started, (time.perf_counter() - started) * 1000)

    with ThreadPoolExecutor(len(tokens)) as pool:
        list(pool.map(one, range(jobs)))
    deadline = time.monotonic() + 300
    while len(listener.finished.keys() & sent.keys()) < jobs and time.monotonic() < deadline:
        time.sleep(0.05)
    return sent


def seed_admins(api_url: str, email: str, password: str) -> list[str]:
    """SEED_USERS users in all (the first admin included), CLIENTS admins; their tokens."""
    token = login(api_url, email, password)
    tokens = [token]
    for number in range(SEED_USERS - 1):
        role = "admin" if number < CLIENTS - 1 else "user"
        user = {"email": f"user{number}@bench.example.com", "password": PASSWORD, "role": role}
        call(f"{api_url}/api/v1/users", "POST", user, token)
        if role == "admin":
            tokens.append(login(api_url, user["email"], PASSWORD))
    return tokens


def stage_times(database: str, jobs: list[str]) -> tuple[list[float], list[float]]:
    """Per job, from its row: created_at -> started_at and started_at -> finished_at, in ms."""
    with psycopg.connect(plain_postgres_url(database)) as connection:
        rows = connection.execute(
            "SELECT extract(epoch FROM started_at - created_at) * 1000,"
            " extract(epoch FROM finished_at - started_at) * 1000"
            " FROM export_jobs WHERE id = ANY(%s::uuid[]) AND finished_at IS NOT NULL",
            (jobs,),
        ).fetchall()
    return [float(wait) for wait, _ in rows], [float(run) for _, run in rows]


PARTS = ("client", "api", "worker", "postgres", "rabbitmq", "other")
BACKING_PARTS = {"postgres": "postgres", "beam.smp": "rabbitmq", "erl_child_setup": "rabbitmq"}
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(roots: dict[int, str]) -> dict[str, float]:
    """CPU seconds used so far by this process and everything under it, by part.

    A process belongs to the first of ``roots`` (pid -> part) among its ancestors;
    otherwise to its command's part (BACKING_PARTS: the servers this bench started),
    else "other". This process itself is the client (its threads included). Unlike
    throughput, CPU time per job hardly depends on what else the machine runs: on
    two idle cores the jobs per second can be at most 2000 / (total CPU ms per job).
    """
    table: dict[int, tuple[int, str, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = (entry / "stat").read_text()
            command = stat[stat.index("(") + 1 : stat.rindex(")")]
            fields = stat[stat.rindex(")") + 2 :].split()
            # utime, stime, cutime, cstime: children reaped meanwhile count for their parent
            table[int(entry.name)] = (int(fields[1]), command, sum(map(int, fields[11:15])) / CLOCK_TICKS)
    me = os.getpid()
    totals = dict.fromkeys(PARTS, 0.0)
    own = os.times()
    totals["client"] = own.user + own.system
    for pid, (_, command, cpu) in table.items():
        part, ancestor = None, pid
        while ancestor in table and ancestor != me and part is None:
            part = roots.get(ancestor)
            ancestor = table[ancestor][0]
        if ancestor == me and pid != me:
            totals[part or BACKING_PARTS.get(command, "other")] += cpu
    return totals


def cpu_per_job(before: dict[str, float], after: dict[str, float], jobs: int) -> dict[str, float]:
    return {part: (after[part] - before[part]) * 1000 / jobs for part in PARTS}


# What a sampled Python stack of the API is busy with: the innermost frame that names one.
PROFILE_PARTS = (
    ("SQLAlchemy", ("sqlalchemy/",)), ("asyncpg", ("asyncpg/",)),
    ("AMQP (aio-pika, aiormq, pamqp)", ("aio_pika/", "aiormq/", "pamqp/")), ("Redis", ("redis/",)),
    ("pydantic", ("pydantic",)), ("logging", ("logging/", "app/core/logging.py")),
    ("FastAPI, Starlette", ("fastapi/", "starlette/")), ("uvicorn", ("uvicorn/",)), ("app", ("app/",)),
)  # fmt: skip


@contextlib.contextmanager
def api_profile(pid: int, output: Path | None) -> Iterator[None]:
    """py-spy samples the API's processes while the block runs (nothing if ``output`` is None)."""
    if output is None:
        yield
        return
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    command = [py_spy, "record", "--subprocesses", "--nonblocking", "--rate", "100", "--format", "raw"]
    spy = subprocess.Popen(
        [*command, "--pid", str(pid), "--output", str(output)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
        spy.wait(60)


def profile_summary(raw: Path) -> str:
    """The share of the API's samples in each PROFILE_PARTS library (collapsed stacks, py-spy raw)."""
    counts: dict[str, int] = dict.fromkeys([name for name, _ in PROFILE_PARTS] + ["other"], 0)
    for line in raw.read_text().splitlines():
        stack, _, number = line.rpartition(" ")
        frames = stack.split(";")
        if "spawn_main" in frames[-1] or "multiprocessing/connection.py" in frames[-1]:
            continue  # uvicorn's supervisor, waiting for its workers
        part = next(
            (
                name
                for frame in reversed(frames)
                for name, marks in PROFILE_PARTS
                if any(m in frame for m in marks)
            ),
            "other",
        )
        counts[part] += int(number)
    total = sum(counts.values()) or 1
    return ", ".join(f"{name} {count * 100 / total:.0f}%" for name, count in counts.items() if count)


def measure(
    variant: Variant, urls: BackingUrls, workdir: Path, run: str, options: argparse.Namespace
) -> Result:
    workers, jobs = options.worker_count, options.jobs
    project = variant.project
    secrets = dotenv(project / "config" / ".env")
    database = create_database(urls.postgres, f"bench_worker_{os.getpid()}_{run}")
    exports = workdir / f"exports-{run}"
    env = {**NO_LIMITS, **options.env}
    with contextlib.ExitStack() as stack:
        api = stack.enter_context(
            running_api(
                project, "api", urls, database, project / ".venv", workdir / run, env,
                options.api_workers, exports_dir=exports, install=not (project / ".venv").is_dir(),
            )
        )  # fmt: skip
        worker_services = [
            stack.enter_context(
                running_worker(
                    project, "worker", urls, database, exports, workdir / run, options.env,
                    install=number == 0 and not (project / "services" / "worker" / "node_modules").is_dir(),
                )
            )
            for number in range(workers)
        ]  # fmt: skip
        password = project_secret(project, "first_admin_password", "FIRST_ADMIN_PASSWORD")
        tokens = seed_admins(api.url, secrets["FIRST_ADMIN_EMAIL"], password)
        listener = DoneListener(urls.rabbitmq, api.env["EVENTS_EXCHANGE"])
        listener.start()
        roots = {api.process.pid: "api", **{worker.process.pid: "worker" for worker in worker_services}}
        before = cpu_seconds(roots)
        profile = options.profile / f"{run}-api.txt" if options.profile else None
        try:
            with api_profile(api.process.pid, profile):
                sent = push_jobs(api.url, tokens, jobs, listener)
        finally:
            listener.stop.set()
            listener.join()
        if profile is not None:
            print(
                f"{variant.label}, {workers} worker(s), API profile ({profile}): {profile_summary(profile)}"
            )
        cpu = cpu_per_job(before, cpu_seconds(roots), jobs)
    load = os.getloadavg()[0]
    finished = {job: listener.finished[job] for job in sent if job in listener.finished}
    latencies = [(finished[job][0] - sent[job].at) * 1000 for job in finished]
    span = max(at for at, _ in finished.values()) - min(s.at for s in sent.values())
    failed = sum(status != "done" for _, status in finished.values()) + (jobs - len(finished))
    waits, runs = stage_times(database, list(finished))
    cuts = statistics.quantiles(latencies, n=100)
    post = statistics.median(s.answered_ms for s in sent.values())
    return Result(
        variant.label, workers, jobs, len(finished) / span, cuts[49], cuts[98], post,
        statistics.median(waits), statistics.median(runs), failed, load, cpu,
    )  # fmt: skip


FIGURES = ("jobs_per_s", "p50_ms", "p99_ms", "post_ms", "wait_ms", "run_ms", "load")
COLUMNS = (
    ("variant", 22, "s"), ("workers", 7, "d"), ("jobs", 5, "d"), ("jobs/s", 7, ".0f"),
    ("p50 ms", 7, ".0f"), ("p99 ms", 7, ".0f"), ("POST ms", 7, ".1f"), ("wait ms", 7, ".1f"),
    ("run ms", 7, ".1f"), ("failed", 6, "d"), ("load", 5, ".1f"),
    # CPU ms per job: the bench's client, the API, the worker(s), PostgreSQL, RabbitMQ, all
    ("cli", 4, ".1f"), ("api", 4, ".1f"), ("wkr", 4, ".1f"), ("pg", 4, ".1f"), ("mq", 4, ".1f"),
    ("cpu", 4, ".1f"),
)  # fmt: skip


def row(result: Result) -> list:
    cpu = [result.cpu.get(part, 0.0) for part in PARTS[:-1]] + [sum(result.cpu.values())]
    return [
        result.variant, result.workers, result.jobs, result.jobs_per_s, result.p50_ms, result.p99_ms,
        result.post_ms, result.wait_ms, result.run_ms, result.failed, result.load, *cpu,
    ]  # fmt: skip


def print_table(results: list[Result]) -> None:
    header = " | ".join(f"{name:>{width}}" for name, width, _ in COLUMNS)
    print(header)
    print("-" * len(header))
    for result in results:
        cells = zip(row(result), COLUMNS, strict=True)
        print(" | ".join(f"{value:>{width}{kind}}" for value, (_, width, kind) in cells))


def medians(results: list[Result]) -> list[Result]:
    """One row per (variant, workers): the median of each figure over the repeats."""
    groups: dict[tuple[str, int], list[Result]] = {}
    for result in results:
        groups.setdefault((result.variant, result.workers), []).append(result)
    rows = []
    for (variant, workers), group in groups.items():
        numbers = {name: statistics.median(getattr(r, name) for r in group) for name in FIGURES}
        cpu = {part: statistics.median(r.cpu[part] for r in group) for part in PARTS}
        failed = sum(r.failed for r in group)
        rows.append(Result(variant, workers, group[0].jobs, failed=failed, cpu=cpu, **numbers))
    return rows


def template_at(ref: str, target: Path) -> str:
    """Extract the template files as they are at git ``ref`` into ``target``; return the short commit."""
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", f"{ref}^{{commit}}"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", commit, *TEMPLATE_PARTS],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(target, filter="data")
    return commit


def working_tree(target: Path) -> None:
    """The template files on disk, committed or not, copied into ``target``."""
    target.mkdir(parents=True)
    for name in TEMPLATE_PARTS:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, target / name)


def variants(workdir: Path, refs: list[str]) -> list[Variant]:
    """The template at each git ref (the anchor first) and the working tree, rendered with the defaults."""
    templates = []
    for number, ref in enumerate(refs):
        commit = template_at(ref, workdir / f"template-ref{number}")
        label = ref if ref.startswith(commit) else f"{ref} ({commit})"
        templates.append((label[:22], workdir / f"template-ref{number}"))
    working_tree(workdir / "template-tree")
    templates.append(("working tree", workdir / "template-tree"))
    found = []
    for label, template in templates:
        project = workdir / template.name.replace("template", "project")
        copier.run_copy(str(template), str(project), defaults=True, unsafe=True, quiet=True)
        found.append(Variant(label, project))
    return found


def key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--env {text!r}: expected KEY=VALUE")
    return key, value


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000, help="export jobs per run (default 1000)")
    parser.add_argument("--quick", action="store_true", help="200 jobs per run")
    parser.add_argument(
        "--ref", action="append", default=[], help="also measure the template at this git ref, e.g. main"
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs of each row (default 1); medians follow")
    parser.add_argument(
        "--profile", type=Path, help="folder for a py-spy profile of the API per row (pip install py-spy)"
    )
    parser.add_argument("--workers", default="1,2", help="node worker counts, comma-separated (default 1,2)")
    parser.add_argument("--api-workers", type=int, default=2, help="uvicorn workers of the API (default 2)")
    parser.add_argument(
        "--env", type=key_value, action="append", default=[], help="KEY=VALUE for API and worker"
    )
    arguments = parser.parse_args()
    if arguments.quick:
        arguments.jobs = 200
    arguments.env = dict(arguments.env)
    if arguments.profile:
        arguments.profile.mkdir(parents=True, exist_ok=True)
    arguments.worker_counts = [int(count) for count in arguments.workers.split(",")]
    return arguments


def main() -> None:
    options = parse_arguments()
    with tempfile.TemporaryDirectory(prefix="stackplate-bench-worker-") as folder:
        workdir = Path(folder)
        started = time.perf_counter()
        found = variants(workdir, options.ref)
        results = []
        with BackingServices() as backing:
            for repeat in range(options.repeat):
                for workers in options.worker_counts:
                    for number, variant in enumerate(found):
                        options.worker_count = workers
                        run = f"{repeat}_{workers}_{number}"
                        (workdir / run).mkdir()
                        results.append(measure(variant, backing.urls, workdir, run, options))
        print_table(results)
        if options.repeat > 1:
            print(f"\nmedians of {options.repeat} runs:")
            print_table(medians(results))
        extra = "".join(f"; {key}={value}" for key, value in options.env.items())
        print(
            f"({options.jobs} jobs per run from {CLIENTS} client threads; {SEED_USERS} users per export; "
            f"{options.api_workers} API workers{extra}; whole run {time.perf_counter() - started:.0f} s)"
        )


if __name__ == "__main__":
    main()
