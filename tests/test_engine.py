"""The rendered stack on a real Docker engine: every image built, the compose files booted, a browser drives it.

No registry answers here, so upstream images are stand-ins that ``stackplate
standins`` builds (Debian packages, official Node and uv binaries from registry
packages); each is labelled as one. Ollama has no stand-in: the boots leave it
out (``--leave-out``).
Each boot is the real ``stackplate boot --engine docker`` command, stopped with
SIGTERM; afterwards no container, network or anonymous volume of it remains.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import redis
from apiclient import call, login
from booting import run_e2e_suite, stackplate_boot
from conftest import HOST_PORTS, REPO, render
from engine import (
    LEAVE_OUT_OPTIONS,
    anonymous_volumes,
    compose_name,
    engine_or_fail,
    ensure_stand_ins,
    json_lines,
    leftovers,
    own_network,
    remove_project,
    stackplate,
    wait_for,
)
from matrix import MATRIX

from stackplate.compose_boot import ComposeProject
from stackplate.engine import STAND_IN_LABEL, STANDS_FOR_LABEL
from stackplate.standins import Outcome, _ensure_one, tool_rows
from stackplate.standins.debian import DebianRoots
from stackplate.standins.images import recipe_for
from stackplate.standins.recipe import Reference
from stackplate.standins.references import ImageUse, images_of

pytestmark = [pytest.mark.engine, pytest.mark.slow, HOST_PORTS]


@pytest.fixture(scope="module")
def engine():
    return engine_or_fail()


@pytest.fixture(scope="module")
def defaults(engine, template_copy, tmp_path_factory):
    """The default project (its own compose name), with its upstream images at hand."""
    project = render(
        template_copy, tmp_path_factory.mktemp("engine") / "defaults", own_network("sp-defaults")
    )
    ensure_stand_ins(project)
    yield project
    remove_project(project)
    assert leftovers(engine, compose_name(project)) == {"containers": [], "networks": [], "volumes": []}


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read()


# --------------------------------------------------------------------------- stand-ins


def test_stand_ins_are_labelled_with_what_they_contain(engine, defaults) -> None:
    for use in images_of(defaults):
        if recipe_for(Reference.parse(use.reference).repository) is None:
            continue
        labels = engine.images.get(use.reference).labels
        assert labels[STAND_IN_LABEL] == "true" and labels[STANDS_FOR_LABEL] == use.reference, labels
        assert labels["org.stackplate.contents"], labels
    listed = stackplate("standins", "--list", str(defaults))
    assert listed.returncode == 0, listed.stderr
    assert "postgres:17.6-trixie | Debian trixie" in listed.stdout, listed.stdout


def test_every_tool_our_files_run_is_in_the_real_image(defaults) -> None:
    """A stand-in must not pass a healthcheck that the real image would fail."""
    rows = [row for row in tool_rows(defaults) if recipe_for(Reference.parse(row[0]).repository)]
    assert rows, "no tools found"
    unknown = [row for row in rows if row[2].startswith("NOT KNOWN")]
    assert not unknown, unknown


def test_an_image_that_is_not_a_stand_in_is_never_replaced(engine, tmp_path) -> None:
    reference = "redis:0.0.0-not-a-stand-in"
    (tmp_path / "Dockerfile").write_text("FROM scratch\nLABEL purpose=test\n")
    engine.images.build(path=str(tmp_path), tag=reference, rm=True)
    try:
        before = engine.images.get(reference).id
        outcome = _ensure_one(ImageUse(reference), engine, DebianRoots(engine), print)
        assert outcome == Outcome(reference, "present", "the real image (not a stand-in): left as it is")
        assert engine.images.get(reference).id == before
    finally:
        engine.images.remove(reference, force=True)


# --------------------------------------------------------------------------- development


def services_state(project: Path, production: bool) -> dict[str, list[tuple[str, str]]]:
    """service -> [(state, health)] for each of its containers."""
    found: dict[str, list[tuple[str, str]]] = {}
    for container in ComposeProject(project, production).containers():
        found.setdefault(container["Service"], []).append((container["State"], container.get("Health", "")))
    return found


def test_development_boot_passes_the_browser_suite_and_reloads_code(
    engine, defaults, e2e_venv, tmp_path
) -> None:
    volumes_before = anonymous_volumes(engine)
    log = tmp_path / "boot.log"
    with stackplate_boot(defaults, log, "--engine", "docker", *LEAVE_OUT_OPTIONS) as booted:
        states = services_state(defaults, production=False)
        expected = {
            "api",
            "worker",
            "frontend",
            "postgres",
            "redis",
            "rabbitmq",
            "pgadmin",
            "redis-commander",
        }
        assert set(states) == expected, states
        assert all(state == [("running", "healthy")] for state in states.values()), states
        assert_backing_ports_on_loopback_only(defaults)
        assert_redis_refuses_anonymous_clients(defaults, booted)
        assert_frontend_holds_no_secret(engine, defaults, production=False)
        assert_development_tools_work(defaults, booted)
        run_e2e_suite(
            defaults, "frontend", REPO / "test-results" / "e2e" / "engine-development", e2e_venv, tmp_path
        )
        api, frontend = booted["services"]["api"]["url"], booted["services"]["frontend"]["url"]
        assert_hot_reload(defaults, api, frontend)
    printed = log.read_text()
    assert "leaving out ollama" in printed, printed
    name = compose_name(defaults)
    left = leftovers(engine, name)
    assert left["containers"] == [] and left["networks"] == [], left
    assert anonymous_volumes(engine) <= volumes_before, "anonymous volumes left behind"
    assert set(left["volumes"]) == {
        f"{name}_{v}" for v in ("exports-data", "postgres-data", "redis-data", "rabbitmq-data")
    }


def assert_development_tools_work(project: Path, booted: dict) -> None:
    """pgAdmin has loaded the project's server list; Redis Commander reads what is in Redis."""
    compose = ComposeProject(project, production=False)
    # pgAdmin's own command line, at the path the real image has it (/venv, /pgadmin4).
    dump = "/venv/bin/python3 /pgadmin4/setup.py dump-servers /tmp/servers.json >&2 && cat /tmp/servers.json"
    dumped = compose.run("exec", "-T", "pgadmin", "sh", "-c", dump, check=False)
    assert dumped.returncode == 0, dumped.stderr
    expected = json.loads((project / "config" / "pgadmin" / "servers.json").read_text())["Servers"]["1"]
    server = json.loads(dumped.stdout)["Servers"]["1"]
    assert (server["Host"], server["Port"], server["Username"]) == (
        expected["Host"], expected["Port"], expected["Username"]
    ), server  # fmt: skip
    written = compose.run("exec", "-T", "redis", "sh", "-c", redis_cli("set stackplate:probe from-the-test"))
    assert written.returncode == 0, written.stderr
    commander = booted["tools"]["redis-commander"]
    details = json.loads(get(f"{commander}/apiv2/key/R:redis:6379:0/stackplate:probe"))
    assert details["value"] == "from-the-test", details


