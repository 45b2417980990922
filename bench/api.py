"""How fast is the rendered FastAPI service, and how much memory does login take?

Renders the default project, starts throwaway PostgreSQL, Redis and RabbitMQ,
boots the API natively with 1 and then 2 uvicorn workers, seeds 200 users and
drives it with ``wrk`` (Debian package; ``./dev.sh bench`` installs it):

- ``GET /api/v1/health``                 no I/O at all: the framework's floor
- ``GET /api/v1/users`` cached           JWT check + one Redis GET
- ``GET /api/v1/users`` cache off        JWT check + two Postgres queries
                                          (at 64 and 256 connections: no pool stall)
- ``POST /api/v1/auth/login``            bcrypt (12 rounds) in a thread pool;
                                          peak RSS of the API processes is sampled
- ``GET /api/v1/users`` cached while a login flood (64 connections, a random
  e-mail per attempt, per-IP login limit raised) runs beside it: with the
  default MAX_CONCURRENT_PASSWORD_CHECKS (2), and with the bound lifted (1000)
  to show what the bound buys; the flood's rows count answers by status
  (401: bcrypt ran; 503: every bcrypt slot was busy)

Rate limits are raised out of the way (they would answer 429). Reference
(developers' guide): a popular FastAPI template serves GET /users at ~500
req/s with 2 workers and stalls at 64 connections with 1; ours should reach
2,000 req/s cached with 1 worker, p99 < 100 ms, no errors, and log in under
64 connections below 300 MB RSS. A benchmark prints a table; it asserts nothing.

Run: ``python bench/api.py [--quick]`` (``--quick``: 3 s per load instead of 20 s).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import copier

from stackplate.backing import BackingServices, create_database
from stackplate.native import RunningService, dotenv, running_api

REPO = Path(__file__).resolve().parent.parent
SEED_USERS = 200
NO_LIMITS = {
    "GENERAL_RATE_LIMIT": "100000000/minute",
    "LOGIN_RATE_LIMIT": "100000000/minute",
    "LOGIN_IP_RATE_LIMIT": "100000000/minute",
}
UNBOUNDED = {"MAX_CONCURRENT_PASSWORD_CHECKS": "1000"}  # bcrypt as before the bound: queued


@dataclass
class Load:
    """One wrk run's result."""

    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    peak_rss_mb: float | None = None
    note: str = ""


def render_defaults(destination: Path) -> Path:
    copier.run_copy(str(REPO), str(destination), defaults=True, unsafe=True, quiet=True, vcs_ref="HEAD")
    return destination


def call(url: str, method: str = "GET", body: dict | None = None, token: str | None = None) -> dict:
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.load(response)


def login(api: str, email: str, password: str) -> str:
    return call(f"{api}/api/v1/auth/login", "POST", {"email": email, "password": password})["access_token"]


def seed_users(api: str, token: str) -> tuple[str, str]:
    """Create SEED_USERS users; return the credentials of the last one (for the login load)."""
    email, password = "", "bench-password-123"
    for number in range(SEED_USERS):
        email = f"user{number}@bench.example.com"
        call(
            f"{api}/api/v1/users",
            "POST",
            {"email": email, "password": password, "full_name": f"User {number}"},
            token,
        )
    return email, password


