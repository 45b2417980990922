"""Every rendered fastapi service passes its own test suite against real PostgreSQL, Redis and RabbitMQ."""

from __future__ import annotations

import pytest
from matrix import MATRIX
from reports import junit_counts

from stackplate.backing import create_database
from stackplate.native import run_checked, uv_command

pytestmark = [pytest.mark.backing, pytest.mark.slow]

# Renders whose API suites run: the defaults, Redis off, two renamed APIs on other ports.
RENDERS = ("defaults", "no-redis", "two-apis-two-workers")


def fastapi_services(answers: dict) -> list[str]:
    services = (
        answers.get("services") or MATRIX["defaults"].get("services") or [{"name": "api", "kind": "fastapi"}]
    )
    return [s["name"] for s in services if s["kind"] == "fastapi"]


@pytest.mark.parametrize("render", RENDERS)
def test_rendered_api_suite_passes(render, matrix_render_copy, tmp_path, backing, synced_venv) -> None:
    answers = MATRIX[render]
    project = matrix_render_copy(render)
    names = fastapi_services(answers)
    assert names, f"{render} renders no fastapi service"
    for name in names:
        database = create_database(backing.postgres, f"{render}_{name}".replace("-", "_"))
        env = {
            "UV_PROJECT_ENVIRONMENT": str(synced_venv(project / "services" / name)),
            "DATABASE_URL": database,
            "REDIS_URL": backing.redis if answers.get("redis", True) else "",
            "RABBITMQ_URL": backing.rabbitmq,
            "SERVICE_NAME": name,
        }
        report = tmp_path / f"{name}-junit.xml"
        pytest = uv_command(
            "run", "--frozen", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}"
        )
        run_checked(pytest, project / "services" / name, env, f"{render}: pytest")
        # Without Redis the tests that need it are skipped (the fallback tests run instead).
        skips_allowed = answers.get("redis") is False
        junit_counts(report).assert_all_passed(f"{render} {name}: pytest", skips_allowed=skips_allowed)
