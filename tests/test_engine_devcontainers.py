"""Each app service's devcontainer, brought up by the Dev Containers CLI the way a developer does.

The checkout belongs to an ordinary user (uid 1000), who runs the CLI with
access to the engine (the docker group): the CLI gives the image's user that
uid (``updateRemoteUserUID``), so inside, the service's own tests run and write
their report into the workspace, and the file is the developer's on the host.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from conftest import HOST_PORTS, render
from engine import (
    anonymous_volumes,
    compose_name,
    engine_or_fail,
    ensure_stand_ins,
    leftovers,
    own_network,
    remove_project,
    wait_for,
)
from matrix import ALL_DEV_OFF
from reports import junit_counts, node_test_env, vitest_counts
from test_rendered_worker import schema_database

from stackplate.backing import find_binary

pytestmark = [pytest.mark.engine, pytest.mark.slow, HOST_PORTS]

CLI_PACKAGE = "@devcontainers/cli@0.89.0"
DEVELOPER = 1000
DOCKER = "/usr/bin/docker"  # a client that builds without buildx
REPORT = ".devcontainer-test-report"


@pytest.fixture(scope="module")
def shared_folder():
    """A folder the developer may enter (pytest's own temporary folders are root's alone)."""
    folder = Path(tempfile.mkdtemp(prefix="stackplate-devcontainers-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def cli(shared_folder) -> Path:
    prefix = shared_folder / "cli"
    result = subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund", "--prefix", str(prefix), CLI_PACKAGE],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return prefix / "node_modules" / ".bin" / "devcontainer"


@pytest.fixture(scope="module")
def home(shared_folder) -> Path:
    """The developer's home, with the Compose plugin the CLI calls as ``docker compose``."""
    home = shared_folder / "home"
    plugin = home / ".docker" / "cli-plugins" / "docker-compose"
    plugin.parent.mkdir(parents=True)
    shutil.copy2(Path.home() / ".docker" / "cli-plugins" / "docker-compose", plugin)
    subprocess.run(["chown", "-R", f"{DEVELOPER}:{DEVELOPER}", str(home)], check=True)
    return home


@pytest.fixture(scope="module")
def checkout(template_copy, shared_folder):
    engine = engine_or_fail()
    project = shared_folder / "checkout"
    answers = {**own_network("sp-devcontainers"), **ALL_DEV_OFF}
    render(template_copy, project, answers)
    ensure_stand_ins(project)
    subprocess.run(["chown", "-R", f"{DEVELOPER}:{DEVELOPER}", str(project)], check=True)
    before = anonymous_volumes(engine)
    yield project
    remove_project(project)
    assert leftovers(engine, compose_name(project)) == {"containers": [], "networks": [], "volumes": []}
    # An anonymous volume without labels (the API's /app/.venv) outlived the CLI's
    # containers, one per run: nothing of compose's removes it, so the module does.
    for name in anonymous_volumes(engine) - before:
        engine.volumes.get(name).remove()


def as_developer(home: Path, *command: str, timeout: int = 900) -> subprocess.CompletedProcess[str]:
    docker_group = os.stat("/var/run/docker.sock").st_gid
    identity = ["setpriv", f"--reuid={DEVELOPER}", f"--regid={DEVELOPER}", f"--groups={docker_group}"]
    env = ["env", "-i", f"HOME={home}", f"PATH={Path(shutil.which('node')).parent}:/usr/bin:/bin"]
    return subprocess.run(
        [*identity, *env, *command], capture_output=True, text=True, timeout=timeout, check=False
    )


# The database the worker's tests copy, built by the API's own migrations as the
# worker's README tells a developer: from the host, on the stack's published PostgreSQL.
WORKER_SCHEMA = "worker_schema"


def build_worker_schema(checkout: Path, venv: Path) -> None:
    answers = yaml.safe_load((checkout / ".copier-answers.yml").read_text())
    password = (checkout / "config" / "secrets" / "postgres_password").read_text().strip()
    server = f"postgresql://app:{password}@127.0.0.1:{answers['postgres_port']}/postgres"
    psql = find_binary("psql", "postgres")
    wait_for(
        lambda: (
            subprocess.run([psql, server, "-c", "select 1"], capture_output=True, check=False).returncode == 0
        ),
        120,
        "the development PostgreSQL",
    )
    schema_database(checkout, "worker", "api", SimpleNamespace(postgres=server), WORKER_SCHEMA, venv)


TESTS = {
    "api": f"pytest -q -p no:cacheprovider --junitxml=/app/{REPORT}.xml",
    "worker": f"WORKER_TEST_SCHEMA_DB={WORKER_SCHEMA} "
    f"{' '.join(f'{k}={v!r}' for k, v in node_test_env(Path(f'/app/{REPORT}.xml')).items())} npm test",
    "frontend": f"npm test -- --reporter=default --reporter=json --outputFile.json=/app/{REPORT}.json",
}


@pytest.mark.parametrize("service", sorted(TESTS))
def test_the_devcontainer_user_runs_the_tests_and_writes_the_workspace(
    service, cli, home, checkout, synced_venv
) -> None:
    config = checkout / ".devcontainer" / f"{service}-container" / "devcontainer.json"
    common = ["--workspace-folder", str(checkout), "--config", str(config), "--docker-path", DOCKER]
    up = as_developer(home, str(cli), "up", *common)
    outcome = json.loads(up.stdout.strip().splitlines()[-1]) if up.stdout.strip() else {}
    assert up.returncode == 0 and outcome.get("outcome") == "success", up.stdout[-3000:] + up.stderr[-3000:]
    whoami = as_developer(home, str(cli), "exec", *common, "id", "-u")
    assert whoami.stdout.strip().splitlines()[-1] == str(DEVELOPER), whoami.stdout + whoami.stderr
    if service == "worker":
        build_worker_schema(checkout, synced_venv(checkout / "services" / "api"))
    tests = as_developer(home, str(cli), "exec", *common, "sh", "-c", TESTS[service], timeout=1200)
    assert tests.returncode == 0, tests.stdout[-3000:] + tests.stderr[-3000:]
    report = next((checkout / "services" / service).glob(f"{REPORT}.*"))
    assert report.stat().st_uid == DEVELOPER, "the report is not the developer's file"
    counts = vitest_counts(report) if report.suffix == ".json" else junit_counts(report)
    counts.assert_all_passed(f"{service} in its devcontainer")