def redis_cli(command: str) -> str:
    """A shell line that runs redis-cli in the redis container with the password from its secret."""
    return f'REDISCLI_AUTH="$(cat /run/secrets/redis_password)" redis-cli {command}'


def secret_values(project: Path) -> set[str]:
    """Every secret of the project: config/secrets/* (and their values inside the config files)."""
    values = set()
    for path in (project / "config" / "secrets").iterdir():
        text = path.read_text().strip()
        values.add(text)
        values.update(line.split("=", 1)[1].strip() for line in text.splitlines() if "_pass =" in line)
    return {value for value in values if len(value) >= 16}


def assert_frontend_holds_no_secret(engine, project: Path, production: bool) -> None:
    """The internet-facing nginx container has no secret in its environment and no secret mounted."""
    settings = {
        line.split("=", 1)[1]
        for line in (project / "config" / ".env").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    }
    for container in ComposeProject(project, production).containers():
        if container["Service"] != "frontend":
            continue
        attrs = engine.containers.get(container["ID"]).attrs
        env = "\n".join(attrs["Config"]["Env"])
        leaked = [value for value in secret_values(project) if value in env]
        assert leaked == [], f"frontend environment holds secrets: {len(leaked)}"
        # Not even the settings file: only what nginx needs.
        assert not any(f"={value}" in env for value in settings if len(value) > 8), env
        assert not [m for m in attrs["Mounts"] if "/run/secrets" in m["Destination"]], attrs["Mounts"]


