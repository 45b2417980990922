#!/usr/bin/env python3
# /// script
# requires-python = ">=3.11"
# dependencies = ["pyyaml>=6"]
# ///
"""Deploy the production stack to Docker Swarm, and show the stack file it deploys.

    uv run --no-project scripts/swarm.py deploy [PROJECT]        # build, then deploy and wait
    uv run --no-project scripts/swarm.py deploy --service api    # roll out one service (and its migrations)
    uv run --no-project scripts/swarm.py stack-file [PROJECT]    # print the stack file only
    docker stack rm STACK                                        # remove it (named volumes stay)

Run it on a swarm manager (``docker swarm init`` makes this engine one). The
stack is named after the compose project (``--stack`` names another);
``REGISTRY`` and ``TAG`` choose the images, as they do for Compose.

``docker stack deploy`` reads the compose file format without what only
Compose does; this script resolves that from ``docker compose config`` of the
production combination (``docker-compose.yml`` + ``docker-compose.production.yml``):

* ``build`` goes: ``deploy`` builds the images first (``docker compose build``);
  on more than one node, push them (``docker compose push``) before deploying;
* ``restart`` becomes ``deploy.restart_policy``;
* ``depends_on``, which Swarm ignores, orders the deploy: the services go in
  waves (a wave's services depend only on earlier waves), and each wave's
  services must run (passing their healthchecks) before the next is deployed;
* a service's ``x-swarm`` section is applied: ``migrate`` adds the one-shot
  service ``NAME-migrate`` (the same image, secrets and network) that runs the
  migrations once per rollout, before ``NAME`` is updated, which then runs
  ``command`` (serving only) with ``environment`` added, ``ports`` instead of
  its own (``[]``: none) and ``deploy`` merged into its own;
* every service is found by DNS round robin (``endpoint_mode: dnsrr``) and
  publishes its ports on the node it runs on (``mode: host``), not through
  virtual IPs and the routing mesh: those need IPVS in the kernel, which not
  every host has (a kernel built without ``CONFIG_IP_VS``, as small VMs often
  are, fails every connection to a virtual IP). The frontends find every API
  replica by that name (their nginx looks it up again every few seconds), and
  put a load balancer of your own in front of the nodes' frontend ports;
* bridge networks become overlay networks; networks, volumes and secrets are
  named ``STACK_NAME`` (a stack named after the compose project finds the
  volumes Compose made);
* secrets stay files (``config/secrets/``): each becomes a Swarm secret named
  after its content's hash too, since Swarm secrets cannot change: a new file
  is a new secret and the services using it are updated;
* services with a bind mount or a named volume are placed on this node, where
  those paths and that data are, unless the compose files place them: put
  your own placement, and a volume driver the nodes share, in
  ``docker-compose.swarm.yml`` (yours; merged after the production files when
  it exists, for the swarm only);
* a service the stack runs already keeps its replica count (``docker service
  scale`` changes it); the compose files' ``replicas`` count for new services.

The engine's ``docker stack deploy`` understands the compose file format 3.9
(Docker 20.10 and later), which this script writes. Exit status 0 when every
service runs; else 1 with one line saying which service failed and its log.
Tools import this file: ``stack_file(config, ...)`` converts and
``deploy(project, ...)`` deploys (``stackplate deploy --swarm`` does).
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

COMPOSE_FILES = ("docker-compose.yml", "docker-compose.production.yml")
# Yours, if you make it (the template never writes it): what only the swarm needs, merged
# last, such as the nodes' placement and a volume driver they share.
SWARM_FILE = "docker-compose.swarm.yml"
STACK_FORMAT = "3.9"
DOCKER = os.environ.get("DOCKER", "docker")
# What `docker stack deploy` does not accept, or what only Compose uses.
COMPOSE_ONLY = ("build", "depends_on", "restart", "pull_policy", "env_file", "container_name", "x-swarm")
RESTART_CONDITIONS = {"always": "any", "unless-stopped": "any", "on-failure": "on-failure", "no": "none"}
# A one-shot migration service: retried a few times while its database settles, never restarted after.
MIGRATION_RESTART = {"condition": "on-failure", "max_attempts": 3, "delay": "5s"}
# Swarm update states that mean the last update did not go through.
FAILED_UPDATES = {"rollback_started", "rollback_completed", "rollback_paused", "paused"}
LOG_LINES = 30

Progress = Callable[[str], None]


class SwarmError(RuntimeError):
    """The stack could not be converted or deployed (the message says which service and why)."""


# --------------------------------------------------------------------------- converting


def compose_files(project: Path) -> list[str]:
    """``-f`` arguments for the production combination, and ``docker-compose.swarm.yml`` if it exists."""
    names = [*COMPOSE_FILES, *([SWARM_FILE] if (project / SWARM_FILE).is_file() else [])]
    return [arg for name in names for arg in ("-f", name)]


def compose_config(project: Path) -> dict[str, Any]:
    """The production combination as Compose resolves it (YAML: its JSON form drops ``x-`` keys)."""
    result = _run([DOCKER, "compose", *compose_files(project), "config"], cwd=project)
    return yaml.safe_load(result.stdout)


def stack_file(
    config: dict[str, Any],
    stack: str,
    *,
    node_id: str = "",
    only: set[str] | None = None,
    replicas: dict[str, int] | None = None,
) -> dict[str, Any]:
    """The stack file ``docker stack deploy`` accepts for ``config`` (services in ``only``, if given).

    ``node_id`` is the node that services with bind mounts or named volumes are
    placed on; ``replicas`` replaces the compose files' replica counts.
    """
    services = expanded_services(config)
    chosen = {name: spec for name, spec in services.items() if only is None or name in only}
    converted = {name: _service(spec, node_id) for name, spec in chosen.items()}
    for name, count in (replicas or {}).items():
        if name in converted and converted[name]["deploy"].get("mode", "replicated") == "replicated":
            converted[name]["deploy"]["replicas"] = count
    return {
        "version": STACK_FORMAT,
        "services": converted,
        "networks": {name: _network(spec or {}) for name, spec in (config.get("networks") or {}).items()},
        "volumes": {name: _volume(spec or {}) for name, spec in (config.get("volumes") or {}).items()},
        "secrets": {
            name: _secret(stack, name, spec or {}) for name, spec in (config.get("secrets") or {}).items()
        },
        "configs": {
            name: _secret(stack, name, spec or {}) for name, spec in (config.get("configs") or {}).items()
        },
    }


def expanded_services(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The services with their ``x-swarm`` applied: migration services added, commands replaced."""
    services: dict[str, dict[str, Any]] = {}
    for name, original in config["services"].items():
        swarm = original.get("x-swarm") or {}
        spec = copy.deepcopy(original)
        if swarm.get("migrate"):
            services[f"{name}-migrate"] = _migration(name, spec, swarm["migrate"])
            spec.setdefault("depends_on", {})[f"{name}-migrate"] = {
                "condition": "service_completed_successfully"
            }
        if swarm.get("command"):
            spec["command"] = swarm["command"]
        if "ports" in swarm:
            spec["ports"] = list(swarm["ports"] or [])
        if swarm.get("deploy"):
            spec["deploy"] = {**(spec.get("deploy") or {}), **swarm["deploy"]}
        spec["environment"] = {**(spec.get("environment") or {}), **(swarm.get("environment") or {})}
        services[name] = spec
    return services


