"""The answer sets every generation test renders: a cookiecutter-django style matrix."""

from __future__ import annotations

DEFAULT_SERVICES = [
    {"name": "api", "kind": "fastapi", "port": 8000},
    {"name": "worker", "kind": "node-worker"},
    {"name": "frontend", "kind": "react-vite", "port": 3000},
]

ALL_DEV_OFF = {"ollama": False, "pgadmin": False, "redis_commander": False}

MATRIX: dict[str, dict] = {
    "defaults": {},
    "minimal": {
        "services": [{"name": "api", "kind": "fastapi", "port": 8000}],
        "redis": False,
        "rabbitmq": False,
        **ALL_DEV_OFF,
    },
    "no-redis": {"redis": False},
    "two-apis-two-workers": {
        "project_name": "Billing Platform",
        "services": [
            {"name": "billing-api", "kind": "fastapi", "port": 8100},
            {"name": "reports-api", "kind": "fastapi", "port": 8200},
            {"name": "billing-worker", "kind": "node-worker", "api": "billing-api"},
            {"name": "reports-worker", "kind": "node-worker", "api": "reports-api"},
            {"name": "portal", "kind": "react-vite", "port": 3100, "api": "reports-api"},
        ],
        "postgres_port": 15432,
        "network_name": "billing-net",
        "network_subnet": "10.42.0.0/24",
    },
    "dev-services-off": dict(ALL_DEV_OFF),
    "dev-services-on": {
        "ollama": True,
        "ollama_port": 11500,
        "pgadmin": True,
        "pgadmin_port": 5051,
        "redis_commander": True,
        "redis_commander_port": 8082,
    },
}


def services_of(answers: dict) -> list[dict]:
    return answers.get("services", DEFAULT_SERVICES)


# Development services by answer name, with their compose service names.
DEVELOPMENT_SERVICES = {
    "ollama": "ollama",
    "pgadmin": "pgadmin",
    "redis_commander": "redis-commander",
}
# What a switch defaults to when the answers leave it out (as in copier.yml).
_SWITCH_DEFAULT_FROM = {"pgadmin": "postgres", "redis_commander": "redis"}


def enabled(answers: dict, switch: str) -> bool:
    """Whether a backing or development service is on under ``answers``."""
    if switch in answers:
        return bool(answers[switch])
    if switch in _SWITCH_DEFAULT_FROM:
        return enabled(answers, _SWITCH_DEFAULT_FROM[switch])
    return True
