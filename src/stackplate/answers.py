"""The template's answers: what a valid answer is, and what it implies.

Stdlib only. The Jinja extension in ``extensions/`` loads this file by path
from a clone of the template (Copier does not install our package there), and
the CLI imports it as ``stackplate.answers``: one set of rules for both.

Each ``*_problem`` function returns ``None`` for a good answer, or one line
that names the bad value and says why it is bad.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from typing import Any

KINDS = ("fastapi", "node-worker", "react-vite")
BACKING_SERVICES = ("postgres", "redis", "rabbitmq")
DEVELOPMENT_SERVICES = ("ollama", "pgadmin", "redis_commander")
# Where the production images are tagged unless REGISTRY and TAG say otherwise
# (``localhost/`` is a registry prefix that never leaves the machine).
IMAGE_REGISTRY = "localhost"
IMAGE_TAG = "latest"

# The production resources of each app service kind and backing service: the
# limits of docker-compose.production.yml and of the Kubernetes containers (one
# table, so the two cannot drift), and what a Kubernetes pod requests (the
# scheduler's reservation, and the base of the autoscalers' CPU percentages).
# CPU in millicores, memory in MiB.
RESOURCES = {
    "fastapi": {"limit_cpu": 1000, "limit_mib": 1024, "request_cpu": 250, "request_mib": 256},
    "node-worker": {"limit_cpu": 1000, "limit_mib": 1024, "request_cpu": 250, "request_mib": 256},
    "react-vite": {"limit_cpu": 500, "limit_mib": 512, "request_cpu": 50, "request_mib": 64},
    "postgres": {"limit_cpu": 2000, "limit_mib": 2048, "request_cpu": 500, "request_mib": 512},
    "redis": {"limit_cpu": 500, "limit_mib": 512, "request_cpu": 100, "request_mib": 128},
    "rabbitmq": {"limit_cpu": 1000, "limit_mib": 1024, "request_cpu": 250, "request_mib": 512},
}


def compose_limits(name: str) -> dict[str, str]:
    """Compose's ``deploy.resources.limits`` of a kind or backing service.

    ``compose_limits("react-vite")`` -> ``{"cpus": "0.5", "memory": "512M"}``.
    """
    table = RESOURCES[name]
    memory = table["limit_mib"]
    return {
        "cpus": f"{table['limit_cpu'] / 1000:g}",
        "memory": f"{memory // 1024}G" if memory % 1024 == 0 else f"{memory}M",
    }


def kubernetes_resources(name: str) -> dict[str, dict[str, str]]:
    """A Kubernetes container's ``resources`` of a kind or backing service.

    ``kubernetes_resources("react-vite")["limits"]`` -> ``{"cpu": "500m", "memory": "512Mi"}``.
    """
    table = RESOURCES[name]

    def quantities(cpu: int, mib: int) -> dict[str, str]:
        return {
            "cpu": f"{cpu // 1000}" if cpu % 1000 == 0 else f"{cpu}m",
            "memory": f"{mib // 1024}Gi" if mib % 1024 == 0 else f"{mib}Mi",
        }

    return {
        "limits": quantities(table["limit_cpu"], table["limit_mib"]),
        "requests": quantities(table["request_cpu"], table["request_mib"]),
    }


# Compose service names of the services the template adds itself; an app
# service may not take one of them.
RESERVED_NAMES = frozenset(
    {"postgres", "redis", "rabbitmq", "ollama", "pgadmin", "redis-commander", "redis_commander"}
)

# Each question about a port, in the order Copier asks them, with the
# question that switches its service on. App service ports come first.
PORT_QUESTIONS = (
    ("postgres_port", "postgres"),
    ("redis_port", "redis"),
    ("rabbitmq_port", "rabbitmq"),
    ("rabbitmq_management_port", "rabbitmq"),
    ("ollama_port", "ollama"),
    ("pgadmin_port", "pgadmin"),
    ("redis_commander_port", "redis_commander"),
)

_DNS_LABEL = re.compile(r"^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")
_SERVICE_KEYS = {"name", "kind", "port", "api"}


def dns_label_problem(value: Any, what: str) -> str | None:
    """Why ``value`` is not a DNS label (RFC 1123, starting with a letter)."""
    if not isinstance(value, str) or not _DNS_LABEL.match(value):
        return (
            f"{what} {value!r} is not a DNS label: use 1-63 lowercase letters, digits and '-', "
            "starting with a letter and not ending with '-'"
        )
    return None


def port_problem(value: Any, what: str) -> str | None:
    """Why ``value`` is not a TCP port number."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        return f"{what} {value!r} is not a port: use a whole number from 1 to 65535"
    return None


def slugify(text: str) -> str:
    """A DNS label made from free text: 'My Shop 2' -> 'my-shop-2'."""
    slug = re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-")
    slug = re.sub(r"^[^a-z]+", "", slug)[:63].rstrip("-")
    return slug or "project"


