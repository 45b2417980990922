"""The answer rules in stackplate.answers, shared by the extension and the CLI."""

from __future__ import annotations

import pytest

from stackplate import answers


@pytest.mark.parametrize("name", ["api", "a", "billing-api-2", "x" * 63])
def test_dns_labels_accepted(name) -> None:
    assert answers.dns_label_problem(name, "name") is None


@pytest.mark.parametrize("name", ["", "Api", "2api", "api-", "a_b", "x" * 64, None, 3])
def test_dns_labels_refused(name) -> None:
    assert "is not a DNS label" in answers.dns_label_problem(name, "name")


@pytest.mark.parametrize(
    ("text", "slug"), [("My Stack", "my-stack"), ("  2 Fast 4 U!", "fast-4-u"), ("???", "project")]
)
def test_slugify(text, slug) -> None:
    assert answers.slugify(text) == slug
    assert answers.dns_label_problem(slug, "slug") is None


def test_app_services_fill_in_the_api_each_client_serves() -> None:
    services = answers.app_services(
        [
            {"name": "billing-api", "kind": "fastapi", "port": 8000},
            {"name": "other-api", "kind": "fastapi", "port": 8001},
            {"name": "w", "kind": "node-worker"},
            {"name": "web", "kind": "react-vite", "port": 3000, "api": "other-api"},
        ]
    )
    by_name = {s["name"]: s for s in services}
    assert by_name["billing-api"]["database"] == "billing_api"
    assert by_name["billing-api"]["export_queue"] == "billing-api.exports"
    assert by_name["w"]["api"] == "billing-api"
    assert by_name["w"]["port"] is None
    assert by_name["web"]["api"] == "other-api"


def test_published_ports_stop_at_the_question_asked() -> None:
    given = {
        "services": [{"name": "api", "kind": "fastapi", "port": 8000}],
        "postgres": True,
        "postgres_port": 5432,
        "redis": False,
        "redis_port": 6379,
        "rabbitmq": True,
        "rabbitmq_port": 5672,
    }
    assert answers.published_ports(given, upto="rabbitmq_port") == {
        8000: "service 'api'",
        5432: "postgres_port",
    }
    # A service that is off publishes nothing.
    assert answers.port_answer_problem("rabbitmq_port", 6379, given) is None
    assert "already published by postgres_port" in answers.port_answer_problem("rabbitmq_port", 5432, given)


@pytest.mark.parametrize("value", [True, False])
def test_switches_without_dependants_are_free(value) -> None:
    assert answers.switch_problem("ollama", value, {"services": []}) is None


def test_switch_must_be_boolean() -> None:
    assert "is not a yes/no answer" in answers.switch_problem("redis", "yes", {})


def test_subnet_room_grows_with_services() -> None:
    assert answers.subnet_problem("10.0.0.0/28", services_count=3) is None
    assert "too small" in answers.subnet_problem("10.0.0.0/28", services_count=10)


def test_one_resource_table_in_compose_and_kubernetes_units() -> None:
    """answers.RESOURCES in each file's spelling: the same amounts, never two tables."""
    assert answers.compose_limits("react-vite") == {"cpus": "0.5", "memory": "512M"}
    assert answers.compose_limits("postgres") == {"cpus": "2", "memory": "2G"}
    assert answers.kubernetes_resources("react-vite") == {
        "limits": {"cpu": "500m", "memory": "512Mi"},
        "requests": {"cpu": "50m", "memory": "64Mi"},
    }
    assert answers.kubernetes_resources("fastapi")["limits"] == {"cpu": "1", "memory": "1Gi"}
    assert set(answers.RESOURCES) == {*answers.KINDS, *answers.BACKING_SERVICES}
    for amounts in answers.RESOURCES.values():
        assert (
            amounts["request_cpu"] <= amounts["limit_cpu"] and amounts["request_mib"] <= amounts["limit_mib"]
        )
