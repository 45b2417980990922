"""The production stack on Docker Swarm: ``stackplate deploy --swarm``, scaled, updated under load, removed.

One stack is deployed once for the module, on this engine made a swarm
(``docker swarm init``, left at the end unless it was a swarm before). Late in
the module a second engine joins as a worker node (see ``swarm_node``): replicas
run on it and serve over the overlay network, then it is drained under load.
Upstream images are the labelled stand-ins (``stackplate standins``). This
machine's kernel has no IPVS (``CONFIG_IP_VS`` unset, no modules), so Swarm's
virtual IPs and routing mesh cannot work here; the stack uses DNS round robin
and host-mode ports (see the project's ``scripts/swarm.py``), and the load goes
through the frontend's port, whose nginx spreads it over the API's replicas.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import swarm_node
from apiclient import call, login
from booting import run_e2e_suite
from conftest import HOST_PORTS, REPO, render
from engine import engine_or_fail, ensure_stand_ins, json_lines, own_network, wait_for

from stackplate.compose_boot import ComposeProject

pytestmark = [pytest.mark.engine, pytest.mark.slow, HOST_PORTS]

STACK = "sp-swarm"
FRONTEND = "http://127.0.0.1:3000"
NAMESPACE = f"label=com.docker.stack.namespace={STACK}"


def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=300, check=False)
    assert not check or result.returncode == 0, result.stdout + result.stderr
    return result


def deploy(project: Path, *args: str, tag: str = "latest") -> None:
    """``stackplate deploy --swarm`` as a user runs it (TAG chooses the images)."""
    command = [str(Path(sys.executable).with_name("stackplate")), "deploy", "--swarm", *args, str(project)]
    env = {**os.environ, "TAG": tag}
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, env=env, check=False)
    assert result.returncode == 0, result.stdout + result.stderr[-4000:]


@pytest.fixture(scope="module")
def swarm():
    engine_or_fail()
    state = json.loads(docker("info", "--format", "{{json .Swarm}}").stdout)
    made = state["LocalNodeState"] != "active"
    # swarm init makes the docker_gwbridge network; leaving the swarm keeps it.
    had_gateway = "docker_gwbridge" in docker("network", "ls", "--format", "{{.Name}}").stdout.split()
    if made:
        # The manager advertises its end of the link to the second node's namespace.
        swarm_node.link()
        docker("swarm", "init", "--advertise-addr", swarm_node.HOST_ADDRESS)
    yield
    if made:
        docker("swarm", "leave", "--force")
        swarm_node.unlink()
        if not had_gateway:
            docker("network", "rm", "docker_gwbridge")


@pytest.fixture(scope="module")
def stack(swarm, template_copy, tmp_path_factory):
    """The default project deployed as stack sp-swarm; removed (volumes too) at the end."""
    project = render(template_copy, tmp_path_factory.mktemp("swarm") / "swarm", own_network(STACK))
    settings = project / "config" / ".env"
    # The load loops make ~50 requests a second from one address: lift the per-client limit
    # (as bench/api.py does), which would otherwise answer 429 after 600 a minute.
    settings.write_text(
        settings.read_text().replace("GENERAL_RATE_LIMIT=600/minute", "GENERAL_RATE_LIMIT=1000000/minute")
    )
    ensure_stand_ins(project)
    remove_stack()
    share_exports(project, tmp_path_factory.mktemp("exports-share"))
    deploy(project, "--timeout", "240")
    boot = {
        "services": {"frontend": {"name": "frontend", "kind": "react-vite", "url": FRONTEND}},
        "admin": {
            "email": f"admin@{STACK}.example.com",
            "password": (project / "config" / "secrets" / "first_admin_password").read_text().strip(),
        },
    }
    (project / ".stackplate").mkdir(exist_ok=True)
    (project / ".stackplate" / "boot.json").write_text(json.dumps(boot))
    yield project
    remove_stack()


def share_exports(project: Path, share: Path) -> None:
    """What the deployment docs say a user writes to spread API and worker over nodes.

    A folder every node mounts (here: one both engines see, this machine's
    filesystem, as NFS would be between real hosts) backs ``exports-data``, and
    API and worker go to the nodes labelled as having it.
    """
    os.chown(share, 10001, 10001)  # the images' app user
    placed = {"deploy": {"placement": {"constraints": ["node.labels.exports == shared"]}}}
    swarm_file = {
        "volumes": {"exports-data": {"driver_opts": {"type": "none", "o": "bind", "device": str(share)}}},
        "services": {"api": placed, "worker": placed},
    }
    (project / "docker-compose.swarm.yml").write_text(json.dumps(swarm_file, indent=2))
    manager = docker("info", "--format", "{{.Swarm.NodeID}}").stdout.strip()
    docker("node", "update", "--label-add", "exports=shared", manager)


def stack_objects() -> dict[str, list[str]]:
    """What of the stack still exists: services, secrets, networks, containers."""
    listed = {
        "services": docker("service", "ls", "-q", "--filter", NAMESPACE).stdout.split(),
        "secrets": docker("secret", "ls", "-q", "--filter", NAMESPACE).stdout.split(),
        "networks": docker("network", "ls", "-q", "--filter", NAMESPACE).stdout.split(),
        "containers": docker("ps", "-aq", "--filter", NAMESPACE).stdout.split(),
    }
    return {kind: ids for kind, ids in listed.items() if ids}


def remove_stack() -> None:
    """``docker stack rm``, polled until nothing of it is left; then its volumes."""
    docker("stack", "rm", STACK, check=False)
    wait_for(lambda: not stack_objects(), 120, f"stack {STACK} gone (left: {stack_objects()})")
    volumes = docker("volume", "ls", "-q", "--filter", NAMESPACE).stdout.split()
    if volumes:
        docker("volume", "rm", *volumes)


def service(name: str) -> dict:
    return json.loads(docker("service", "inspect", f"{STACK}_{name}").stdout)[0]


def tasks(name: str) -> list[dict]:
    ids = docker("service", "ps", "-q", "--no-trunc", f"{STACK}_{name}").stdout.split()
    return json.loads(docker("inspect", *ids).stdout)


def healthy_replicas(name: str) -> int:
    """Running tasks of the service's current image whose containers pass their healthcheck."""
    image = service(name)["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"]
    count = 0
    for task in tasks(name):
        if task["DesiredState"] != "running" or task["Status"]["State"] != "running":
            continue
        if task["Spec"]["ContainerSpec"]["Image"] != image:
            continue
        count += container_health(task["Status"]["ContainerStatus"]["ContainerID"]) == "healthy"
    return count


