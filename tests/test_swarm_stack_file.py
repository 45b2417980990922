"""The rendered scripts/swarm.py's stack file, for matrix entries, without an engine.

The engine test (tests/test_engine_swarm.py) deploys the defaults; here every
rule of the conversion is checked on the production files of several
entries: what Compose alone does is gone or converted, the migrations are a
one-shot service ordered before their API, secrets are named by their content.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml

from stackplate.answers import app_services
from stackplate.check import project_script
from stackplate.compose import run_config
from stackplate.project import load_answers

ENTRIES = ("defaults", "minimal", "two-apis-two-workers")


def converted(project: Path, **options):
    """(the swarm module, the compose config, the stack file) of a project's production files."""
    result = run_config(project, "production")
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    with project_script(project, "scripts/swarm.py") as swarm:
        return swarm, config, swarm.stack_file(config, "sp", node_id="NODE", **options)


@pytest.mark.parametrize("entry", ENTRIES)
def test_the_stack_file_keeps_nothing_only_compose_understands(matrix_render, entry) -> None:
    project = matrix_render(entry)
    _, config, stack = converted(project)
    assert stack["version"] == "3.9" and "name" not in stack
    for name, service in stack["services"].items():
        assert not {"build", "depends_on", "restart", "env_file", "x-swarm"} & set(service), name
        deploy = service["deploy"]
        assert deploy["endpoint_mode"] == "dnsrr", name  # no virtual IPs: no IPVS needed
        assert all(
            port["mode"] == "host" and isinstance(port["published"], int) for port in service.get("ports", [])
        )
        if service.get("volumes"):
            assert deploy["placement"]["constraints"] == ["node.id == NODE"], name
    for name, spec in config["services"].items():
        if spec.get("restart") == "always":
            assert stack["services"][name]["deploy"]["restart_policy"] == {"condition": "any"}, name
    assert {network["driver"] for network in stack["networks"].values()} == {"overlay"}


@pytest.mark.parametrize("entry", ENTRIES)
def test_secrets_are_named_by_their_files_content(matrix_render, entry) -> None:
    project = matrix_render(entry)
    _, config, stack = converted(project)
    assert set(stack["secrets"]) == set(config["secrets"])
    for name, secret in stack["secrets"].items():
        digest = hashlib.sha256(Path(secret["file"]).read_bytes()).hexdigest()[:12]
        assert secret["name"] == f"sp_{name}-{digest}", secret


@pytest.mark.parametrize("entry", ENTRIES)
def test_each_api_migrates_once_in_a_one_shot_service_deployed_before_it(matrix_render, entry) -> None:
    project = matrix_render(entry)
    swarm, config, stack = converted(project)
    apps = app_services(load_answers(project)["services"])
    apis = [app["name"] for app in apps if app["kind"] == "fastapi"]
    assert apis
    waves = swarm.waves(swarm.expanded_services(config))
    wave_of = {name: number for number, wave in enumerate(waves) for name in wave}
    for api in apis:
        migration, service = stack["services"][f"{api}-migrate"], stack["services"][api]
        assert migration["command"] == ["python", "-m", "app", "migrate"]
        assert migration["deploy"]["restart_policy"]["condition"] == "on-failure"
        # Its task's exit is no failure of an update (Swarm's default would pause the update).
        assert migration["deploy"]["update_config"] == {"failure_action": "continue"}
        assert migration["healthcheck"] == {"disable": True} and "ports" not in migration
        assert service["command"] == ["python", "-m", "app"]  # the replicas only serve
        assert service["deploy"]["update_config"]["order"] == "start-first"
        assert service["deploy"]["update_config"]["failure_action"] == "rollback"
        assert wave_of[f"{api}-migrate"] < wave_of[api]
        frontends = [app["name"] for app in apps if app["kind"] == "react-vite" and app.get("api") == api]
        assert service["environment"]["TRUSTED_PROXIES"] == ",".join(f"tasks.{name}" for name in frontends)
        if frontends:
            assert not service.get("ports")  # the frontends reach every replica by name
    for name, spec in config["services"].items():
        for needed in spec.get("depends_on") or {}:
            assert wave_of[needed] < wave_of[name], (needed, name)
    assert set(waves[0]) <= {"postgres", "rabbitmq", "redis"}, waves  # the backing services first


def test_a_running_services_replica_count_is_kept(matrix_render) -> None:
    _, _, stack = converted(matrix_render("defaults"), replicas={"api": 3, "frontend": 5})
    assert stack["services"]["api"]["deploy"]["replicas"] == 3
    assert "replicas" not in stack["services"]["frontend"]["deploy"]  # global: one per node


def test_docker_compose_swarm_yml_places_services_and_shares_their_volume(matrix_render_copy) -> None:
    """The user's own swarm file is merged last: its placement replaces the pin to this node."""
    project = matrix_render_copy("defaults")
    placed = {"deploy": {"placement": {"constraints": ["node.labels.exports == shared"]}}}
    shared = {"driver_opts": {"type": "none", "o": "bind", "device": "/srv/exports"}}
    swarm_file = {"volumes": {"exports-data": shared}, "services": {"api": placed, "worker": placed}}
    (project / "docker-compose.swarm.yml").write_text(yaml.safe_dump(swarm_file))
    with project_script(project, "scripts/swarm.py") as swarm:
        stack = swarm.stack_file(swarm.compose_config(project), "sp", node_id="NODE")
    for name in ("api", "worker"):
        assert stack["services"][name]["deploy"]["placement"] == placed["deploy"]["placement"], name
    assert stack["services"]["postgres"]["deploy"]["placement"]["constraints"] == ["node.id == NODE"]
    assert stack["volumes"]["exports-data"]["driver_opts"] == shared["driver_opts"]
