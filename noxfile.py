"""Sessions: lint, tests, render, demo, bench. Run them through ./dev.sh on a fresh machine."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import nox

nox.options.default_venv_backend = "uv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["lint", "tests"]

PYTHON = "3.11"
PYTHON_SOURCES = ("src", "extensions", "migrations", "tests", "bench", "noxfile.py")


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff (lint and format) on our Python, yamllint on our YAML."""
    session.install("ruff", "yamllint")
    session.run("ruff", "check", *PYTHON_SOURCES)
    session.run("ruff", "format", "--check", *PYTHON_SOURCES)
    # Python that is rendered into projects: the FastAPI services, the e2e suite, the scripts.
    python_in_template = [
        *Path("template/services").glob("*fastapi*"),
        Path("template/e2e"),
        Path("template/scripts"),
    ]
    for service in python_in_template:
        # --no-cache: a .ruff_cache inside template/ would otherwise sit among the rendered files.
        session.run("ruff", "check", "--no-cache", str(service))
        session.run("ruff", "format", "--no-cache", "--check", str(service))
    session.run("yamllint", "-s", ".")


# A pytest argument that sets the verbosity: -q, -vv, --verbose, --verbosity=2 ...
_VERBOSITY = re.compile(r"-[qv]+|--(verbose|quiet)|--verbosity(=.*)?")


def pytest_arguments(posargs: list[str]) -> list[str]:
    """The arguments after --, quiet (-q) unless they set the verbosity themselves."""
    quiet = [] if any(_VERBOSITY.fullmatch(argument) for argument in posargs) else ["-q"]
    return [*quiet, *posargs]


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The whole test suite (pass pytest arguments after --; -m "not slow" is the fast tier)."""
    session.install("-e", ".[test]")
    # Two workers: much of the suite waits on servers and containers, not on the CPU.
    # The tests that use the answers' host ports share one worker (tests/conftest.py).
    # Arguments after -- come later and win (-n 0 runs everything in this process).
    session.run("pytest", "-n", "2", "--dist", "loadgroup", *pytest_arguments(session.posargs))


@nox.session(python=PYTHON)
def render(session: nox.Session) -> None:
    """Render the default project into a temporary folder (or the folder given)."""
    session.install("-e", ".")
    destination = session.posargs[0] if session.posargs else tempfile.mkdtemp(prefix="stackplate-")
    session.run("stackplate", "new", str(Path(destination) / "project"))


@nox.session(python=PYTHON)
def demo(session: nox.Session) -> None:
    """Render the default project, boot it and print its URLs (Ctrl-C stops it).

    Natively by default; ``-- --engine docker`` boots it in containers with
    docker compose (stand-ins for images no registry serves). A folder may follow.
    """
    session.install("-e", ".")
    arguments = list(session.posargs)
    on_engine = arguments[:2] == ["--engine", "docker"]
    arguments = arguments[2:] if on_engine else arguments
    default = Path(tempfile.mkdtemp(prefix="stackplate-demo-")) / "my-stack"
    destination = Path(arguments[0]).resolve() if arguments else default
    session.run("stackplate", "new", str(destination))
    engine = ["--engine", "docker", "--stand-ins"] if on_engine else []
    session.run("stackplate", "boot", *engine, str(destination))


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Benchmarks under bench/ (they print tables; not tests)."""
    session.install("-e", ".[test]")
    for script in session.posargs or sorted(str(p) for p in Path("bench").glob("*.py")):
        session.run("python", script, env={"PYTHONPATH": os.fspath(Path("src").resolve())})