def container_health(container: str) -> str:
    """The container's health, asked of the engine that runs it: this one or the second node."""
    for engine in (docker, swarm_node.node_docker):
        result = engine("inspect", "--format", "{{.State.Health.Status}}", container, check=False)
        if result.returncode == 0:
            return result.stdout.strip()
    return ""


def running_on(node: str) -> set[str]:
    """The IDs of the services with a task meant to run on ``node``."""
    ids = docker("node", "ps", node, "-q", "--filter", "desired-state=running").stdout.split()
    return {task["ServiceID"] for task in json.loads(docker("inspect", *ids).stdout)} if ids else set()


def service_id(name: str) -> str:
    return service(name)["ID"]


def admin_token(project: Path) -> str:
    boot = json.loads((project / ".stackplate" / "boot.json").read_text())
    return login(FRONTEND, boot["admin"]["email"], boot["admin"]["password"])


class Load:
    """Steady GET /api/v1/users through the frontend from a few threads; counts what failed.

    A request is retried ``retries`` times before it counts as failed (each
    retry is counted too). Each request is a new connection, as browsers'
    first requests are.
    """

    def __init__(self, token: str, rate: float = 50, threads: int = 4, retries: int = 0) -> None:
        self.token, self.interval, self.retries = token, threads / rate, retries
        self.ok, self.retried, self.failed = 0, 0, []
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._loop, daemon=True) for _ in range(threads)]

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(30)

    def _loop(self) -> None:
        next_at = time.monotonic()
        while not self.stop.is_set():
            self._one()
            next_at += self.interval
            self.stop.wait(max(0.0, next_at - time.monotonic()))  # pacing: the next request's slot

    def _one(self) -> None:
        for attempt in range(self.retries + 1):
            try:
                call(f"{FRONTEND}/api/v1/users?limit=20", token=self.token)
            except Exception as error:  # refused, reset, cut short (IncompleteRead), an error status
                with self.lock:
                    if attempt == self.retries:
                        self.failed.append(repr(error))
                    else:
                        self.retried += 1
                continue
            with self.lock:
                self.ok += 1
            return


