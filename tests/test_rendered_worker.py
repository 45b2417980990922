"""Every rendered node-worker passes its own suite, and an API and its worker carry an export end to end.

All against real PostgreSQL and RabbitMQ (throwaway servers from stackplate.backing).
"""

from __future__ import annotations

import csv
import io
import json
import os
import secrets
import sys
import time
from pathlib import Path

import pytest
import yaml
from apiclient import EventStream, call, login
from matrix import MATRIX, services_of
from reports import junit_counts, node_test_env

from stackplate.backing import create_database, find_binary
from stackplate.native import dotenv, project_secret, run_checked, running_api, running_worker

pytestmark = [pytest.mark.backing, pytest.mark.slow]

# Renders whose worker suites run: the defaults, and two workers with other names.
RENDERS = ("defaults", "two-apis-two-workers")


def worker_names(answers: dict) -> list[str]:
    return [s["name"] for s in services_of(answers) if s["kind"] == "node-worker"]


def api_of(answers: dict, worker: str) -> str:
    """The API a worker serves: its ``api`` answer, else the first fastapi service (as copier.yml says)."""
    services = services_of(answers)
    [spec] = [s for s in services if s["name"] == worker]
    return spec.get("api") or next(s["name"] for s in services if s["kind"] == "fastapi")


def schema_database(project: Path, worker: str, api: str, backing, name: str, venv: Path) -> str:
    """A database built by the API's own migrations, for the worker's tests to copy (WORKER_TEST_SCHEMA_DB).

    Made by the rendered CI workflow's own step, so that CI and this test build it the same way.
    """
    job = yaml.safe_load((project / ".github" / "workflows" / "ci.yml").read_text())["jobs"][
        f"integration-{worker}"
    ]
    [step] = [step for step in job["steps"] if step.get("name") == f"The schema, by {api}'s migrations"]
    assert step["working-directory"] == f"services/{api}"
    env = {
        "DATABASE_URL": backing.postgres,
        "WORKER_TEST_SCHEMA_DB": name,
        "UV_PROJECT_ENVIRONMENT": str(venv),
        # uv as this suite has it, and the psql of the PostgreSQL server under test.
        "PATH": os.pathsep.join(
            [
                str(Path(sys.executable).parent),
                str(Path(find_binary("psql", "postgres")).parent),
                os.environ["PATH"],
            ]
        ),
    }
    script = ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]]
    run_checked(script, project / step["working-directory"], env, f"CI step {step['name']!r}")
    return name


@pytest.mark.parametrize("answers_name", RENDERS)
def test_rendered_worker_suite_passes(
    answers_name, matrix_render_copy, tmp_path, backing, node_modules, synced_venv
) -> None:
    answers = MATRIX[answers_name]
    project = matrix_render_copy(answers_name)
    names = worker_names(answers)
    assert names, f"{answers_name} renders no node-worker"
    for name in names:
        service_dir = project / "services" / name
        node_modules(service_dir)
        api = api_of(answers, name)
        schema_name = f"{name.replace('-', '_')}_schema_{secrets.token_hex(3)}"  # <= 54 characters
        venv = synced_venv(project / "services" / api)
        schema = schema_database(project, name, api, backing, schema_name, venv)
        env = {
            "DATABASE_URL": backing.postgres,
            "RABBITMQ_URL": backing.rabbitmq,
            "SERVICE_NAME": name,
            "WORKER_TEST_SCHEMA_DB": schema,
        }
        run_checked(["npm", "run", "--silent", "lint"], service_dir, env, f"{name}: npm run lint")
        run_checked(["npm", "run", "--silent", "typecheck"], service_dir, env, f"{name}: npm run typecheck")
        report = tmp_path / f"{name}-node-test.xml"
        run_checked(["npm", "test"], service_dir, {**env, **node_test_env(report)}, f"{name}: npm test")
        junit_counts(report).assert_all_passed(f"{name}: node --test")


# --------------------------------------------------------------------------- API + worker


def test_export_from_api_through_worker_to_download(
    matrix_render_copy, tmp_path, backing, synced_venv, node_modules
) -> None:
    """POST /exports, the worker builds it, the browser's SSE stream sees it done, the download holds the rows."""
    project = matrix_render_copy("defaults")
    venv = synced_venv(project / "services" / "api")
    node_modules(project / "services" / "worker")
    email = dotenv(project / "config" / ".env")["FIRST_ADMIN_EMAIL"]
    password = project_secret(project, "first_admin_password", "FIRST_ADMIN_PASSWORD")
    database = create_database(backing.postgres, "export_e2e")
    exports = tmp_path / "exports"
    # Own queue and exchange names: the RabbitMQ server is shared with other tests.
    names = {"EXPORT_QUEUE": "e2e.exports", "EVENTS_EXCHANGE": "e2e.events"}
    with (
        running_api(
            project, "api", backing, database, venv, tmp_path, names, exports_dir=exports, install=False
        ) as api,
        running_worker(project, "worker", backing, database, exports, tmp_path, names, install=False),
    ):
        token = login(api.url, email, password)
        for number in range(3):
            user = {
                "email": f"u{number}@example.com",
                "password": "a long password",
                "full_name": f"U,{number}",
            }
            call(f"{api.url}/api/v1/users", "POST", user, token)
        users = json.loads(call(f"{api.url}/api/v1/users?limit=100", token=token))["items"]

        stream = EventStream(api.url, token)
        stream.start()
        try:
            job = json.loads(call(f"{api.url}/api/v1/exports", "POST", {"format": "csv"}, token))
            assert stream.done.wait(30), f"no done event; events: {stream.events}"
        finally:
            stream.close()
        statuses = [e["status"] for e in stream.events if e["job_id"] == job["id"]]
        assert statuses == ["queued", "running", "done"]

        final = json.loads(call(f"{api.url}/api/v1/exports/{job['id']}", token=token))
        assert final["status"] == "done" and final["row_count"] == len(users) == 4
        rows = list(
            csv.DictReader(
                io.StringIO(call(f"{api.url}/api/v1/exports/{job['id']}/download", token=token).decode())
            )
        )
        assert {(r["id"], r["email"], r["full_name"]) for r in rows} == {
            (u["id"], u["email"], u["full_name"] or "") for u in users
        }
        assert sorted(p.name for p in exports.iterdir()) == [f"{job['id']}.csv"]

        # A plain user's export holds their own data only, still one CSV table.
        plain = login(api.url, "u0@example.com", "a long password")
        own = json.loads(call(f"{api.url}/api/v1/exports", "POST", {"format": "csv"}, plain))
        finished = wait_for_export(api.url, own["id"], plain)
        assert finished["status"] == "done", finished
        own_rows = list(
            csv.DictReader(
                io.StringIO(call(f"{api.url}/api/v1/exports/{own['id']}/download", token=plain).decode())
            )
        )
        assert [(r["record"], r["email"]) for r in own_rows] == [
            ("profile", "u0@example.com"),
            ("export_job", ""),
        ]
        assert own_rows[0]["full_name"] == "U,0"
        assert own_rows[1]["id"] == own["id"] and own_rows[1]["format"] == "csv"
        assert finished["row_count"] == len(own_rows) == 2


def wait_for_export(api_url: str, job_id: str, token: str, timeout: float = 30) -> dict:
    """Poll the job until it is done or failed (or the deadline passes)."""
    deadline = time.monotonic() + timeout
    while True:
        job = json.loads(call(f"{api_url}/api/v1/exports/{job_id}", token=token))
        if job["status"] in ("done", "failed") or time.monotonic() > deadline:
            return job
        time.sleep(0.1)
