"""Bad answers: one clear line naming the question and the value, and nothing written."""

from __future__ import annotations

import copier
import pexpect
import pytest
import yaml
from conftest import copier_cli, copier_command

API = {"name": "api", "kind": "fastapi", "port": 8000}
WORKER = {"name": "worker", "kind": "node-worker"}

# (answers, question named in the error, words the message must hold)
# fmt: off
BAD_ANSWERS = {
    "name-not-dns": ({"services": [{"name": "Api_1", "kind": "fastapi", "port": 8000}]}, "services", "'Api_1' is not a DNS label"),
    "name-too-long": ({"services": [{"name": "a" * 64, "kind": "fastapi", "port": 8000}]}, "services", "is not a DNS label"),
    "name-duplicate": ({"services": [API, dict(API, port=8001)]}, "services", "'api' is used twice"),
    "name-reserved": ({"services": [API, {"name": "redis", "kind": "node-worker"}]}, "services", "'redis' is taken"),
    "kind-unknown": ({"services": [{"name": "api", "kind": "django", "port": 8000}]}, "services", "kind 'django'"),
    "port-zero": ({"services": [dict(API, port=0)]}, "services", "port 0 is not a port"),
    "port-too-big": ({"services": [dict(API, port=70000)]}, "services", "port 70000 is not a port"),
    "port-missing": ({"services": [{"name": "api", "kind": "fastapi"}]}, "services", "port None is not a port"),
    "port-duplicate": ({"services": [API, {"name": "web", "kind": "react-vite", "port": 8000}]}, "services", "port 8000 is used by both 'api' and 'web'"),
    "worker-with-port": ({"services": [API, dict(WORKER, port=9000)]}, "services", "'worker' is a node-worker and has no port"),
    "worker-without-api": ({"services": [WORKER]}, "services", "'worker' is a node-worker and needs a fastapi service"),
    "frontend-without-api": ({"services": [{"name": "web", "kind": "react-vite", "port": 3000}], "postgres": False}, "services", "'web' is a react-vite frontend and needs a fastapi"),
    "api-unknown": ({"services": [API, dict(WORKER, api="billing")]}, "services", "names api 'billing'"),
    "unknown-key": ({"services": [dict(API, replicas=3)]}, "services", "unknown key(s) replicas"),
    "services-not-list": ({"services": "api"}, "services", "is not a non-empty list"),
    "services-empty": ({"services": []}, "services", "is not a non-empty list"),
    "fastapi-without-postgres": ({"postgres": False}, "postgres", "postgres cannot be off: fastapi"),
    "worker-without-rabbitmq": ({"rabbitmq": False}, "rabbitmq", "rabbitmq cannot be off: node-worker"),
    "backing-port-clash": ({"redis_port": 8000}, "redis_port", "redis_port 8000 is already published by service 'api'"),
    "backing-ports-clash": ({"rabbitmq_management_port": 5672}, "rabbitmq_management_port", "already published by rabbitmq_port"),
    "dev-port-clash": ({"pgadmin_port": 5432}, "pgadmin_port", "pgadmin_port 5432 is already published by postgres_port"),
    "worker-without-postgres": ({"services": [API, WORKER], "postgres": False}, "postgres", "postgres cannot be off"),
    "redis-commander-without-redis": ({"redis": False, "redis_commander": True}, "redis_commander", "redis_commander needs redis, which is off"),
    "subnet-public": ({"network_subnet": "8.8.8.0/24"}, "network_subnet", "'8.8.8.0/24' is not a private IPv4 range"),
    "subnet-not-cidr": ({"network_subnet": "172.20.0.1/16"}, "network_subnet", "is not a CIDR network"),
    "subnet-too-small": ({"network_subnet": "10.0.0.0/30"}, "network_subnet", "is too small"),
    "slug-not-dns": ({"project_slug": "My Shop"}, "project_slug", "'My Shop' is not a DNS label"),
    "network-name-not-dns": ({"network_name": "app network"}, "network_name", "'app network' is not a DNS label"),
    "project-name-empty": ({"project_name": "  "}, "project_name", "must not be empty"),
}
# fmt: on


@pytest.mark.parametrize("case", sorted(BAD_ANSWERS))
def test_bad_answer_is_refused_and_nothing_written(case, template_copy, tmp_path) -> None:
    answers, question, words = BAD_ANSWERS[case]
    destination = tmp_path / "project"
    with pytest.raises(ValueError) as error:
        copier.run_copy(
            str(template_copy),
            str(destination),
            data=answers,
            defaults=True,
            unsafe=True,
            quiet=True,
        )
    message = str(error.value)
    assert message.startswith(f"Validation error for question '{question}': ")
    assert words in message
    assert "\n" not in message
    assert not destination.exists()


def _last_line(stderr: str) -> str:
    return [line for line in stderr.splitlines() if line.strip()][-1]


def test_cli_data_error_ends_with_one_line(template_copy, tmp_path) -> None:
    result = copier_cli(
        "copy",
        "--trust",
        "--defaults",
        "--data",
        "redis_port=8000",
        str(template_copy),
        "out",
        cwd=tmp_path,
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert _last_line(result.stderr) == (
        "copier: Validation error for question 'redis_port': redis_port 8000 is already published by service 'api'"
    )
    assert not (tmp_path / "out").exists()


def test_cli_data_file_error_ends_with_one_line(template_copy, tmp_path) -> None:
    data_file = tmp_path / "answers.yml"
    data_file.write_text(yaml.safe_dump({"services": [{"name": "web", "kind": "react-vite", "port": 99999}]}))
    result = copier_cli(
        "copy",
        "--trust",
        "--defaults",
        "--data-file",
        str(data_file),
        str(template_copy),
        "out",
        cwd=tmp_path,
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "question 'services'" in _last_line(result.stderr)
    assert "port 99999 is not a port" in _last_line(result.stderr)
    assert not (tmp_path / "out").exists()


def test_interactive_bad_answer_is_named_and_nothing_is_written(template_copy, tmp_path) -> None:
    """Asked at the prompt, a bad port is shown with the question and value, and not taken."""
    # Every answer but redis_port comes from --data, so the prompt asks just that one.
    given = {
        "project_name": "Shop",
        "project_slug": "shop",
        "description": "d",
        "author": "a",
        "services": "[{name: api, kind: fastapi, port: 8000}]",
        "postgres": "true",
        "postgres_port": "5432",
        "postgres_version": "17",
        "redis": "true",
        "redis_version": "7",
        "rabbitmq": "false",
        "ollama": "false",
        "pgadmin": "false",
        "redis_commander": "false",
        "network_name": "net",
        "network_subnet": "10.0.0.0/24",
    }
    args = [
        "copy",
        "--trust",
        *(f"--data={k}={v}" for k, v in given.items()),
        str(template_copy),
        "out",
    ]
    child = pexpect.spawn(
        copier_command(),
        args,
        cwd=str(tmp_path),
        encoding="utf-8",
        timeout=60,
        dimensions=(40, 240),
    )
    child.expect("Redis port published in development")
    child.sendcontrol("u")  # clear the default, 6379
    child.sendline("8000")
    child.expect(
        r"Validation error for question 'redis_port': redis_port 8000 is already published by service 'api'"
    )
    child.sendcontrol("c")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 1
    assert not (tmp_path / "out").exists()