def _migration(name: str, spec: dict[str, Any], command: list[str]) -> dict[str, Any]:
    """The one-shot service that runs ``name``'s migrations: its image, settings, secrets, networks."""
    kept = ("image", "environment", "secrets", "networks", "labels", "user", "working_dir", "depends_on")
    migration = {key: copy.deepcopy(spec[key]) for key in kept if key in spec}
    migration["command"] = list(command)
    migration["healthcheck"] = {"disable": True}  # it exits when done; nothing to probe
    # Its task exits when done: to Swarm's update monitor that is an early end, which by default
    # pauses the update. Whether it worked is its exit status, which the deploy waits for.
    migration["deploy"] = {
        "replicas": 1,
        "restart_policy": dict(MIGRATION_RESTART),
        "update_config": {"failure_action": "continue"},
    }
    migration["x-one-shot"] = True
    return migration


def _service(spec: dict[str, Any], node_id: str) -> dict[str, Any]:
    service = {
        key: value
        for key, value in spec.items()
        if value is not None and key not in COMPOSE_ONLY and key != "x-one-shot"
    }
    deploy = _deploy(spec.get("deploy") or {}, spec.get("restart"))
    if node_id and _keeps_data(spec) and not (deploy.get("placement") or {}).get("constraints"):
        deploy["placement"] = {**deploy.get("placement", {}), "constraints": [f"node.id == {node_id}"]}
    service["deploy"] = deploy
    if "ports" in spec:
        service["ports"] = [_port(port) for port in spec["ports"]]
    if "volumes" in spec:
        service["volumes"] = [_mount(mount) for mount in spec["volumes"]]
    if isinstance(spec.get("networks"), dict):
        service["networks"] = {
            name: ({k: v for k, v in (options or {}).items() if k in ("aliases", "ipv4_address")} or None)
            for name, options in spec["networks"].items()
        }
    if isinstance(spec.get("healthcheck"), dict):
        service["healthcheck"] = {k: v for k, v in spec["healthcheck"].items() if k != "start_interval"}
    return service