def _milliseconds(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", value).groups()
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def parse_wrk(output: str) -> Load:
    """Requests/s, p50/p99 latency and errors (non-2xx plus socket errors) from ``wrk --latency``."""
    percentiles = dict(re.findall(r"^\s+(50|99)(?:\.0+)?%\s+(\S+)", output, re.MULTILINE))
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", output))
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    if socket:
        errors += sum(int(n) for n in socket.groups())
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    load = Load(rate, _milliseconds(percentiles["50"]), _milliseconds(percentiles["99"]), errors)
    statuses = re.search(r"^STATUSES (.*)$", output, re.MULTILINE)  # printed by COUNT_LUA
    if statuses:
        load.note = statuses.group(1)
    return load


def rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants (children of every thread), from /proc."""
    total, pending = 0, [pid]
    while pending:
        current = pending.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            total += int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1))
            tasks = list(Path(f"/proc/{current}/task").iterdir())
        except (OSError, AttributeError):
            continue
        for task in tasks:
            with contextlib.suppress(OSError):
                pending.extend(int(child) for child in (task / "children").read_text().split())
    return total / 1024


def wrk(
    url: str,
    seconds: int,
    connections: int,
    headers: dict[str, str],
    lua: Path | None = None,
    watch: RunningService | None = None,
) -> Load:
    """Run wrk against ``url``; with ``watch``, also sample the service's peak RSS meanwhile."""
    command = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "10s"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    if lua:
        command += ["-s", str(lua)]
    peak = [0.0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.2):
            peak[0] = max(peak[0], rss_mb(watch.process.pid))

    sampler = threading.Thread(target=sample, daemon=True) if watch else None
    if sampler:
        sampler.start()
    result = subprocess.run(
        [*command, url], capture_output=True, text=True, check=True, timeout=seconds + 120
    )
    done.set()
    load = parse_wrk(result.stdout)
    load.peak_rss_mb = peak[0] if watch else None
    return load


def login_script(folder: Path, email: str, password: str) -> Path:
    script = folder / "login.lua"
    body = json.dumps({"email": email, "password": password})
    lines = [
        'wrk.method = "POST"',
        f"wrk.body = {json.dumps(body)}",
        'wrk.headers["Content-Type"] = "application/json"',
    ]
    script.write_text("\n".join(lines) + "\n" + COUNT_LUA)
    return script


# Counts answers by status in every wrk thread; done() prints the sums (parse_wrk reads them).
COUNT_LUA = r"""
local threads = {}
function setup(thread)
  table.insert(threads, thread)
  thread:set("id", #threads)
end
function init(args)
  counts = {}
  math.randomseed(os.time() * 100 + id)
end
function response(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
end
function done(summary, latency, requests)
  local total = {}
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("counts")) do total[status] = (total[status] or 0) + n end
  end
  local parts = {}
  for status, n in pairs(total) do table.insert(parts, status .. ": " .. n) end
  table.sort(parts)
  io.write("STATUSES " .. table.concat(parts, ", ") .. "\n")
end
"""
# A new e-mail per attempt (spraying): each one costs a bcrypt check against the dummy hash.
FLOOD_LUA = (
    COUNT_LUA
    + """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
function request()
  local email = string.format("flood%d.%d@bench.example.com", math.random(1e9), math.random(1e9))
  return wrk.format(nil, nil, nil, '{"email":"' .. email .. '","password":"not-the-password"}')
end
"""
)


def flood_script(folder: Path) -> Path:
    script = folder / "flood.lua"
    script.write_text(FLOOD_LUA)
    return script


def under_flood(api: RunningService, workdir: Path, seconds: int, auth: dict[str, str]) -> tuple[Load, Load]:
    """GET /users (64 connections) and a 64-connection login flood at the same time."""
    users = f"{api.url}/api/v1/users?limit=20"
    script = flood_script(workdir)
    with ThreadPoolExecutor(2) as pool:
        flood = pool.submit(wrk, f"{api.url}/api/v1/auth/login", seconds, 64, {}, script)
        reads = pool.submit(wrk, users, seconds, 64, auth)
        return reads.result(), flood.result()


def flood_rows(api: RunningService, workdir: Path, seconds: int, auth: dict[str, str], label: str):
    reads, flood = under_flood(api, workdir, seconds, auth)
    return [(f"GET /users cached + login flood, {label}", reads), (f"  the login flood, {label}", flood)]


def measure(project: Path, backing, workdir: Path, workers: int, seconds: int) -> list[tuple[str, Load]]:
    """Every load against one booted API with ``workers`` uvicorn processes."""
    rows: list[tuple[str, Load]] = []
    secrets = dotenv(project / "config/.env")
    venv = workdir / "venv"
    variants = {"cached": {}, "cache off": {"CACHE_TTL_SECONDS": "0"}, "unbounded": UNBOUNDED}
    for variant, settings in variants.items():
        database = create_database(backing.urls.postgres, f"bench_{workers}_{variant.replace(' ', '_')}")
        extra = {**NO_LIMITS, **settings}
        with running_api(
            project, "api", backing.urls, database, venv, workdir, extra, workers=workers
        ) as api:
            token = login(api.url, secrets["FIRST_ADMIN_EMAIL"], secrets["FIRST_ADMIN_PASSWORD"])
            email, password = seed_users(api.url, token)
            auth = {"Authorization": f"Bearer {token}"}
            users = f"{api.url}/api/v1/users?limit=20"
            if variant == "cached":
                rows.append(("GET /health", wrk(f"{api.url}/api/v1/health", seconds, 64, {})))
                rows.append(("GET /users cached", wrk(users, seconds, 64, auth)))
                rows.append(("GET /users cached c=256", wrk(users, seconds, 256, auth)))
                script = login_script(workdir, email, password)
                rows.append(
                    ("POST /auth/login", wrk(f"{api.url}/api/v1/auth/login", seconds, 64, {}, script, api))
                )
                rows += flood_rows(api, workdir, seconds, auth, "bcrypt bound 2")
            elif variant == "unbounded":
                rows += flood_rows(api, workdir, seconds, auth, "no bound")
            else:
                rows.append(("GET /users cache off", wrk(users, seconds, 64, auth)))
                rows.append(("GET /users cache off c=256", wrk(users, seconds, 256, auth)))
    return rows


COLUMNS = (("workers", 7), ("load (64 connections unless said)", -44), ("req/s", 9), ("p50 ms", 8),
           ("p99 ms", 8), ("errors", 6), ("peak RSS MB", 11), ("answers", -20))  # fmt: skip


def _row(cells: list[str]) -> str:
    return " | ".join(
        cell.ljust(-w) if w < 0 else cell.rjust(w) for cell, (_, w) in zip(cells, COLUMNS, strict=True)
    )


def print_table(results: dict[int, list[tuple[str, Load]]]) -> None:
    header = _row([name for name, _ in COLUMNS])
    print(header)
    print("-" * len(header))
    for workers, rows in results.items():
        for name, load in rows:
            rss = f"{load.peak_rss_mb:.0f}" if load.peak_rss_mb is not None else ""
            numbers = [
                f"{load.requests_per_s:.0f}",
                f"{load.p50_ms:.1f}",
                f"{load.p99_ms:.1f}",
                str(load.errors),
            ]
            print(_row([str(workers), name, *numbers, rss, load.note]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 s per load instead of 20 s")
    seconds = 3 if parser.parse_args().quick else 20
    if not shutil.which("wrk"):
        raise SystemExit("bench/api.py needs wrk: apt-get install wrk (./dev.sh bench installs it)")
    with tempfile.TemporaryDirectory(prefix="stackplate-bench-api-") as folder:
        workdir = Path(folder)
        project = render_defaults(workdir / "project")
        started = time.perf_counter()
        with BackingServices() as backing:
            results = {workers: measure(project, backing, workdir, workers, seconds) for workers in (1, 2)}
        print_table(results)
        print(f"(wrk -t2 -d{seconds}s; {SEED_USERS} users; whole run {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
