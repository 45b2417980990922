"""The rendered CI workflow's e2e job runs here as written, on the real engine.

Every ``run:`` step of the job runs in bash the way GitHub runs it (``-eo
pipefail``, ``GITHUB_ENV`` read between steps, the job's and workflow's ``env``),
for the development entry of the job's matrix. The production entry runs the
same steps with the production compose file, which test_engine.py boots and runs
the e2e suite against already; running it here too would add minutes to a suite
that must stay under its time budget.
Left out: the ``uses:`` steps (checkout, setup-python, setup-uv, upload) and
the one line that downloads Playwright's own Chromium, which cannot be had
here: Debian's chromium stands in (``E2E_CHROMIUM``).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from booting import CHROMIUM
from conftest import HOST_PORTS, render
from engine import compose_name, engine_or_fail, ensure_stand_ins, leftovers, own_network, remove_project
from matrix import ALL_DEV_OFF

pytestmark = [pytest.mark.engine, pytest.mark.slow, HOST_PORTS]

EXPRESSION = re.compile(r"\$\{\{\s*([^}]*?)\s*\}\}")


def read_github_env(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def expand(value: str, context: dict[str, str]) -> str:
    """GitHub expressions (``${{ github.workspace }}``, ``${{ env.X }}``) this job uses."""

    def replace(match: re.Match[str]) -> str:
        assert match.group(1) in context, f"the test does not know the expression {match.group(0)}"
        return context[match.group(1)]

    return EXPRESSION.sub(replace, str(value))


@pytest.mark.parametrize("compose", ["development"])
def test_the_rendered_e2e_job_runs_here_as_written(template_copy, tmp_path, e2e_venv, compose) -> None:
    engine = engine_or_fail()
    project = tmp_path / "project"
    answers = {**own_network("sp-ci"), **ALL_DEV_OFF}
    render(template_copy, project, answers)
    ensure_stand_ins(project)
    workflow = yaml.safe_load((project / ".github" / "workflows" / "ci.yml").read_text())
    job = workflow["jobs"]["e2e"]
    assert job["strategy"]["matrix"]["compose"] == ["development", "production"]
    github_env = tmp_path / "github-env"
    context = {"github.workspace": str(project), "matrix.compose": compose}
    base_env = {k: expand(v, context) for k, v in {**workflow.get("env", {}), **job.get("env", {})}.items()}
    context.update({f"env.{k}": v for k, v in base_env.items()})
    ran = []
    try:
        for step in job["steps"]:
            if "uses" in step:
                continue
            script = "\n".join(line for line in step["run"].splitlines() if "playwright install" not in line)
            env = {
                **os.environ,
                "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",  # uv, as setup-uv gives it
                "CI": "true",
                "GITHUB_ENV": str(github_env),
                "GITHUB_WORKSPACE": str(project),
                "UV_PROJECT_ENVIRONMENT": str(e2e_venv),
                "E2E_CHROMIUM": CHROMIUM,
                **base_env,
                **read_github_env(github_env),
                **{k: expand(v, context) for k, v in (step.get("env") or {}).items()},
            }
            result = subprocess.run(
                ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", expand(script, context)],
                cwd=project / step.get("working-directory", "."),
                env=env,
                capture_output=True,
                text=True,
                timeout=1200,
                check=False,
            )
            assert result.returncode == 0, (
                f"step {step['name']!r}:\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
            )
            ran.append(step["name"])
    finally:
        remove_project(project)
    assert {"Start the stack", "Browser tests"} <= set(ran), ran
    assert list((project / "e2e" / "artifacts").glob("*.png")), "the browser suite left no screenshots"
    assert leftovers(engine, compose_name(project)) == {"containers": [], "networks": [], "volumes": []}
