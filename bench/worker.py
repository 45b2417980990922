"""How many export jobs per second do the rendered API and worker carry, and how long does one take?

Renders the default project, starts throwaway PostgreSQL, Redis and RabbitMQ,
boots the API (2 uvicorn workers, so the API is not what is measured) and one
and then two node workers natively, seeds a small users table, then sends
``POST /api/v1/exports`` JOBS times from 16 client threads and listens on the
events exchange for each job's ``done``. It prints jobs per second (first POST
sent to last ``done`` received) and p50/p99 of the time from sending the POST
to receiving the job's ``done`` event. A benchmark prints a table; it asserts
nothing.

Run: ``python bench/worker.py [--jobs N]`` (default 1,000; ``--quick``: 200).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import copier
import pika
from api import call, login  # bench/api.py: the same JSON calls to the rendered API

from stackplate.backing import BackingServices, BackingUrls, create_database
from stackplate.native import dotenv, running_api, running_worker

REPO = Path(__file__).resolve().parent.parent
SEED_USERS = 20
CLIENTS = 16
NO_LIMITS = {"GENERAL_RATE_LIMIT": "100000000/minute", "LOGIN_RATE_LIMIT": "100000000/minute"}


@dataclass
class Result:
    workers: int
    jobs: int
    jobs_per_s: float
    p50_ms: float
    p99_ms: float
    failed: int


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


def push_jobs(api_url: str, token: str, jobs: int, listener: DoneListener) -> dict[str, float]:
    """POST ``jobs`` exports from CLIENTS threads; return each job's send time; wait for every done."""
    sent: dict[str, float] = {}

    def one(number: int) -> None:
        started = time.perf_counter()
        body = {"format": "csv" if number % 2 else "json"}
        sent[call(f"{api_url}/api/v1/exports", "POST", body, token)["id"]] = started

    with ThreadPoolExecutor(CLIENTS) as pool:
        list(pool.map(one, range(jobs)))
    deadline = time.monotonic() + 300
    while len(listener.finished.keys() & sent.keys()) < jobs and time.monotonic() < deadline:
        time.sleep(0.05)
    return sent


def measure(project: Path, urls: BackingUrls, workdir: Path, workers: int, jobs: int) -> Result:
    secrets = dotenv(project / "config" / ".env")
    database = create_database(urls.postgres, f"bench_worker_{workers}")
    exports = workdir / f"exports-{workers}"
    venv = workdir / "venv"
    with contextlib.ExitStack() as stack:
        api = stack.enter_context(
            running_api(project, "api", urls, database, venv, workdir, NO_LIMITS, 2, exports_dir=exports)
        )
        for number in range(workers):
            stack.enter_context(
                running_worker(project, "worker", urls, database, exports, workdir, install=number == 0)
            )
        token = login(api.url, secrets["FIRST_ADMIN_EMAIL"], secrets["FIRST_ADMIN_PASSWORD"])
        for number in range(SEED_USERS - 1):
            user = {"email": f"user{number}@bench.example.com", "password": "bench-password-123"}
            call(f"{api.url}/api/v1/users", "POST", user, token)
        listener = DoneListener(urls.rabbitmq, api.env["EVENTS_EXCHANGE"])
        listener.start()
        try:
            sent = push_jobs(api.url, token, jobs, listener)
        finally:
            listener.stop.set()
            listener.join()
    finished = {job: listener.finished[job] for job in sent if job in listener.finished}
    latencies = sorted((finished[job][0] - sent[job]) * 1000 for job in finished)
    span = max(at for at, _ in finished.values()) - min(sent.values())
    failed = sum(status != "done" for _, status in finished.values()) + (jobs - len(finished))
    cuts = statistics.quantiles(latencies, n=100)
    return Result(workers, jobs, len(finished) / span, cuts[49], cuts[98], failed)


def print_table(results: list[Result]) -> None:
    header = f"{'workers':>7} | {'jobs':>5} | {'jobs/s':>7} | {'p50 ms':>7} | {'p99 ms':>7} | {'failed':>6}"
    print(header)
    print("-" * len(header))
    for r in results:
        print(
            f"{r.workers:>7} | {r.jobs:>5} | {r.jobs_per_s:>7.0f} | {r.p50_ms:>7.0f} | "
            f"{r.p99_ms:>7.0f} | {r.failed:>6}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000, help="export jobs per run (default 1000)")
    parser.add_argument("--quick", action="store_true", help="200 jobs per run")
    arguments = parser.parse_args()
    jobs = 200 if arguments.quick else arguments.jobs
    with tempfile.TemporaryDirectory(prefix="stackplate-bench-worker-") as folder:
        workdir = Path(folder)
        project = workdir / "project"
        copier.run_copy(str(REPO), str(project), defaults=True, unsafe=True, quiet=True, vcs_ref="HEAD")
        started = time.perf_counter()
        with BackingServices() as backing:
            results = [measure(project, backing.urls, workdir, workers, jobs) for workers in (1, 2)]
        print_table(results)
        print(
            f"({jobs} jobs per run from {CLIENTS} client threads; {SEED_USERS} users per export; "
            f"whole run {time.perf_counter() - started:.0f} s)"
        )


if __name__ == "__main__":
    main()
