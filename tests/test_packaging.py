"""`pipx install stackplate` is all a user needs: the wheel carries the template."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow  # uv builds the wheel and installs it into a fresh venv


def run(*args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, check=False, env=env, timeout=600
    )
    assert result.returncode == 0, f"{args}: {result.stdout}{result.stderr}"
    return result


def test_installed_wheel_renders_a_project_without_the_checkout(tmp_path) -> None:
    uv = [sys.executable, "-m", "uv"] if shutil.which("uv") is None else ["uv"]
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    env.pop("STACKPLATE_TEMPLATE", None)
    run(*uv, "build", "-q", "--wheel", "-o", tmp_path / "dist", REPO, cwd=tmp_path, env=env)
    wheel = next((tmp_path / "dist").glob("stackplate-*.whl"))
    run(*uv, "venv", "-q", "--python", sys.executable, tmp_path / "venv", cwd=tmp_path, env=env)
    run(*uv, "pip", "install", "-q", "--python", tmp_path / "venv/bin/python", wheel, cwd=tmp_path, env=env)
    run(tmp_path / "venv/bin/stackplate", "new", "shop", "--data", "project_name=Shop", cwd=tmp_path, env=env)
    project = tmp_path / "shop"
    assert (project / "services/api/Dockerfile").is_file()
    assert "name: shop" in (project / "docker-compose.yml").read_text()
    assert "_template" in (project / ".copier-answers.yml").read_text()  # rendered from the bundled copy