def assert_backing_ports_on_loopback_only(project: Path) -> None:
    """Development publishes the backing services and tools on 127.0.0.1, not on every interface."""
    for service in ("postgres", "redis", "rabbitmq", "pgadmin", "redis-commander"):
        ports = ComposeProject(project, production=False).config()["services"][service]["ports"]
        assert ports and all(port.get("host_ip") == "127.0.0.1" for port in ports), (service, ports)
    for container in ComposeProject(project, production=False).containers():
        if container["Service"] in ("postgres", "redis", "rabbitmq", "pgadmin", "redis-commander"):
            bound = {p["URL"] for p in container["Publishers"] if p.get("PublishedPort")}
            assert bound == {"127.0.0.1"}, (container["Service"], container["Publishers"])


def assert_redis_refuses_anonymous_clients(project: Path, booted: dict) -> None:
    """Redis answers only with its password: from the host port and inside its own network."""
    url = booted["backing"]["redis"]
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    anonymous = redis.Redis(host="127.0.0.1", port=port)
    try:
        with pytest.raises(redis.AuthenticationError):
            anonymous.ping()
    finally:
        anonymous.close()
    with redis.Redis.from_url(url) as client:
        assert client.ping()
    compose = ComposeProject(project, production=False)
    refused = compose.run("exec", "-T", "redis", "redis-cli", "ping", check=False)
    assert "NOAUTH" in refused.stdout + refused.stderr, refused


def assert_hot_reload(project: Path, api: str, frontend: str) -> None:
    """A changed API route, frontend module and worker module each take effect within 10 s, no restart."""
    services = project / "services"
    route = services / "api" / "app" / "api" / "routes" / "health.py"
    route.write_text(
        route.read_text() + '\n\n@router.get("/hot-reload-probe", include_in_schema=False)\n'
        'async def hot_reload_probe() -> dict[str, str]:\n    return {"reloaded": "yes"}\n'
    )
    wait_for(lambda: b"reloaded" in get(f"{api}/hot-reload-probe"), 10, "the API's changed route")

    page = services / "frontend" / "src" / "pages" / "NotFoundPage.tsx"
    page.write_text(page.read_text() + "\nexport const hotReloadProbe = 'frontend-reloaded';\n")
    wait_for(
        lambda: b"frontend-reloaded" in get(f"{frontend}/src/pages/NotFoundPage.tsx"),
        10,
        "the Vite dev server's changed module",
    )

    health = services / "worker" / "src" / "health.js"
    health.write_text(
        health.read_text().replace('status: healthy ? "ok"', 'status: healthy ? "ok, reloaded"')
    )
    compose = ComposeProject(project, production=False)
    probe = "fetch('http://127.0.0.1:9090/health').then((r) => r.text()).then(console.log)"
    wait_for(
        lambda: "reloaded" in compose.run("exec", "-T", "worker", "node", "-e", probe, check=False).stdout,
        10,
        "the worker's changed module (node --watch)",
    )


def test_a_service_that_fails_its_healthcheck_ends_the_boot_with_its_name_and_log(
    engine, template_copy, tmp_path
) -> None:
    answers = {**MATRIX["minimal"], **own_network("sp-broken", subnet=True)}
    project = render(template_copy, tmp_path / "broken", answers)
    main = project / "services" / "api" / "app" / "main.py"
    main.write_text(main.read_text() + '\nraise RuntimeError("broken on purpose")\n')
    ensure_stand_ins(project)
    try:
        result = stackplate("boot", "--engine", "docker", "--wait-timeout", "45", str(project), timeout=600)
    finally:
        remove_project(project)
    assert result.returncode == 1, result.stderr
    problem = result.stderr.split("stackplate: ", 1)[-1]
    assert problem.startswith("api is ") and "broken on purpose" in problem, result.stderr
    assert not (project / ".stackplate" / "boot.json").exists()
    assert leftovers(engine, "sp-broken") == {"containers": [], "networks": [], "volumes": []}