def snake(name: str) -> str:
    """An identifier made from a service name: 'billing-api' -> 'billing_api'."""
    return name.replace("-", "_")


# ---------------------------------------------------------------- services


def _entry_problem(index: int, entry: Any) -> str | None:
    """Problems a single ``services`` entry has on its own."""
    where = f"services[{index}]"
    if not isinstance(entry, Mapping):
        return f"{where} {entry!r} is not a mapping: write {{name: NAME, kind: KIND, port: PORT}}"
    unknown = sorted(set(entry) - _SERVICE_KEYS)
    if unknown:
        return f"{where} has unknown key(s) {', '.join(unknown)}: allowed are name, kind, port, api"
    name = entry.get("name")
    problem = dns_label_problem(name, f"{where} name")
    if problem:
        return problem
    if name in RESERVED_NAMES:
        return f"service name {name!r} is taken by a backing or development service"
    kind = entry.get("kind")
    if kind not in KINDS:
        return f"service {name!r} has kind {kind!r}: use one of {', '.join(KINDS)}"
    if kind == "node-worker":
        if entry.get("port") is not None:
            return f"service {name!r} is a node-worker and has no port: remove port {entry['port']!r}"
    else:
        problem = port_problem(entry.get("port"), f"service {name!r} port")
        if problem:
            return problem
    return None


def _links_problem(entries: list[Mapping[str, Any]]) -> str | None:
    """Problems between entries: duplicate names and ports, the API a client names."""
    seen_names: set[str] = set()
    seen_ports: dict[int, str] = {}
    apis = [e["name"] for e in entries if e["kind"] == "fastapi"]
    for entry in entries:
        name = entry["name"]
        if name in seen_names:
            return f"service name {name!r} is used twice: names must be unique"
        seen_names.add(name)
        port = entry.get("port")
        if port is not None:
            if port in seen_ports:
                return f"port {port} is used by both {seen_ports[port]!r} and {name!r}"
            seen_ports[port] = name
        if "api" in entry:
            if entry["kind"] == "fastapi":
                return f"service {name!r} is a fastapi service and cannot name an api"
            if entry["api"] not in apis:
                return f"service {name!r} names api {entry['api']!r}, which is not a fastapi service"
        elif entry["kind"] == "react-vite" and not apis:
            return f"service {name!r} is a react-vite frontend and needs a fastapi service to talk to"
        elif entry["kind"] == "node-worker" and not apis:
            return f"service {name!r} is a node-worker and needs a fastapi service whose exports it runs"
    return None


def services_problem(services: Any) -> str | None:
    """Why the ``services`` answer is not a valid list of app services."""
    if not isinstance(services, list) or not services:
        return f"services {services!r} is not a non-empty list of {{name, kind, port}} entries"
    for index, entry in enumerate(services):
        problem = _entry_problem(index, entry)
        if problem:
            return problem
    return _links_problem(services)


