"""Helpers for the tests on a real Docker engine: stand-ins, compose projects, what they leave behind."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import docker
import pytest

from stackplate.compose_boot import ComposeProject
from stackplate.engine import client, engine_problem

# Upstream images with no stand-in here (see stackplate.standins.images.CANNOT_STAND_IN).
LEAVE_OUT = ("ollama",)
LEAVE_OUT_OPTIONS = tuple(option for name in LEAVE_OUT for option in ("--leave-out", name))


def own_network(slug: str, *, subnet: bool = False) -> dict[str, str]:
    """Answers for a test project: its compose name, and with ``subnet`` a fixed subnet of its own.

    Without one Docker picks a free subnet (the template's default), so a stack
    left running elsewhere on the machine cannot make these tests fail.
    """
    answers = {"project_slug": slug}
    if subnet:
        answers["network_subnet"] = f"10.{200 + zlib.crc32(slug.encode()) % 50}.0.0/24"
    return answers


def engine_or_fail() -> docker.DockerClient:
    problem = engine_problem()
    if problem:
        pytest.fail(f"{problem}: run the suite with ./dev.sh test, which starts dockerd when none runs")
    return client()


def stackplate(*args: str, timeout: int = 1800) -> subprocess.CompletedProcess[str]:
    command = [str(Path(sys.executable).with_name("stackplate")), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)


def ensure_stand_ins(project: Path, *, fresh: bool = True) -> None:
    """``stackplate standins PROJECT``, as a user without a registry runs it.

    First, whatever an interrupted earlier run left of this compose project goes
    (its volumes hold data made with other secrets): each test starts from nothing,
    unless ``fresh`` is false (a project whose data the test means to keep).
    """
    if fresh:
        remove_project(project)
    result = stackplate("standins", str(project))
    assert result.returncode == 0, result.stdout + result.stderr


def compose_name(project: Path) -> str:
    return ComposeProject(project, production=False).config()["name"]


def leftovers(engine: docker.DockerClient, name: str) -> dict[str, list[str]]:
    """Containers, networks and volumes of compose project ``name`` that still exist."""
    label = {"label": f"com.docker.compose.project={name}"}
    return {
        "containers": [c.name for c in engine.containers.list(all=True, filters=label)],
        "networks": [n.name for n in engine.networks.list(filters=label)],
        "volumes": [v.name for v in engine.volumes.list(filters=label)],
    }


def anonymous_volumes(engine: docker.DockerClient) -> set[str]:
    """Volumes with no compose project label (anonymous ones carry none)."""
    return {
        v.name for v in engine.volumes.list() if "com.docker.compose.project" not in (v.attrs["Labels"] or {})
    }


def remove_project(project: Path) -> None:
    """Everything of the project, named volumes too (test teardown)."""
    for production in (False, True):
        ComposeProject(project, production).down(volumes=True)


def wait_for(condition: Callable[[], object], timeout: float, what: str, interval: float = 0.25) -> object:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = condition()
            if value:
                return value
        except Exception as error:  # the condition may fail until it holds
            last_error = error
        time.sleep(interval)
    pytest.fail(f"{what}: not within {timeout:g} s (last error: {last_error})")


def json_lines(text: str) -> list[dict]:
    """The JSON objects among a log's lines (our services log one object per line)."""
    found = []
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("{"):
            try:
                found.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return found