# --------------------------------------------------------------------------- production


def test_production_boot_publishes_only_the_app_ports_runs_as_non_root_and_scales_workers(
    engine, defaults, e2e_venv, tmp_path
) -> None:
    with stackplate_boot(
        defaults, tmp_path / "boot.log", "--engine", "docker", "--production", *LEAVE_OUT_OPTIONS
    ):
        compose = ComposeProject(defaults, production=True)
        containers = compose.containers()
        published = {
            c["Service"] for c in containers for p in c.get("Publishers") or [] if p.get("PublishedPort")
        }
        assert published == {"api", "frontend"}, containers
        for container in containers:
            uid = process_uid(engine.containers.get(container["ID"]).attrs["State"]["Pid"])
            assert uid != 0, f"{container['Service']} runs as root"
        workers = [c for c in containers if c["Service"] == "worker"]
        assert len(workers) == 2, workers
        assert_frontend_holds_no_secret(engine, defaults, production=True)
        run_e2e_suite(
            defaults, "frontend", REPO / "test-results" / "e2e" / "engine-production", e2e_venv, tmp_path
        )
        export_jobs(defaults, 12)
        # Each worker logs the job it handles (JSON lines with a job_id): both took some.
        wait_for(
            lambda: all(
                any("job_id" in line for line in json_lines(engine.containers.get(w["ID"]).logs().decode()))
                for w in workers
            ),
            60,
            "both worker replicas handling jobs",
        )
        assert_apps_connect_as_their_own_roles(compose)
        assert_worker_role_reads_only_what_it_needs(compose)


def superuser_sql(compose: ComposeProject, sql: str, database: str = "api") -> tuple[int, str]:
    """Run SQL with psql as the superuser in the postgres container: (exit code, output)."""
    result = compose.run(
        "exec", "-T", "postgres", "psql", "-U", "app", "-d", database, "-AtX", "-v", "ON_ERROR_STOP=1",
        "-c", sql, check=False,
    )  # fmt: skip
    return result.returncode, (result.stdout + result.stderr).strip()


def assert_apps_connect_as_their_own_roles(compose: ComposeProject) -> None:
    """The roles the running API and workers are logged in as: their own, none a superuser."""
    code, output = superuser_sql(
        compose,
        "SELECT DISTINCT a.usename || ':' || r.rolsuper FROM pg_stat_activity a "
        "JOIN pg_roles r ON r.rolname = a.usename WHERE a.datname = 'api' AND a.pid <> pg_backend_pid()",
    )
    assert code == 0, output
    assert set(output.splitlines()) == {"api_user:false", "worker_user:false"}, output
    code, output = superuser_sql(compose, "SELECT rolname FROM pg_roles WHERE rolsuper ORDER BY 1")
    assert output.splitlines() == ["app"], output  # only the administrators' superuser


def assert_worker_role_reads_only_what_it_needs(compose: ComposeProject) -> None:
    """The worker's role reads users without hashed_password and export_jobs; refresh_tokens is closed."""
    allowed = (
        "SELECT count(email) FROM users",
        "SELECT count(*) FROM export_jobs",
        "UPDATE export_jobs SET attempts = attempts WHERE false",
        "DELETE FROM export_jobs WHERE false",
    )
    for sql in allowed:
        code, output = superuser_sql(compose, f"SET ROLE worker_user; {sql}")
        assert code == 0, (sql, output)
    denied = (
        "SELECT hashed_password FROM users",
        "SELECT * FROM users",
        "UPDATE users SET role = 'admin' WHERE false",
        "SELECT count(*) FROM refresh_tokens",
        "INSERT INTO export_jobs (id, owner_id, format) VALUES (gen_random_uuid(), gen_random_uuid(), 'csv')",
    )
    for sql in denied:
        code, output = superuser_sql(compose, f"SET ROLE worker_user; {sql}")
        assert code != 0 and "permission denied" in output, (sql, output)