def app_services(services: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The ``services`` answer with every derived field the templates need.

    Adds ``api`` (the fastapi service a worker or frontend serves, by default
    the first one); for APIs ``database``, ``export_queue``,
    ``events_exchange`` and ``cors_origins`` (the browser origins of the
    frontends that use it); and ``ident`` (the name as an identifier).
    """
    services = list(services)
    first_api = next((s["name"] for s in services if s["kind"] == "fastapi"), None)
    result = []
    clients: dict[str, list[str]] = {}
    for entry in services:
        service = {"name": entry["name"], "kind": entry["kind"], "port": entry.get("port")}
        service["ident"] = snake(service["name"])
        if service["kind"] == "fastapi":
            service["api"] = None
            service["database"] = service["ident"]
            service["export_queue"] = f"{service['name']}.exports"
            service["events_exchange"] = f"{service['name']}.events"
        else:
            service["api"] = entry.get("api", first_api)
            if service["kind"] == "react-vite" and service["port"]:
                clients.setdefault(service["api"], []).append(f"http://localhost:{service['port']}")
        result.append(service)
    for service in result:
        if service["kind"] == "fastapi":
            service["cors_origins"] = clients.get(service["name"], [])
    return result


# ------------------------------------------------------- cross-question rules


def published_ports(answers: Mapping[str, Any], upto: str | None = None) -> dict[int, str]:
    """Ports already taken, by port: app services first, then each enabled
    backing or development service port, stopping before question ``upto``."""
    taken: dict[int, str] = {}
    for service in answers.get("services") or []:
        if isinstance(service, Mapping) and isinstance(service.get("port"), int):
            taken.setdefault(service["port"], f"service {service.get('name')!r}")
    for question, switch in PORT_QUESTIONS:
        if question == upto:
            break
        if answers.get(switch) and isinstance(answers.get(question), int):
            taken.setdefault(answers[question], question)
    return taken


def port_answer_problem(question: str, value: Any, answers: Mapping[str, Any]) -> str | None:
    """Why ``value`` cannot be the answer to port question ``question``."""
    problem = port_problem(value, question)
    if problem:
        return problem
    owner = published_ports(answers, upto=question).get(value)
    if owner:
        return f"{question} {value} is already published by {owner}"
    return None


def kinds_in(answers: Mapping[str, Any]) -> set[str]:
    return {s.get("kind") for s in answers.get("services") or [] if isinstance(s, Mapping)}


# Which backing service each kind of app service cannot run without.
NEEDS = {"fastapi": ("postgres",), "node-worker": ("rabbitmq", "postgres")}
# Development services and the backing service each one is a window on.
WINDOW_ON = {"pgadmin": "postgres", "redis_commander": "redis"}


def switch_problem(question: str, value: Any, answers: Mapping[str, Any]) -> str | None:
    """Why a backing or development service cannot be switched ``value``."""
    if not isinstance(value, bool):
        return f"{question} {value!r} is not a yes/no answer"
    if value:
        needed = WINDOW_ON.get(question)
        if needed and not answers.get(needed):
            return f"{question} needs {needed}, which is off: switch {needed} on or {question} off"
        return None
    for kind in sorted(kinds_in(answers)):
        if question in NEEDS.get(kind, ()):
            return f"{question} cannot be off: {kind} services need it"
    return None


def subnet_problem(value: Any, services_count: int = 0) -> str | None:
    """Why ``value`` is neither empty (Docker picks) nor a private IPv4 subnet with room for the stack."""
    if value is None or str(value).strip() == "":
        return None
    try:
        network = ipaddress.ip_network(str(value), strict=True)
    except ValueError as error:
        return f"network_subnet {value!r} is not a CIDR network: {error}"
    if network.version != 4 or not network.is_private:
        return f"network_subnet {value!r} is not a private IPv4 range (10/8, 172.16/12, 192.168/16)"
    # Gateway, the backing and development services, and every app service.
    needed = 1 + len(BACKING_SERVICES) + len(DEVELOPMENT_SERVICES) + services_count
    if network.num_addresses - 2 < needed:
        return f"network_subnet {value!r} is too small: the stack needs {needed} addresses"
    return None


_ORIGIN = re.compile(r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?$")


def origins_problem(value: Any, question: str = "production_cors_origins") -> str | None:
    """Why ``value`` is not a comma-separated list of browser origins (empty is fine)."""
    if not isinstance(value, str):
        return f"{question} {value!r} is not text: write origins like https://app.example.com"
    for origin in (part.strip() for part in value.split(",")):
        if origin and not _ORIGIN.match(origin):
            return (
                f"{question} has {origin!r}, which is not an origin: "
                "write scheme://host[:port], e.g. https://app.example.com (no path, no '*')"
            )
    return None


# -------------------------------------------------------- whole answer sets

# The questions with a validator, in the order Copier asks them.
VALIDATED_QUESTIONS = (
    "project_name",
    "project_slug",
    "services",
    "postgres",
    "postgres_port",
    "redis",
    "redis_port",
    "rabbitmq",
    "rabbitmq_port",
    "rabbitmq_management_port",
    "ollama",
    "ollama_port",
    "pgadmin",
    "pgadmin_port",
    "redis_commander",
    "redis_commander_port",
    "network_name",
    "network_subnet",
    "production_cors_origins",
)
_SWITCH_OF_PORT = dict(PORT_QUESTIONS)


def question_problem(question: str, answers: Mapping[str, Any]) -> str | None:
    """Why the answer to ``question`` in ``answers`` is bad (earlier answers as context)."""
    value = answers.get(question)
    if question == "services":
        return services_problem(value)
    if question in ("project_slug", "network_name"):
        return dns_label_problem(value, question)
    if question in _SWITCH_OF_PORT:
        return port_answer_problem(question, value, answers)
    if question in BACKING_SERVICES or question in DEVELOPMENT_SERVICES:
        return switch_problem(question, value, answers)
    if question == "network_subnet":
        return subnet_problem(value, len(answers.get("services") or []))
    if question == "production_cors_origins":
        return origins_problem(value)
    if question == "project_name":
        return None if str(value or "").strip() else "project_name must not be empty"
    raise ValueError(f"no rule for question {question!r}")


def first_problem(answers: Mapping[str, Any]) -> str | None:
    """The first bad answer of a whole answer set, worded as Copier words it."""
    for question in VALIDATED_QUESTIONS:
        switch = _SWITCH_OF_PORT.get(question)
        if question not in answers or (switch and not answers.get(switch)):
            continue  # not asked (its service is off) or left to its default
        problem = question_problem(question, answers)
        if problem:
            return f"Validation error for question '{question}': {problem}"
    return None
