"""``stackplate boot`` boots rendered projects natively; the rendered browser suite passes against them.

Each boot is the real command in a subprocess: throwaway PostgreSQL, Redis and
RabbitMQ, every app service, then SIGTERM; nothing may be left running. The
browser suite is the one the project ships in ``e2e/`` (its own CI runs it too),
driving Debian's chromium; screenshots go to ``test-results/e2e/<render>/``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from booting import CHROMIUM, alive, descendants, run_e2e_suite, stackplate_boot
from conftest import HOST_PORTS, REPO
from matrix import MATRIX, services_of

pytestmark = [pytest.mark.backing, pytest.mark.slow, HOST_PORTS]


def status(url: str) -> int:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status


@pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="chromium is not installed (apt-get install chromium)"
)
@pytest.mark.parametrize("answers_name", ["defaults", "two-apis-two-workers"])
def test_booted_project_passes_its_browser_suite(
    answers_name, matrix_render_copy, tmp_path, e2e_venv
) -> None:
    project = matrix_render_copy(answers_name)
    artifacts = REPO / "test-results" / "e2e" / answers_name
    shutil.rmtree(artifacts, ignore_errors=True)
    with stackplate_boot(project, tmp_path / "boot.log") as booted:
        kinds = {name: service["kind"] for name, service in booted["services"].items()}
        assert set(kinds) == {s["name"] for s in services_of(MATRIX[answers_name])}
        for service in booted["services"].values():
            assert status(service["url"] + "/health") == 200, service
            if service["kind"] == "react-vite":  # the production /api proxy
                assert status(service["url"] + "/api/v1/health") == 200, service
        frontend = next(name for name, kind in kinds.items() if kind == "react-vite")
        run_e2e_suite(project, frontend, artifacts, e2e_venv, tmp_path)
    assert len(list(artifacts.glob("*.png"))) >= 4, f"screenshots missing in {artifacts}"
    printed = (tmp_path / "boot.log").read_text()
    frontend_url = booted["services"][frontend]["url"]
    assert all(service["url"] in printed for service in booted["services"].values()), printed
    assert f"open {frontend_url} and sign in as {booted['admin']['email']}" in printed, printed


@pytest.mark.parametrize("given_postgres", [False, True], ids=["throwaway-postgres", "given-postgres"])
def test_boot_names_a_service_that_fails_to_start(
    given_postgres, matrix_render_copy, tmp_path, backing
) -> None:
    project = matrix_render_copy("minimal")
    main = project / "services" / "api" / "app" / "main.py"
    main.write_text(main.read_text() + '\nraise RuntimeError("broken on purpose")\n')
    command = [str(Path(sys.executable).with_name("stackplate")), "boot", str(project)]
    if given_postgres:
        command += ["--postgres-url", backing.postgres]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen: set[int] = set()
    while process.poll() is None:
        seen |= descendants(process.pid)
    output = process.communicate(timeout=60)[0]
    assert process.returncode == 1, output
    assert "api exited with" in output and "broken on purpose" in output, output
    if given_postgres:  # the API got as far as migrating on the given server, and none was started
        assert "using the given postgres" in output and "throwaway" not in output, output
    assert not (project / ".stackplate" / "boot.json").exists()
    assert not alive(seen), f"left running: {sorted(alive(seen))}"


def test_boot_with_docker_engine_says_there_is_none(matrix_render) -> None:
    project = matrix_render("minimal")  # read-only: the boot stops before it writes anything
    command = [str(Path(sys.executable).with_name("stackplate")), "boot", "--engine", "docker", str(project)]
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        env={"DOCKER_HOST": "unix:///nonexistent.sock", "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "no Docker engine answers" in lines[0], result.stderr