def login_status(base: str, email: str, forged: str) -> int:
    """The status of a failed login at ``base`` that claims to come from ``forged`` (X-Forwarded-For)."""
    body = json.dumps({"email": email, "password": "not the password"}).encode()
    headers = {"content-type": "application/json", "x-forwarded-for": forged}
    request = urllib.request.Request(f"{base}/api/v1/auth/login", body, headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_forwarded_for_is_believed_only_from_the_apis_own_frontends(engine, defaults, tmp_path) -> None:
    """TRUSTED_PROXIES: a forged X-Forwarded-For at the API's port changes nothing (the key is the
    real peer); through the frontend the key is the frontend's client, not the frontend itself.
    Checked with the login limit (LOGIN_RATE_LIMIT, 5 a minute per client and e-mail)."""
    with stackplate_boot(
        defaults, tmp_path / "boot.log", "--engine", "docker", "--production", *LEAVE_OUT_OPTIONS
    ) as booted:
        api, frontend = booted["services"]["api"]["url"], booted["services"]["frontend"]["url"]
        direct = [login_status(api, "direct@example.com", f"203.0.113.{n}") for n in range(6)]
        assert direct == [401] * 5 + [429], direct
        proxied = [login_status(frontend, "proxied@example.com", f"198.51.100.{n}") for n in range(6)]
        assert proxied == [401] * 5 + [429], proxied
        # Another client of the same frontend (a container on the network) has a count of its own.
        probe = (
            "fetch('http://frontend:3000/api/v1/auth/login', {method: 'POST', headers: "
            "{'content-type': 'application/json', 'x-forwarded-for': '198.51.100.1'}, body: JSON.stringify("
            "{email: 'proxied@example.com', password: 'not the password'})}).then((r) => console.log(r.status))"
        )
        other = ComposeProject(defaults, production=True).run("exec", "-T", "worker", "node", "-e", probe)
        assert other.stdout.strip() == "401", other.stdout + other.stderr


def process_uid(pid: int) -> int:
    """The real uid of a process on this host (a container's main process)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError(f"no Uid line for {pid}")


def export_jobs(project: Path, count: int, deadline: float = 120.0) -> None:
    """Queue ``count`` export jobs as the first admin, through the API's published port.

    A user may have only EXPORT_MAX_ACTIVE_PER_USER jobs queued or running at once:
    when the API answers 429, wait (polling, with a deadline) until the workers
    have finished one, then queue the next.
    """
    booted = json.loads((project / ".stackplate" / "boot.json").read_text())
    api = booted["services"]["api"]["url"]
    token = login(api, booted["admin"]["email"], booted["admin"]["password"])
    queued, give_up = 0, time.monotonic() + deadline
    while queued < count:
        try:
            call(f"{api}/api/v1/exports", "POST", {"format": "csv"}, token)
            queued += 1
        except urllib.error.HTTPError as error:
            if error.code != 429 or time.monotonic() > give_up:
                raise
            time.sleep(0.2)  # a poll interval: the next attempt checks again


# --------------------------------------------------------------------------- renamed services


def test_renamed_services_on_other_ports_boot_and_pass_the_browser_suite(
    engine, template_copy, tmp_path, e2e_venv
) -> None:
    answers = {**MATRIX["two-apis-two-workers"], "project_slug": "sp-billing"}
    project = render(template_copy, tmp_path / "billing", answers)
    ensure_stand_ins(project)
    try:
        with stackplate_boot(
            project, tmp_path / "boot.log", "--engine", "docker", *LEAVE_OUT_OPTIONS
        ) as booted:
            assert set(booted["services"]) == {s["name"] for s in answers["services"]}
            assert booted["services"]["portal"]["url"] == "http://127.0.0.1:3100"
            run_e2e_suite(
                project, "portal", REPO / "test-results" / "e2e" / "engine-billing", e2e_venv, tmp_path
            )
    finally:
        remove_project(project)
    assert leftovers(engine, "sp-billing") == {"containers": [], "networks": [], "volumes": []}