def _deploy(deploy: dict[str, Any], restart: str | None) -> dict[str, Any]:
    """``deploy`` with ``restart`` as its restart policy and resources in the 3.9 format (strings)."""
    result = {key: copy.deepcopy(value) for key, value in deploy.items() if value not in (None, {})}
    result["endpoint_mode"] = "dnsrr"  # no virtual IP: see the module's docstring
    if result.get("mode") == "global":
        result.pop("replicas", None)
    if restart and "restart_policy" not in result:
        condition, _, attempts = restart.partition(":")
        if condition not in RESTART_CONDITIONS:
            raise SwarmError(f"restart: {restart!r} is not one of {', '.join(RESTART_CONDITIONS)}")
        policy: dict[str, Any] = {"condition": RESTART_CONDITIONS[condition]}
        if attempts:
            policy["max_attempts"] = int(attempts)
        result["restart_policy"] = policy
    for kind, limits in (result.get("resources") or {}).items():
        result["resources"][kind] = {
            key: str(value) for key, value in limits.items() if key in ("cpus", "memory") and value
        }
    return result


def _keeps_data(spec: dict[str, Any]) -> bool:
    """Whether the service mounts a host path or a named volume: both live on one node."""
    return any(
        isinstance(mount, dict) and mount.get("type") in ("bind", "volume") and mount.get("source")
        for mount in spec.get("volumes") or []
    )


def _port(port: Any) -> dict[str, Any]:
    if not isinstance(port, dict):
        raise SwarmError(f"ports: {port!r} is not in Compose's long form")
    converted = {"target": int(port["target"]), "protocol": port.get("protocol", "tcp")}
    if port.get("published"):
        converted["published"] = int(str(port["published"]).split("-")[0])
    # On the node the task runs on: the routing mesh (mode ingress) needs virtual IPs.
    converted["mode"] = "host"
    return converted


MOUNT_OPTIONS = {"bind": ("propagation",), "volume": ("nocopy",), "tmpfs": ("size",)}


def _mount(mount: Any) -> Any:
    if not isinstance(mount, dict):
        return mount
    converted = {k: v for k, v in mount.items() if k in ("type", "source", "target", "read_only")}
    for section, options in MOUNT_OPTIONS.items():
        kept = {k: v for k, v in (mount.get(section) or {}).items() if k in options}
        if kept:
            converted[section] = kept
    return converted


def _network(spec: dict[str, Any]) -> dict[str, Any]:
    if spec.get("external"):
        return {"external": True, **({"name": spec["name"]} if spec.get("name") else {})}
    network = {k: v for k, v in spec.items() if k in ("driver_opts", "labels", "internal", "attachable")}
    network["driver"] = "overlay" if spec.get("driver", "bridge") == "bridge" else spec["driver"]
    ipam = spec.get("ipam") or {}
    if ipam.get("config"):
        network["ipam"] = {
            "config": [{k: v for k, v in entry.items() if k == "subnet"} for entry in ipam["config"]]
        }
    return network


def _volume(spec: dict[str, Any]) -> dict[str, Any]:
    if spec.get("external"):
        return {"external": True, **({"name": spec["name"]} if spec.get("name") else {})}
    return {k: v for k, v in spec.items() if k in ("driver", "driver_opts", "labels")}


