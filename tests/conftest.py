"""Shared test helpers: where the template is, and the checkers of a rendered project."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import copier
import pytest

from stackplate.backing import BackingServices, BackingUrls

REPO = Path(__file__).resolve().parents[1]

# Tests that publish or bind the answers' host ports (the engine tests, and the
# native boot, which takes an answer's port when it is free) run one after the
# other in one xdist worker (``--dist loadgroup``); the rest spread over the others.
HOST_PORTS = pytest.mark.xdist_group("host-ports")


def render(template: Path, destination: Path, answers: dict) -> Path:
    """``copier copy`` of the template with these answers (the rest default) into ``destination``."""
    copier.run_copy(str(template), str(destination), data=answers, defaults=True, unsafe=True, quiet=True)
    return destination


def _tool_beside_python(name: str) -> str:
    """A console script of this environment (hadolint, yamllint, ...), else from PATH."""
    local = Path(sys.executable).with_name(name)
    found = str(local) if local.exists() else shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed: pip install the test extras (pip install -e '.[test]')")
    return found


def under_ci() -> bool:
    """Whether ``CI`` is set (``.ci/run`` exports it; GitHub Actions and most CI services set it)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


# Hypothesis draws from a seed that is always known: --hypothesis-seed, else
# $HYPOTHESIS_SEED, else a fixed one under CI (the same examples every run) and a
# fresh one on a workstation. The report header prints it; set on the xdist
# controller, it reaches the workers with the other options.
CI_HYPOTHESIS_SEED = "20250101"


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("hypothesis_seed", default=None) is None and hasattr(
        config.option, "hypothesis_seed"
    ):
        fresh = str(random.randrange(1 << 32))
        config.option.hypothesis_seed = os.environ.get("HYPOTHESIS_SEED") or (
            CI_HYPOTHESIS_SEED if under_ci() else fresh
        )


def _seed_line(config: pytest.Config) -> str:
    seed = config.getoption("hypothesis_seed", default=None)
    return f"hypothesis seed: {seed} (repeat a run with --hypothesis-seed={seed} or HYPOTHESIS_SEED={seed})"


def pytest_report_header(config: pytest.Config) -> str:
    return _seed_line(config)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    terminalreporter.write_line(_seed_line(config))  # also under -q, which has no header


def require_tool(tool: str, install_hint: str) -> str:
    """The path of ``tool`` (an absolute path, or a name looked up on PATH).

    Missing, it skips the test with ``install_hint`` on a workstation, but fails it
    under CI: there every test must run, and a skip would pass in silence.
    """
    found = shutil.which(tool)  # a path with a folder is checked as it is
    if found:
        return found
    message = f"{tool} is not installed ({install_hint})"
    if under_ci():
        pytest.fail(f"{message}; CI is set, so a missing tool fails the test", pytrace=False)
    pytest.skip(message)


def copier_command() -> str:
    """The real ``copier`` command line of this environment."""
    return _tool_beside_python("copier")


def copier_cli(*args: str, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run this environment's ``copier`` in a subprocess, with no standard input."""
    return subprocess.run(
        [copier_command(), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def hadolint(dockerfile: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [_tool_beside_python("hadolint"), str(dockerfile)],
        capture_output=True,
        text=True,
        check=False,
    )


def yamllint(project: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [_tool_beside_python("yamllint"), "-s", "."],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture(scope="session")
def template_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The template's files in a plain folder (no git), so renders take the working tree.

    Rendering from the checkout would make Copier clone it (slow) and, in CI,
    render HEAD only; the tests must see exactly the files on disk.
    """
    target = tmp_path_factory.mktemp("template")
    for name in ("copier.yml", "template", "extensions", "src"):
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, target / name)
    return target


@pytest.fixture(scope="session")
def backing() -> Iterator[BackingUrls]:
    """Throwaway PostgreSQL, Redis and RabbitMQ, shared by every test that runs rendered services.

    Each test makes its own database (``create_database``) and its services use
    their own queue names, so sharing the servers is safe and saves their boot time.
    """
    with BackingServices() as services:
        yield services.urls


@pytest.fixture(scope="session")
def e2e_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One virtualenv for the rendered e2e suites: they share pyproject.toml and uv.lock."""
    return tmp_path_factory.mktemp("e2e-venv") / "venv"


# Update tests: a module defines ``template`` (a versioned template repository,
# see updating.versioned_template); these give it a committed v1 project.


@pytest.fixture(scope="module")
def pristine(template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project rendered from the module's template at v1 and committed; tests copy it."""
    from updating import render_committed

    return render_committed(template, tmp_path_factory.mktemp("pristine") / "project")


@pytest.fixture
def project(pristine: Path, tmp_path: Path) -> Path:
    """A fresh copy (git history included) of the pristine v1 project."""
    copy = tmp_path / "project"
    shutil.copytree(pristine, copy, symlinks=True)
    return copy