# --------------------------------------------------------------------------- tests


def test_the_stack_runs_healthy_with_its_migrations_run_once(stack) -> None:
    for name, replicas in {
        "api": 1,
        "worker": 2,
        "frontend": 1,
        "postgres": 1,
        "redis": 1,
        "rabbitmq": 1,
    }.items():
        assert healthy_replicas(name) == replicas, name
    migrations = [task["Status"]["State"] for task in tasks("api-migrate")]
    assert migrations == ["complete"], migrations
    # The replicas only serve (the image's default command would migrate first).
    assert service("api")["Spec"]["TaskTemplate"]["ContainerSpec"]["Args"] == ["python", "-m", "app"]
    # Each secret of the production files is a Swarm secret, named after its content's hash too.
    secrets = docker("secret", "ls", "--filter", NAMESPACE, "--format", "{{.Name}}").stdout.split()
    declared = ComposeProject(stack, production=True).config()["secrets"]
    assert sorted(name.rsplit("-", 1)[0] for name in secrets) == sorted(f"{STACK}_{n}" for n in declared)


def test_the_e2e_suite_passes_and_an_export_is_done_through_the_frontend(stack, e2e_venv, tmp_path) -> None:
    run_e2e_suite(stack, "frontend", REPO / "test-results" / "e2e" / "engine-swarm", e2e_venv, tmp_path)
    token = admin_token(stack)
    job = json.loads(call(f"{FRONTEND}/api/v1/exports", "POST", {"format": "csv"}, token))
    wait_for(
        lambda: json.loads(call(f"{FRONTEND}/api/v1/exports/{job['id']}", token=token))["status"] == "done",
        60,
        "the export job done",
    )


def test_the_api_and_the_worker_scale_to_three(stack) -> None:
    docker("service", "scale", "--detach", f"{STACK}_api=3", f"{STACK}_worker=3")
    for name in ("api", "worker"):
        wait_for(lambda name=name: healthy_replicas(name) == 3, 120, f"3 healthy {name} replicas")


def test_a_rolling_update_of_the_api_under_load_fails_no_request(stack) -> None:
    route = stack / "services" / "api" / "app" / "api" / "routes" / "health.py"
    route.write_text(route.read_text() + "\n# A changed build: the rolling update's new image.\n")
    before = len(tasks("api-migrate"))
    with Load(admin_token(stack)) as load:
        deploy(stack, "--service", "api", tag="v2")
    assert load.failed == [] and load.retried == 0, (load.failed[:5], len(load.failed))
    assert load.ok > 200, load.ok
    assert service("api")["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"] == "localhost/sp-swarm-api:v2"
    assert service("api")["UpdateStatus"]["State"] == "completed", service("api")["UpdateStatus"]
    assert healthy_replicas("api") == 3
    # Once for the rollout: one more migration task, and it completed.
    migrations = tasks("api-migrate")
    assert len(migrations) == before + 1, migrations
    newest = max(migrations, key=lambda task: task["CreatedAt"])
    assert newest["Status"]["State"] == "complete", newest["Status"]
    print(f"rolling update under load: {load.ok} requests answered, {len(load.failed)} failed")


def test_a_killed_api_task_costs_no_request_more_than_one_retry(stack) -> None:
    running = [
        t for t in tasks("api") if t["DesiredState"] == "running" and t["Status"]["State"] == "running"
    ]
    victim = running[0]["Status"]["ContainerStatus"]["ContainerID"]
    with Load(admin_token(stack), retries=1) as load:
        wait_for(lambda: load.ok > 50, 30, "the load running")
        docker("kill", victim)
        wait_for(lambda: healthy_replicas("api") == 3 and load.ok > 500, 120, "the API back at 3 replicas")
    assert load.failed == [], (load.failed[:5], len(load.failed))
    print(f"killed API task: {load.ok} requests answered, {load.retried} retried once, none failed")