def _secret(stack: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    """A file secret, named by its content's hash too: a changed file is a new secret."""
    if spec.get("external"):
        return {"external": True, **({"name": spec["name"]} if spec.get("name") else {})}
    if not spec.get("file"):
        raise SwarmError(f"secret {name}: only file secrets become Swarm secrets (it has no file:)")
    path = Path(spec["file"])
    if not path.is_file():
        raise SwarmError(f"secret {name}: {path} does not exist (run scripts/generate_secrets.py)")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    return {"file": str(path), "name": f"{stack}_{name}-{digest}"}


# --------------------------------------------------------------------------- ordering


def waves(services: dict[str, dict[str, Any]]) -> list[list[str]]:
    """The services in deploy order: each wave depends only on services in earlier waves."""
    remaining = {name: set(spec.get("depends_on") or ()) & set(services) for name, spec in services.items()}
    ordered: list[list[str]] = []
    placed: set[str] = set()
    while remaining:
        wave = sorted(name for name, needs in remaining.items() if needs <= placed)
        if not wave:
            raise SwarmError(f"depends_on: a cycle among {', '.join(sorted(remaining))}")
        ordered.append(wave)
        placed.update(wave)
        for name in wave:
            del remaining[name]
    return ordered


# --------------------------------------------------------------------------- deploying


def deploy(
    project: Path,
    *,
    stack: str | None = None,
    only: Sequence[str] = (),
    build: bool = True,
    timeout: float = 300,
    progress: Progress = print,
) -> str:
    """Build, then deploy wave by wave, each waited for; the stack's name.

    With ``only``, just those services (and their migrations) are built and
    deployed; the stack's other services stay as they run.
    """
    project = project.resolve()
    node_id = manager_node()
    config = compose_config(project)
    unknown = sorted(set(only) - set(config["services"]))
    if unknown:
        raise SwarmError(f"--service {', '.join(unknown)}: no such service in the compose files")
    if build:
        progress("building the production images (docker compose build)")
        _run([DOCKER, "compose", *compose_files(project), "build", *only], cwd=project, capture=False)
    stack = stack or config["name"]
    services = expanded_services(config)
    if only:
        chosen = set(only) | {f"{name}-migrate" for name in only}
        services = {name: spec for name, spec in services.items() if name in chosen}
    # A service that runs keeps its replica count (docker service scale sets it), one-shots aside.
    scaled = {name: count for name, count in running_replicas(stack).items() if name in services}
    scaled = {name: count for name, count in scaled.items() if not services[name].get("x-one-shot")}
    deployed: set[str] = set()
    for wave in waves(services):
        deployed.update(wave)
        progress(f"deploying {', '.join(wave)} to stack {stack}")
        content = stack_file(config, stack, node_id=node_id, only=deployed, replicas=scaled)
        stack_deploy(stack, content)
        for name in wave:
            one_shot = bool(services[name].get("x-one-shot"))
            if one_shot and service_state(f"{stack}_{name}", one_shot)[0] == "failed":
                # Failed on an earlier deploy of the same spec: Swarm would not run it again by itself.
                progress(f"{name}: failed before; running it again")
                _run([DOCKER, "service", "update", "--detach", "--force", f"{stack}_{name}"])
            wait_for_service(f"{stack}_{name}", one_shot, timeout)
            progress(f"{name}: {'done' if services[name].get('x-one-shot') else 'running'}")
    return stack


def running_replicas(stack: str) -> dict[str, int]:
    """The replica count of each replicated service the stack runs now, by service name."""
    ids = _run([DOCKER, "stack", "services", "--quiet", stack], check=False).stdout.split()
    found = {}
    for spec in json.loads(_run([DOCKER, "service", "inspect", *ids]).stdout) if ids else []:
        replicated = spec["Spec"]["Mode"].get("Replicated")
        if replicated:
            found[spec["Spec"]["Name"].removeprefix(f"{stack}_")] = int(replicated.get("Replicas", 1))
    return found


def manager_node() -> str:
    """This engine's swarm node ID; a clear error unless it is an active manager."""
    node = _run([DOCKER, "node", "inspect", "self"], check=False)
    if node.returncode != 0:
        raise SwarmError("this Docker engine is not a swarm manager: run `docker swarm init` first")
    return str(json.loads(node.stdout)[0]["ID"])


def stack_deploy(stack: str, content: dict[str, Any]) -> None:
    """``docker stack deploy`` of ``content`` (on stdin); services not in it are left as they are."""
    # No digest lookups for images that are only local (REGISTRY unset: localhost/...).
    resolve = "never" if os.environ.get("REGISTRY", "localhost") == "localhost" else "always"
    command = [DOCKER, "stack", "deploy", "--with-registry-auth", "--resolve-image", resolve]
    _run([*command, "--compose-file", "-", stack], stdin=yaml.safe_dump(content, sort_keys=False))


def wait_for_service(service: str, one_shot: bool, timeout: float) -> None:
    """Poll until ``service`` runs every replica (a one-shot: has completed); fail with its log."""
    deadline = time.monotonic() + timeout
    detail = "no task yet"
    while time.monotonic() < deadline:
        state, detail = service_state(service, one_shot)
        if state == "ready":
            return
        if state == "failed":
            break
        time.sleep(1)  # a poll interval: the next look checks the tasks again
    else:
        detail = f"not ready within {timeout:g} s ({detail})"
    logs = _run([DOCKER, "service", "logs", "--no-task-ids", "--tail", str(LOG_LINES), service], check=False)
    raise SwarmError(f"{service}: {detail}; its log ends:\n{(logs.stdout + logs.stderr).strip()}")


def service_state(service: str, one_shot: bool) -> tuple[str, str]:
    """("ready" | "waiting" | "failed", why) for a service, from its spec and its tasks."""
    spec = json.loads(_run([DOCKER, "service", "inspect", service]).stdout)[0]
    update = spec.get("UpdateStatus") or {}
    if update.get("State") in FAILED_UPDATES and not one_shot:
        return "failed", f"update {update['State']}: {update.get('Message', '')}"
    current = _what_runs(spec["Spec"]["TaskTemplate"])
    tasks = [task for task in _tasks(service) if _what_runs(task["Spec"]) == current]
    states = [task["Status"]["State"] for task in tasks]
    errors = [task["Status"].get("Err", "") for task in tasks if task["Status"].get("Err")]
    if one_shot:
        if "complete" in states:
            return "ready", "completed"
        failed = sum(state in ("failed", "rejected") for state in states)
        if failed >= MIGRATION_RESTART["max_attempts"]:
            return "failed", f"failed {failed} times: {errors[-1] if errors else 'see its log'}"
        return "waiting", ", ".join(states) or "no task yet"
    if update.get("State") == "updating":
        return "waiting", "updating"
    wanted = spec["Spec"]["Mode"].get("Replicated", {}).get("Replicas", 1)
    running = [t for t in tasks if t["Status"]["State"] == "running" and t["DesiredState"] == "running"]
    stale = [t for t in _tasks(service) if t["DesiredState"] == "running" and t not in tasks]
    if len(running) >= wanted and not stale:
        return "ready", f"{len(running)} running"
    return "waiting", f"{len(running)}/{wanted} running" + (f"; last error: {errors[-1]}" if errors else "")


# What a task runs, as its service's spec says it (the engine fills defaults into the rest).
RUNS = (
    "Image",
    "Command",
    "Args",
    "Env",
    "Mounts",
    "Secrets",
    "Configs",
    "User",
    "Dir",
    "Hostname",
    "Labels",
)


def _what_runs(template: dict[str, Any]) -> list[Any]:
    """A task template's container and its force-update count (``docker service update --force``)."""
    container = template["ContainerSpec"]
    return [template.get("ForceUpdate", 0), *(container.get(key) for key in RUNS)]


def _tasks(service: str) -> list[dict[str, Any]]:
    ids = _run([DOCKER, "service", "ps", "--quiet", "--no-trunc", service]).stdout.split()
    if not ids:
        return []
    # A task listed a moment ago may be gone now (history is pruned): inspect prints the others.
    return json.loads(_run([DOCKER, "inspect", *ids], check=False).stdout or "[]")


def _run(
    command: list[str], *, cwd: Path | None = None, stdin: str | None = None, check: bool = True,
    capture: bool = True,
) -> subprocess.CompletedProcess[str]:  # fmt: skip
    try:
        result = subprocess.run(
            command, cwd=cwd, input=stdin, capture_output=capture, text=True, check=False, timeout=1800
        )
    except FileNotFoundError as error:
        raise SwarmError(f"{command[0]}: not found (install the Docker CLI)") from error
    if check and result.returncode != 0:
        output = ((result.stderr or "") + (result.stdout or "")).strip().splitlines()
        tail = "\n".join(output[-LOG_LINES:]) or "no output"
        raise SwarmError(f"`{' '.join(command[:3])}` failed (exit {result.returncode}): {tail}")
    return result


# --------------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("deploy", "stack-file"))
    parser.add_argument("project", nargs="?", default=".", type=Path, help="the project (default: .)")
    parser.add_argument("--stack", help="the stack's name (default: the compose project's name)")
    parser.add_argument(
        "--service", action="append", default=[], help="deploy only this service (repeatable)"
    )
    parser.add_argument("--no-build", action="store_true", help="deploy the images as they are")
    parser.add_argument("--timeout", type=float, default=300, help="seconds for each service (300)")
    args = parser.parse_args(argv)
    try:
        if args.command == "stack-file":
            config = compose_config(args.project.resolve())
            print(yaml.safe_dump(stack_file(config, args.stack or config["name"]), sort_keys=False), end="")
            return 0
        stack = deploy(
            args.project, stack=args.stack, only=args.service, build=not args.no_build, timeout=args.timeout
        )
    except SwarmError as error:
        print(f"swarm.py: {error}", file=sys.stderr)
        return 1
    print(f"stack {stack} is running: docker stack services {stack}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
