"""``stackplate boot`` boots rendered projects natively; the rendered browser suite passes against them.

Each boot is the real command in a subprocess (tests/booting.py): throwaway
PostgreSQL, Redis and RabbitMQ, every app service, then a signal; nothing may be
left running. The tests judge a boot by its exit code, boot.json and the
processes it started, and by a product message only where the message is the
product (the line that names a failed service). The browser suite is the one the
project ships in ``e2e/`` (its own CI runs it too), driving Debian's chromium;
screenshots go to ``test-results/e2e/<render>/``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from apiclient import call, login
from booting import CHROMIUM, Boot, run_e2e_suite, stackplate_boot
from conftest import REPO, render, require_tool
from matrix import MATRIX, services_of

# Every boot here puts its app services on free ports of their own, so it takes no
# port an engine test publishes (8000, 3000, 8100...) and runs beside those, outside
# their xdist group: the group is the full run's critical path.
pytestmark = [pytest.mark.backing, pytest.mark.slow]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def on_free_app_ports(answers: dict) -> dict:
    """The answers with every app service that has a port moved to a port nothing else here uses."""
    services = [{**s, "port": free_port()} if "port" in s else dict(s) for s in services_of(answers)]
    return {**answers, "services": services}


def minimal_on_a_free_port() -> dict:
    """The minimal answers with the API on a port nothing else here uses."""
    return on_free_app_ports(MATRIX["minimal"])


def status(url: str) -> int:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status


def lines(text: str) -> list[str]:
    return text.splitlines()


def check_every_service_answers(booted: dict, answers: dict) -> str:
    """Every app service of the answers booted and healthy, each frontend's /api proxy too; a frontend's name."""
    kinds = {name: service["kind"] for name, service in booted["services"].items()}
    assert set(kinds) == {s["name"] for s in services_of(answers)}
    for service in booted["services"].values():
        assert status(service["url"] + "/health") == 200, service
        if service["kind"] == "react-vite":  # the production /api proxy
            assert status(service["url"] + "/api/v1/health") == 200, service
    return next(name for name, kind in kinds.items() if kind == "react-vite")


def check_printed_urls(booted: dict, frontend: str, log: Path) -> None:
    printed = log.read_text()
    frontend_url = booted["services"][frontend]["url"]
    assert all(service["url"] in printed for service in booted["services"].values()), printed
    assert f"open {frontend_url} and sign in as {booted['admin']['email']}" in printed, printed


def test_booted_project_passes_its_browser_suite(template_copy, tmp_path, e2e_venv) -> None:
    require_tool(CHROMIUM, "apt-get install chromium")
    project = render(template_copy, tmp_path / "project", on_free_app_ports(MATRIX["defaults"]))
    artifacts = REPO / "test-results" / "e2e" / "defaults"
    shutil.rmtree(artifacts, ignore_errors=True)
    with stackplate_boot(project, tmp_path / "boot.log") as booted:
        frontend = check_every_service_answers(booted, MATRIX["defaults"])
        run_e2e_suite(project, frontend, artifacts, e2e_venv, tmp_path)
    assert len(list(artifacts.glob("*.png"))) >= 4, f"screenshots missing in {artifacts}"
    check_printed_urls(booted, frontend, tmp_path / "boot.log")


def test_booted_renamed_services_answer_and_sign_in_through_their_frontend(template_copy, tmp_path) -> None:
    """Two APIs, two workers and a frontend bound to the second API, renamed, natively.

    The browser suite runs against this render on the engine (tests/test_engine.py);
    here the native boot's wiring is checked: the admin signs in through the portal.
    """
    answers = MATRIX["two-apis-two-workers"]
    project = render(template_copy, tmp_path / "project", on_free_app_ports(answers))
    with stackplate_boot(project, tmp_path / "boot.log") as booted:
        frontend = check_every_service_answers(booted, answers)
        portal = booted["services"][frontend]["url"]
        token = login(portal, booted["admin"]["email"], booted["admin"]["password"])
        me = json.loads(call(f"{portal}/api/v1/users/me", token=token))
        assert me["email"] == booted["admin"]["email"]
    check_printed_urls(booted, frontend, tmp_path / "boot.log")


def test_boot_with_redis_and_rabbitmq_off(template_copy, tmp_path) -> None:
    answers = minimal_on_a_free_port()
    project = render(template_copy, tmp_path / "project", answers)
    with stackplate_boot(project, tmp_path / "boot.log") as booted:
        assert set(booted["services"]) == {s["name"] for s in services_of(answers)}
        for service in booted["services"].values():
            assert status(service["url"] + "/health") == 200, service
        assert booted["backing"]["redis"] is None
        assert booted["backing"]["rabbitmq"] is None
        assert booted["backing"]["postgres"]


def test_boot_takes_another_port_when_the_answer_is_taken(template_copy, tmp_path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        answers = {**MATRIX["minimal"], "services": [{"name": "api", "kind": "fastapi", "port": taken}]}
        project = render(template_copy, tmp_path / "project", answers)
        with stackplate_boot(project, tmp_path / "boot.log") as booted:
            api = booted["services"]["api"]
            port = urlsplit(api["url"]).port
            assert api["answer_port"] == taken and port != taken, api
            assert status(api["url"] + "/health") == 200
    assert f"boot: api: port {taken} is taken here, using {port}" in lines(
        (tmp_path / "boot.log").read_text()
    )


def test_boot_names_a_service_that_dies_after_start_up_and_stops_the_rest(template_copy, tmp_path) -> None:
    project = render(template_copy, tmp_path / "project", minimal_on_a_free_port())
    boot = Boot(project, tmp_path / "boot.log")
    try:
        boot.wait_booted()
        api = service_leader(boot, project / "services" / "api")
        os.killpg(api, signal.SIGKILL)  # as the OOM killer would
        assert boot.wait_exit(120) == 1, boot.output()
    finally:
        boot.stop()
    assert f"stackplate: api exited with {-signal.SIGKILL}:" in lines(boot.output()), boot.output()
    assert "postgres" in boot.names  # a throwaway server ran, and was stopped
    boot.assert_left_nothing()


def service_leader(boot: Boot, service_dir: Path) -> int:
    """The process that leads an app service's process group: its cwd is the service's folder."""
    boot.look()
    for pid in boot.seen:
        try:
            if os.getsid(pid) == pid and Path(os.readlink(f"/proc/{pid}/cwd")) == service_dir:
                return pid
        except OSError:
            continue
    raise AssertionError(f"no process runs in {service_dir}")


@pytest.mark.parametrize(
    ("moment", "stop"),
    [
        # A terminal's Ctrl-C: SIGINT to the whole foreground process group.
        ("boot: installing: ", lambda pid: os.killpg(pid, signal.SIGINT)),
        ("boot: api: starting", lambda pid: os.killpg(pid, signal.SIGINT)),
        # A process manager's stop: SIGTERM to the boot process alone.
        ("boot: api: starting", lambda pid: os.kill(pid, signal.SIGTERM)),
    ],
    ids=["ctrl-c-installing", "ctrl-c-starting", "sigterm-starting"],
)
def test_a_stop_during_start_up_stops_everything(moment, stop, template_copy, tmp_path) -> None:
    project = render(template_copy, tmp_path / "project", minimal_on_a_free_port())
    boot = Boot(project, tmp_path / "boot.log")
    try:
        boot.wait_until(lambda: any(line.startswith(moment) for line in lines(boot.output())), moment)
        assert not boot.boot_file.exists(), "booted already: too late for this test"
        stop(boot.process.pid)
        assert boot.wait_exit(120) == 0, boot.output()
    finally:
        boot.stop()
    assert lines(boot.output())[-1] == "boot: stopped; nothing left running", boot.output()
    assert "postgres" in boot.names
    boot.assert_left_nothing()


@pytest.mark.parametrize("given_postgres", [False, True], ids=["throwaway-postgres", "given-postgres"])
def test_boot_names_a_service_that_fails_to_start(
    given_postgres, matrix_render_copy, tmp_path, backing
) -> None:
    project = matrix_render_copy("minimal")
    main = project / "services" / "api" / "app" / "main.py"
    main.write_text(main.read_text() + '\nraise RuntimeError("broken on purpose")\n')
    options = ["--postgres-url", backing.postgres] if given_postgres else []
    boot = Boot(project, tmp_path / "boot.log", *options)
    try:
        assert boot.wait_exit(600) == 1, boot.output()
    finally:
        boot.stop()
    printed = lines(boot.output())
    failure = [line for line in printed if line.startswith("stackplate: ")]
    assert len(failure) == 1 and re.fullmatch(
        r"stackplate: api exited with \d+ before it was healthy:", failure[0]
    ), boot.output()
    assert "RuntimeError: broken on purpose" in printed, boot.output()  # the end of its log
    # The API got as far as migrating on the given server, and no server was started.
    assert ("postgres" in boot.names) is not given_postgres, sorted(boot.names)
    boot.assert_left_nothing()


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
    printed = lines(result.stderr.strip())
    assert len(printed) == 1 and "no Docker engine answers" in printed[0], result.stderr