@pytest.fixture(scope="module")
def second_node(stack, tmp_path_factory):
    """A second engine joined as a worker node, with the images of the services it may run."""
    address = docker("info", "--format", "{{.Swarm.NodeAddr}}").stdout.strip()
    if address != swarm_node.HOST_ADDRESS:
        pytest.fail(
            f"this engine was a swarm already (advertising {address}): a second node joins only a swarm "
            "this module makes; run `docker swarm leave --force` first"
        )
    data_root = tmp_path_factory.mktemp("second-node")
    node = ""
    try:
        swarm_node.start_engine(data_root)
        # What a registry would do between real hosts: the images of every service not
        # pinned to the manager (those keep their data there) go to the new node, before
        # it joins (the frontend's global mode starts a task there at once).
        swarm_node.copy_images(sorted({image(name) for name in ("api", "worker", "frontend")}))
        node = swarm_node.join(docker("swarm", "join-token", "-q", "worker").stdout.strip())
        docker("node", "update", "--label-add", "exports=shared", node)
        yield node
    finally:
        swarm_node.remove(data_root)
        if node:
            docker("node", "rm", "--force", node, check=False)


def image(name: str) -> str:
    return service(name)["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"].split("@")[0]


def test_replicas_on_a_second_node_serve_over_the_overlay_network(stack, second_node) -> None:
    docker("service", "scale", "--detach", f"{STACK}_api=4", f"{STACK}_worker=4")
    wanted = {service_id(name) for name in ("api", "worker", "frontend")}
    wait_for(
        lambda: (
            wanted <= running_on(second_node)
            and healthy_replicas("api") == 4
            and healthy_replicas("worker") == 4
            and healthy_replicas("frontend") == 2  # global: one per node
        ),
        180,
        "API, worker and frontend replicas healthy on the second node too",
    )
    # The second node's frontend serves, and the manager's reaches the second node's API replica.
    token = admin_token(stack)
    second_frontend = FRONTEND.replace("127.0.0.1", swarm_node.NODE_ADDRESS)
    assert json.loads(call(f"{second_frontend}/api/v1/users?limit=1", token=token))["items"]
    with Load(token) as load:
        wait_for(
            lambda: served_on_second_node() > 0, 60, "a request through 127.0.0.1 served on the second node"
        )
    assert load.failed == [], load.failed[:5]


def served_on_second_node() -> int:
    """How many GET /api/v1/users the API replicas on the second node have logged."""
    ids = swarm_node.node_docker("ps", "-q", "--filter", f"label=com.docker.swarm.service.name={STACK}_api")
    served = 0
    for container in ids.stdout.split():
        logs = swarm_node.node_docker("logs", container)
        served += sum(line.get("path") == "/api/v1/users" for line in json_lines(logs.stdout + logs.stderr))
    return served


def test_draining_the_second_node_moves_its_tasks_and_the_stack_keeps_serving(stack, second_node) -> None:
    with Load(admin_token(stack), retries=1) as load:
        wait_for(lambda: load.ok > 50, 30, "the load running")
        docker("node", "update", "--availability", "drain", second_node)
        wait_for(
            lambda: (
                not running_on(second_node)
                and healthy_replicas("api") == 4
                and healthy_replicas("worker") == 4
            ),
            180,
            "every task off the drained node and the API and worker back at 4 replicas",
        )
        moved = load.ok
        wait_for(lambda: load.ok > moved + 100, 30, "the load served after the move")
    assert load.failed == [], (load.failed[:5], len(load.failed))
    print(f"drained node: {load.ok} requests answered, {load.retried} retried once, none failed")


def test_stack_rm_leaves_no_service_secret_or_network(stack) -> None:
    remove_stack()
    assert stack_objects() == {}
