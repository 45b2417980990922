"""Render every matrix entry once and check the result like a user's CI would."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import copier
import pytest
import yaml
from conftest import hadolint, yamllint
from matrix import DEVELOPMENT_SERVICES, MATRIX, enabled, services_of

from stackplate import compose, markers
from stackplate.answers import app_services, services_problem

# Jinja left in a rendered file; "${{" (GitHub Actions) and "${" (nginx, VS Code) are not Jinja.
UNRENDERED = re.compile(r"(?<!\$)\{\{|\{%|%\}|\{#")

EXPECTED_ALWAYS = [
    "README.md",
    ".copier-answers.yml",
    ".gitignore",
    ".gitattributes",
    "docker-compose.yml",
    "docker-compose.development.yml",
    "docker-compose.production.yml",
    "config/.env",
    "config/.env.example",
    "config/secrets/postgres_password",
    "config/secrets/jwt_secret_key",
    "config/.env.mcp.credentials.example",
    ".vscode/mcp.json",
    "tmp/ollama/.gitkeep",
    "deploy/k8s/base/kustomization.yaml",
    "deploy/k8s/base/network-policies.yaml",
    "deploy/k8s/overlays/staging/kustomization.yaml",
    "deploy/k8s/overlays/production/kustomization.yaml",
]
FILES_BY_KIND = {
    "fastapi": ["Dockerfile", "pyproject.toml", "uv.lock", "app/main.py"],
    "node-worker": ["Dockerfile", "package.json", "package-lock.json", "src/index.js"],
    "react-vite": ["Dockerfile", "package.json", "package-lock.json", "index.html"],
}


@pytest.fixture(scope="module", params=sorted(MATRIX))
def rendered(request, matrix_render) -> tuple[str, dict, Path]:
    name = request.param
    answers = MATRIX[name]
    assert services_problem(services_of(answers)) is None
    return name, answers, matrix_render(name)


def test_expected_files_are_present(rendered) -> None:
    _, answers, project = rendered
    missing = [path for path in EXPECTED_ALWAYS if not (project / path).is_file()]
    for service in services_of(answers):
        folder = f"services/{service['name']}"
        missing += [
            f"{folder}/{f}" for f in FILES_BY_KIND[service["kind"]] if not (project / folder / f).is_file()
        ]
        if not (project / f"deploy/k8s/base/{service['name']}.yaml").is_file():
            missing.append(f"deploy/k8s/base/{service['name']}.yaml")
        devcontainer = f".devcontainer/{service['name']}-container/devcontainer.json"
        if not (project / devcontainer).is_file():
            missing.append(devcontainer)
    assert missing == []
    # No folder for a kind that was not asked for, and no template leftovers.
    assert sorted(p.name for p in (project / "services").iterdir()) == sorted(
        s["name"] for s in services_of(answers)
    )


def _is_checked_text(path: Path) -> bool:
    """Files written by us, not lock files that tools write."""
    return path.is_file() and path.suffix != ".lock" and path.name != "package-lock.json"


def test_docs_blocks_are_fresh(rendered) -> None:
    """Copier's task wrote every docs block: the project's own check passes as rendered."""
    name, _, project = rendered
    result = subprocess.run(
        [sys.executable, "scripts/docs.py", "--check"],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"{name}:\n{result.stdout}{result.stderr}"
    overview = (project / "docs/architecture/overview.md").read_text(encoding="utf-8")
    assert all(body.strip() for body in markers.bodies(overview).values()), f"{name}: an empty docs block"


def test_no_jinja_is_left(rendered) -> None:
    _, _, project = rendered
    leftovers = []
    for path in project.rglob("*"):
        relative = path.relative_to(project)
        if (
            UNRENDERED.search(str(relative))
            or path.suffix == ".jinja"
            or (_is_checked_text(path) and UNRENDERED.search(path.read_text(errors="replace")))
        ):
            leftovers.append(str(relative))
    assert leftovers == []


@pytest.mark.parametrize("combination", sorted(compose.COMBINATIONS))
def test_compose_combination_is_valid(rendered, combination) -> None:
    _, _, project = rendered
    result = compose.run_config(project, combination, "--quiet")
    assert result.returncode == 0, result.stderr


def test_compose_holds_what_was_asked(rendered) -> None:
    _, answers, project = rendered
    apps = {s["name"] for s in services_of(answers)}
    backing = {n for n in ("postgres", "redis", "rabbitmq") if enabled(answers, n)}
    development = {compose for name, compose in DEVELOPMENT_SERVICES.items() if enabled(answers, name)}
    base = compose.resolved(project, "base")
    assert set(base["services"]) == apps | backing
    network = answers.get("network_name", "app-network")
    subnet = answers.get("network_subnet", "")
    ipam = base["networks"][network].get("ipam", {}).get("config", [])
    assert [entry["subnet"] for entry in ipam] == ([subnet] if subnet else [])  # empty: Docker picks
    for name, service in base["services"].items():
        assert "healthcheck" in service, f"{name} has no healthcheck"
        assert service.get("restart"), f"{name} has no restart policy"
        assert set(service["networks"]) == {network}
        for dependency in service.get("depends_on", {}).values():
            assert dependency["condition"] == "service_healthy"
    dev = compose.resolved(project, "development")
    assert set(dev["services"]) == apps | backing | set(development)


def test_production_publishes_only_frontend_and_api_ports(rendered) -> None:
    _, answers, project = rendered
    production = compose.resolved(project, "production")
    published = {name for name, service in production["services"].items() if service.get("ports")}
    expected = {s["name"] for s in services_of(answers) if s["kind"] in ("fastapi", "react-vite")}
    assert published == expected
    for service in services_of(answers):
        limits = production["services"][service["name"]]["deploy"]["resources"]["limits"]
        assert limits["memory"] and limits["cpus"]
        if service["kind"] != "react-vite":
            assert production["services"][service["name"]]["deploy"]["replicas"] >= 1


def test_development_publishes_backing_ports_on_loopback_only(rendered) -> None:
    _, answers, project = rendered
    dev = compose.resolved(project, "development")
    if answers.get("postgres", True):
        published = [p["published"] for p in dev["services"]["postgres"]["ports"]]
        assert published == [str(answers.get("postgres_port", 5432))]
    if answers.get("rabbitmq", True):
        targets = sorted(p["target"] for p in dev["services"]["rabbitmq"]["ports"])
        assert targets == [5672, 15672]
    apps = {s["name"] for s in services_of(answers)}
    for name, service in dev["services"].items():
        if name not in apps:
            hosts = {port.get("host_ip") for port in service.get("ports", [])}
            assert hosts <= {"127.0.0.1"}, f"{name} is published on {hosts}"


def test_each_container_gets_only_its_own_secrets(rendered) -> None:
    """No shared env_file of secrets: the frontends get none, each app its own database password."""
    _, answers, project = rendered
    for combination in ("development", "production"):
        resolved = compose.resolved(project, combination)
        for name, service in resolved["services"].items():
            sources = {secret["source"] for secret in service.get("secrets", [])}
            kind = next((s["kind"] for s in services_of(answers) if s["name"] == name), None)
            if kind == "react-vite":
                assert sources == set() and "env_file" not in service, name
            elif kind in ("fastapi", "node-worker"):
                own = f"{name.replace('-', '_')}_db_password"
                assert own in sources and not {s for s in sources if s.endswith("_db_password")} - {own}
                assert "postgres_password" not in sources, f"{name} gets the superuser's password"
                env = service["environment"]
                assert env["POSTGRES_USER"] == f"{name.replace('-', '_')}_user"
            for value in (service.get("environment") or {}).values():
                assert not re.fullmatch(r"[A-Za-z0-9_-]{24,}", str(value or "")), (name, value)
        apps = app_services(services_of(answers))
        for api in (s for s in apps if s["kind"] == "fastapi"):
            env = resolved["services"][api["name"]]["environment"]
            frontends = [s["name"] for s in apps if s["kind"] == "react-vite" and s["api"] == api["name"]]
            assert env["TRUSTED_PROXIES"] == ",".join(frontends)
            assert "FORWARDED_ALLOW_IPS" not in env
            if combination == "production":
                assert (env["COOKIE_SECURE"], env["API_DOCS_ENABLED"]) == ("true", "false")
                assert env["CORS_ORIGINS"] == answers.get("production_cors_origins", "")


def test_every_dockerfile_passes_hadolint(rendered) -> None:
    _, _, project = rendered
    dockerfiles = sorted(project.glob("services/*/Dockerfile"))
    assert dockerfiles
    for dockerfile in dockerfiles:
        result = hadolint(dockerfile)
        assert result.returncode == 0, f"{dockerfile}: {result.stdout}{result.stderr}"
        text = dockerfile.read_text()
        assert "AS development" in text and "AS production" in text
        assert re.search(r"^USER \d+", text, re.MULTILINE), f"{dockerfile} never drops root"
        assert ":latest" not in text


def test_every_yaml_file_passes_yamllint(rendered) -> None:
    _, _, project = rendered
    result = yamllint(project)
    assert result.returncode == 0, result.stdout


def test_answers_file_records_answers_but_no_secret(rendered) -> None:
    _, answers, project = rendered
    recorded = yaml.safe_load((project / ".copier-answers.yml").read_text())
    assert recorded["services"] == services_of(answers)
    secrets = [path.read_text() for path in (project / "config/secrets").iterdir()]
    assert len(secrets) >= 4
    answers_text = (project / ".copier-answers.yml").read_text()
    assert not any(secret in answers_text for secret in secrets)


def test_every_api_gets_its_own_database_and_role(rendered) -> None:
    _, answers, project = rendered
    script = (project / "config/postgres/init/10-app-roles.sh").read_text()
    apis = [s["name"].replace("-", "_") for s in services_of(answers) if s["kind"] == "fastapi"]
    created = re.findall(r"CREATE DATABASE (\w+) OWNER (\w+)'", script)
    assert created == [(api, f"{api}_user") for api in apis]
    clients = [s["name"].replace("-", "_") for s in services_of(answers) if s["kind"] != "react-vite"]
    assert re.findall(r"ALTER ROLE (\w+) WITH LOGIN NOSUPERUSER", script) == [f"{c}_user" for c in clients]


def test_devcontainers_point_at_their_service(rendered) -> None:
    _, answers, project = rendered
    for service in services_of(answers):
        config = json.loads(
            (project / f".devcontainer/{service['name']}-container/devcontainer.json").read_text()
        )
        assert config["service"] == service["name"]
        assert config["dockerComposeFile"] == [
            "../../docker-compose.yml",
            "../../docker-compose.development.yml",
        ]
        assert config["workspaceFolder"] == "/app"


def test_no_file_depends_on_the_destination(matrix_render, template_copy, tmp_path) -> None:
    """Copier renders into temporary folders during an update; a path in a file would conflict."""
    first, second = matrix_render("defaults"), tmp_path / "another-name"
    copier.run_copy(str(template_copy), str(second), defaults=True, unsafe=True, quiet=True)
    files = sorted(str(p.relative_to(first)) for p in first.rglob("*") if p.is_file())
    assert files == sorted(str(p.relative_to(second)) for p in second.rglob("*") if p.is_file())
    differ = [name for name in files if (first / name).read_bytes() != (second / name).read_bytes()]
    # Fresh secrets, and nothing else.
    assert differ and all(name.startswith("config/secrets/") for name in differ), differ
