"""The rendered project's docs (services, operations, getting started, ADR) and its backup scripts.

The docs must describe what the render really holds: one page per app service
(and per enabled backing service) naming its real ports, queues and the
environment Compose gives it, with every relative link leading to a file. The
backup scripts run against the throwaway PostgreSQL and Redis: a dump restores
into a fresh database with equal rows, and a Redis snapshot is a real RDB file
that a fresh redis-server (and restore-redis.sh) loads.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from itertools import pairwise
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest
import yaml
from conftest import require_tool
from matrix import MATRIX, enabled, services_of

from stackplate import markers
from stackplate.answers import app_services
from stackplate.backing import create_database, find_binary, free_port
from stackplate.project import marker_files

pytestmark = pytest.mark.backing

RENDERS = ("defaults", "two-apis-two-workers", "minimal")
# The folders of docs/ this module checks (docs/architecture/ is checked elsewhere).
DOC_FOLDERS = ("services", "operations", "getting-started", "adr")
OPERATIONS = ("deployment", "monitoring", "backup-restore", "troubleshooting")
GETTING_STARTED = ("workspace-setup", "adding-a-service", "development-workflow")
OVERVIEW = "docs/architecture/overview.md"
SCRIPTS = ("backup-postgres.sh", "restore-postgres.sh", "backup-redis.sh", "restore-redis.sh")

UNRENDERED = re.compile(r"(?<!\$)\{\{|\{%|%\}|\{#")
# Words that mean a page was not finished, and what a template leaves when a value is missing.
UNFINISHED = re.compile(r"\b(TODO|TBD|FIXME|XXX|lorem|ipsum|placeholder|CHANGEME)\b", re.IGNORECASE)
MISSING_VALUE = re.compile(r"\bNone\b|(?<!`)``(?!`)|\(\s*\)")
INLINE_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?\s*\)")
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)


# ------------------------------------------------------------------ renders


@pytest.fixture(scope="module")
def render(matrix_render) -> Callable[[str], Path]:
    """The shared render of a matrix entry (read-only); return the project folder."""
    return matrix_render


def doc_files(project: Path) -> list[Path]:
    return sorted(p for folder in DOC_FOLDERS for p in (project / "docs" / folder).rglob("*.md"))


def backing_on(answers: dict) -> list[str]:
    return [name for name in ("postgres", "redis", "rabbitmq") if enabled(answers, name)]


def compose(project: Path, name: str = "docker-compose.yml") -> dict:
    return yaml.safe_load((project / name).read_text())


def prose(text: str) -> str:
    """The text without its fenced code blocks (links in code are not links)."""
    return FENCE.sub("", text)


# ---------------------------------------------------------------- the pages


@pytest.mark.parametrize("name", RENDERS)
def test_every_doc_page_is_rendered(render, name) -> None:
    project = render(name)
    answers = MATRIX[name]
    expected = {f"{s['name']}.md" for s in services_of(answers)} | {f"{b}.md" for b in backing_on(answers)}
    assert {p.name for p in (project / "docs" / "services").iterdir()} == expected
    for page in OPERATIONS:
        assert (project / "docs" / "operations" / f"{page}.md").is_file()
    for page in GETTING_STARTED:
        assert (project / "docs" / "getting-started" / f"{page}.md").is_file()
    assert (project / "docs" / "adr" / "0001-record-architecture-decisions.md").is_file()


@pytest.mark.parametrize("name", RENDERS)
def test_pages_are_finished(render, name) -> None:
    project = render(name)
    problems = []
    for path in doc_files(project):
        text = path.read_text()
        where = path.relative_to(project)
        if len(text) < 1500:
            problems.append(f"{where}: only {len(text)} characters")
        if not text.startswith("# "):
            problems.append(f"{where}: does not start with its title")
        for regex, part in ((UNRENDERED, text), (UNFINISHED, text), (MISSING_VALUE, prose(text))):
            found = regex.search(part)
            if found:
                problems.append(
                    f"{where}: {found.group(0)!r} in {part[max(0, found.start() - 40) : found.end() + 40]!r}"
                )
        if "\n\n\n" in text:
            problems.append(f"{where}: two blank lines in a row")
        fences = [line for line in text.splitlines() if line.lstrip().startswith("```")]
        if len(fences) % 2:
            problems.append(f"{where}: a code block is not closed")
        lines = prose(text).splitlines()
        for before, line in pairwise(lines):
            if line.startswith("|") and before.strip() and not before.startswith("|"):
                problems.append(f"{where}: a table right after {before!r} (a blank line is needed)")
    assert problems == []


@pytest.mark.parametrize("name", RENDERS)
def test_service_pages_name_what_compose_runs(render, name) -> None:
    """Ports, queues, database and every variable Compose sets, with its value."""
    project = render(name)
    answers = MATRIX[name]
    base = compose(project)["services"]
    development = compose(project, "docker-compose.development.yml")["services"]
    problems = []
    for svc in app_services(services_of(answers)):
        text = (project / "docs" / "services" / f"{svc['name']}.md").read_text()
        needed = [f"services/{svc['name']}/", f"../../services/{svc['name']}/README.md"]
        for key, value in base[svc["name"]]["environment"].items():
            needed.append(f"`{key}`")
            if value:
                needed.append(str(value))
        needed += development[svc["name"]].get("ports", [])
        if svc["kind"] == "fastapi":
            needed += [f"`{svc['port']}`", "/api/v1/health", "/api/v1/ready", f"`{svc['database']}`"]
            needed += ["JWT_SECRET_KEY", "FIRST_ADMIN_EMAIL", "LOGIN_RATE_LIMIT", "GENERAL_RATE_LIMIT"]
            if enabled(answers, "rabbitmq"):
                needed += [f"`{svc['export_queue']}`", f"`{svc['export_queue']}.dead`"]
        elif svc["kind"] == "node-worker":
            api = svc["api"]
            needed += [
                f"`{api}.exports`",
                f"`{api}.exports.dead`",
                f"`{api}.events`",
                "`9090`",
                f"({api}.md)",
            ]
            needed += ["WORKER_PREFETCH", "MAX_ATTEMPTS", "RABBITMQ_DEFAULT_USER"]
        else:
            needed += [f"`{svc['port']}`", "/health", f"({svc['api']}.md)", "VITE_APP_TITLE"]
        problems += [f"{svc['name']}.md lacks {item!r}" for item in needed if item not in text]
    assert problems == []


@pytest.mark.parametrize("name", RENDERS)
def test_backing_pages_name_ports_volumes_and_topology(render, name) -> None:
    project = render(name)
    answers = MATRIX[name]
    development = compose(project, "docker-compose.development.yml")["services"]
    apis = [s for s in app_services(services_of(answers)) if s["kind"] == "fastapi"]
    problems = []
    for backing in backing_on(answers):
        text = (project / "docs" / "services" / f"{backing}.md").read_text()
        needed = [*development[backing]["ports"], f"{backing}-data"]
        if backing == "postgres":
            needed += [f"`{api['database']}`" for api in apis]
        if backing == "redis":
            needed += [f"`{api['name']}:cache:*`" for api in apis]
        if backing == "rabbitmq":
            needed += ["RABBITMQ_DEFAULT_USER", "RABBITMQ_DEFAULT_PASS"]
            needed += [f"`{api['export_queue']}`" for api in apis] + [
                f"`{api['events_exchange']}`" for api in apis
            ]
            needed += [
                f"`{s['api']}.exports.dead`"
                for s in app_services(services_of(answers))
                if s["kind"] == "node-worker"
            ]
        problems += [f"{backing}.md lacks {item!r}" for item in needed if item not in text]
    assert problems == []


@pytest.mark.parametrize("name", RENDERS)
def test_operations_pages_cover_the_stack(render, name) -> None:
    project = render(name)
    answers = MATRIX[name]
    apps = app_services(services_of(answers))
    read = {page: (project / "docs" / "operations" / f"{page}.md").read_text() for page in OPERATIONS}
    needed = {
        "deployment": [
            "docker-compose.production.yml",
            "deploy-staging",
            "deploy-production",
            "python -m app migrate",
            "required reviewers",
            "config/.env",
            "## Kubernetes",
            "kubectl kustomize --load-restrictor LoadRestrictionsNone deploy/k8s/overlays/staging",
            "postgres.example.internal",
        ],
        "monitoring": ["/api/v1/health", "/api/v1/ready", "request_id"],
        "backup-restore": [
            "scripts/backup-postgres.sh",
            "scripts/restore-postgres.sh",
            "Restore drill",
            "BACKUP_DIR",
        ],
        "troubleshooting": [
            "429",
            "Refresh token reuse detected",
            "Migrations fail",
            "Port already in use",
            "503",
        ],
    }
    for svc in apps:
        if svc["kind"] == "node-worker":
            needed["monitoring"] += [":9090/health", f"`{svc['api']}.exports.dead`", "job_id"]
            needed["troubleshooting"].append("worker is unhealthy")
        elif svc["kind"] == "react-vite":
            needed["monitoring"].append(f"http://localhost:{svc['port']}/health")
        if svc["port"]:
            needed["deployment"].append(f"`{svc['port']}:{svc['port']}`")
    if enabled(answers, "rabbitmq"):
        needed["monitoring"].append(str(answers.get("rabbitmq_management_port", 15672)))
        needed["backup-restore"].append("export_definitions")
    if enabled(answers, "redis"):
        needed["backup-restore"] += ["scripts/backup-redis.sh", "redis-cli --rdb"]
    problems = [
        f"{page}.md lacks {item!r}"
        for page, items in needed.items()
        for item in items
        if item not in read[page]
    ]
    assert problems == []


@pytest.mark.parametrize("name", RENDERS)
def test_relative_links_lead_to_files(render, name) -> None:
    project = render(name)
    problems = []
    for path in doc_files(project):
        for link in INLINE_LINK.findall(prose(path.read_text())):
            if re.match(r"^[a-z][a-z0-9+.-]*:", link) or link.startswith("#"):
                continue  # a URL or an anchor on the same page
            target = (path.parent / link.split("#")[0]).resolve()
            # The overview is written by another part of the template: a valid target either way.
            if target.is_file() or target == (project / OVERVIEW).resolve():
                continue
            problems.append(f"{path.relative_to(project)}: {link} leads nowhere")
    assert problems == []


def test_docs_markers_are_only_the_docs_blocks(render) -> None:
    """`stackplate check` looks for marker blocks in every file: in the docs they are the generated
    blocks, all in the Markdown form, on exactly the pages scripts/docs.py writes."""
    project = render("defaults")
    found = {
        path.relative_to(project).as_posix(): {
            block.style for block in markers.parse(path.read_text()).values()
        }
        for path in marker_files(project)
        if path.suffix == ".md"
    }
    pages = ("README.md", "docs/architecture/overview.md", "docs/operations/deployment.md")
    assert found == {page: {markers.MARKDOWN} for page in pages}


# ------------------------------------------------------------------ scripts


def script_env(**settings: str) -> dict[str, str]:
    """The environment without any connection setting of the machine's own, plus ``settings``."""
    prefixes = ("PG", "POSTGRES_", "DATABASE_", "REDIS", "BACKUP_", "RABBITMQ_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    return {**env, **settings}


def run_script(project: Path, name: str, *args: str, env: dict[str, str], check: bool = True):
    done = subprocess.run(
        [str(project / "scripts" / name), *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if check:
        assert done.returncode == 0, f"{name} {args}: {done.stdout}\n{done.stderr}"
    return done


def test_scripts_are_executable_lint_clean_and_helpful(render) -> None:
    project = render("defaults")
    for name in SCRIPTS:
        script = project / "scripts" / name
        assert script.stat().st_mode & stat.S_IXUSR, f"{name} is not executable"
        text = script.read_text()
        assert text.startswith("#!/usr/bin/env bash\n") and "set -euo pipefail" in text
        # Copied verbatim, yet scanned for leftover Jinja like every file: no ${#array[@]}.
        assert not UNRENDERED.search(text), f"{name}: {UNRENDERED.search(text)}"
        done = run_script(project, name, "--help", env=script_env())
        assert done.stdout.startswith("Usage: scripts/" + name)
    minimal = render("minimal")
    assert sorted(p.name for p in (minimal / "scripts").glob("*.sh")) == sorted(SCRIPTS)
    shellcheck = require_tool("shellcheck", "apt-get install shellcheck")
    libraries = sorted((project / "scripts" / "lib").glob("*.sh"))
    assert [p.name for p in libraries] == ["common.sh", "postgres.sh", "redis.sh"]
    for library in libraries:
        assert not UNRENDERED.search(library.read_text()), f"{library.name}: leftover Jinja pattern"
    # -x: follow the libraries each script sources, so they are checked as used.
    done = subprocess.run(
        [shellcheck, "-x", *(str(project / "scripts" / n) for n in SCRIPTS), *map(str, libraries)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout


def psql(url: str, sql: str) -> str:
    done = subprocess.run(
        [
            find_binary("psql", "postgres"),
            "--no-psqlrc",
            "-X",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            url,
            "-c",
            sql,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


SEED = """
CREATE TABLE invoices (id serial PRIMARY KEY, customer text NOT NULL, total numeric(10, 2), note text);
CREATE INDEX invoices_customer ON invoices (customer);
INSERT INTO invoices (customer, total, note)
SELECT 'customer ' || n, n * 1.5, CASE WHEN n % 3 = 0 THEN NULL ELSE 'Grüße, ''quoted'' ' || n END
FROM generate_series(1, 250) AS n;
"""
ROWS = "SELECT id, customer, total, note FROM invoices ORDER BY id"


def test_postgres_backup_restores_into_a_fresh_database(render, backing, tmp_path) -> None:
    project = render("defaults")
    suffix = uuid.uuid4().hex[:8]
    source = create_database(backing.postgres, f"docs_src_{suffix}")
    psql(source, SEED)
    backups = tmp_path / "backups"

    done = run_script(
        project, "backup-postgres.sh", env=script_env(DATABASE_URL=source, BACKUP_DIR=str(backups))
    )
    dump = Path(done.stdout.strip())
    assert re.fullmatch(rf"docs_src_{suffix}-\d{{8}}T\d{{6}}Z\.dump", dump.name), dump.name
    assert dump.parent == backups and dump.read_bytes()[:5] == b"PGDMP"
    assert (backups / ".gitignore").read_text() == "*\n"
    assert stat.S_IMODE(dump.stat().st_mode) == 0o600

    target = f"docs_dst_{suffix}"
    restore_env = script_env(DATABASE_URL=backing.postgres)
    done = run_script(project, "restore-postgres.sh", "--create", str(dump), target, env=restore_env)
    assert f"restored {dump} into {target}" in done.stdout
    restored = urlsplit(backing.postgres)._replace(path=f"/{target}").geturl()
    assert psql(restored, ROWS) == psql(source, ROWS)
    assert psql(restored, "SELECT count(*) FROM invoices").strip() == "250"
    assert "invoices_customer" in psql(
        restored, "SELECT indexname FROM pg_indexes WHERE tablename = 'invoices'"
    )

    # A database that holds tables is refused, and left as it was.
    again = run_script(project, "restore-postgres.sh", str(dump), target, env=restore_env, check=False)
    assert again.returncode != 0 and "not empty" in again.stderr
    assert psql(restored, "SELECT count(*) FROM invoices").strip() == "250"


def test_postgres_backup_reads_postgres_parts_and_keeps_the_newest(render, backing, tmp_path) -> None:
    """POSTGRES_HOST/PORT/USER/PASSWORD and DATABASE_NAME, as config/.env and Compose give them."""
    project = render("defaults")
    name = f"docs_parts_{uuid.uuid4().hex[:8]}"
    psql(create_database(backing.postgres, name), "CREATE TABLE t (n int); INSERT INTO t VALUES (1), (2)")
    server = urlsplit(backing.postgres)
    env = script_env(
        POSTGRES_HOST=server.hostname or "",
        POSTGRES_PORT=str(server.port),
        POSTGRES_USER=server.username or "",
        POSTGRES_PASSWORD=server.password or "",
        DATABASE_NAME=name,
        BACKUP_DIR=str(tmp_path / "backups"),
        BACKUP_KEEP="1",
    )
    first = Path(run_script(project, "backup-postgres.sh", env=env).stdout.strip())
    second = Path(run_script(project, "backup-postgres.sh", env=env).stdout.strip())
    assert first != second and second.name > first.name
    assert sorted(p.name for p in (tmp_path / "backups").glob("*.dump")) == [second.name]


# ------------------------------------------------------------------- redis


def redis_cli(port: int, *args: str, password: str | None = None) -> str:
    env = {**os.environ, "REDISCLI_AUTH": password} if password else None
    done = subprocess.run(
        [find_binary("redis-cli", "redis"), "-h", "127.0.0.1", "-p", str(port), *args],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@contextmanager
def fresh_redis(folder: Path, *, rdb: Path | None = None, password: str | None = None) -> Iterator[int]:
    """A redis-server on a free 127.0.0.1 port (loading ``rdb``), stopped when the block ends."""
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    command = [find_binary("redis-server", "redis"), "--bind", "127.0.0.1", "--port", str(port),
               "--dir", str(folder), "--dbfilename", rdb.name if rdb else "dump.rdb",
               "--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", str(folder / "redis.log")]  # fmt: skip
    if rdb:
        shutil.copy(rdb, folder / rdb.name)
    if password:
        command += ["--requirepass", password]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            env = {**os.environ, "REDISCLI_AUTH": password} if password else None
            ping = subprocess.run(
                [find_binary("redis-cli", "redis"), "-p", str(port), "ping"],
                capture_output=True, text=True, env=env, check=False,
            )  # fmt: skip
            if ping.stdout.strip() == "PONG":
                break
            assert server.poll() is None, (folder / "redis.log").read_text()
            assert time.monotonic() < deadline, "redis-server did not answer in 20 s"
            time.sleep(0.05)
        yield port
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def seed_redis(port: int, prefix: str, password: str | None = None) -> dict[str, str]:
    """Keys of several types under ``prefix``; returns what each should read back as."""
    for i in range(120):
        redis_cli(port, "SET", f"{prefix}:k{i}", f"value {i}", password=password)
    redis_cli(port, "HSET", f"{prefix}:hash", "f", "1", "g", "two", password=password)
    redis_cli(port, "RPUSH", f"{prefix}:list", "a", "b", "c", password=password)
    redis_cli(port, "SET", f"{prefix}:ttl", "expiring", "EX", "3600", password=password)
    return read_back(port, prefix, password)


def read_back(port: int, prefix: str, password: str | None = None) -> dict[str, str]:
    keys = redis_cli(port, "--scan", "--pattern", f"{prefix}:*", password=password).split()
    values = {}
    for key in keys:
        kind = redis_cli(port, "TYPE", key, password=password)
        command = {"string": ["GET"], "hash": ["HGETALL"], "list": ["LRANGE"]}[kind]
        extra = ["0", "-1"] if kind == "list" else []
        values[key] = redis_cli(port, *command, key, *extra, password=password)
    return values


def test_redis_backup_is_an_rdb_snapshot_that_loads(render, backing, tmp_path) -> None:
    project = render("defaults")
    port, password = urlsplit(backing.redis).port, urlsplit(backing.redis).password
    assert port and password  # the throwaway server has a password, as the stack's Redis
    prefix = f"docs-{uuid.uuid4().hex[:8]}"
    expected = seed_redis(port, prefix, password)
    assert len(expected) == 123

    done = run_script(
        project, "backup-redis.sh", env=script_env(REDIS_URL=backing.redis, BACKUP_DIR=str(tmp_path / "b"))
    )
    snapshot = Path(done.stdout.strip())
    assert re.fullmatch(r"redis-\d{8}T\d{6}Z\.rdb", snapshot.name)
    data = snapshot.read_bytes()
    assert len(data) > 100 and data[:5] == b"REDIS"

    # The file is what a redis-server loads at start-up.
    with fresh_redis(tmp_path / "loaded", rdb=snapshot) as loaded:
        assert read_back(loaded, prefix) == expected
        assert 0 < int(redis_cli(loaded, "TTL", f"{prefix}:ttl")) <= 3600


def test_restore_redis_loads_a_snapshot_into_a_running_server(render, tmp_path) -> None:
    project = render("defaults")
    prefix = "restore"
    password = "p@ss/word"  # percent-encoded in the URL
    with fresh_redis(tmp_path / "source") as source:
        expected = seed_redis(source, prefix)
        redis_cli(source, "-n", "3", "SET", f"{prefix}:in-db3", "three")
        done = run_script(
            project,
            "backup-redis.sh",
            env=script_env(REDIS_URL=f"redis://127.0.0.1:{source}/0", BACKUP_DIR=str(tmp_path / "b")),
        )
    snapshot = Path(done.stdout.strip())

    with fresh_redis(tmp_path / "target", password=password) as target:
        url = f"redis://:{quote(password, safe='')}@127.0.0.1:{target}/0"
        done = run_script(project, "restore-redis.sh", str(snapshot), env=script_env(REDIS_URL=url))
        assert f"restored 124 keys from {snapshot}" in done.stdout
        assert read_back(target, prefix, password) == expected
        assert redis_cli(target, "-n", "3", "GET", f"{prefix}:in-db3", password=password) == "three"
        assert 0 < int(redis_cli(target, "TTL", f"{prefix}:ttl", password=password)) <= 3600

        # A server that holds keys is refused unless --flush.
        refused = run_script(
            project, "restore-redis.sh", str(snapshot), env=script_env(REDIS_URL=url), check=False
        )
        assert refused.returncode != 0 and "holds keys" in refused.stderr
        redis_cli(target, "SET", "stray", "1", password=password)
        run_script(project, "restore-redis.sh", "--flush", str(snapshot), env=script_env(REDIS_URL=url))
        assert redis_cli(target, "EXISTS", "stray", password=password) == "0"
        assert read_back(target, prefix, password) == expected


# ---------------------------------------------------------------- SECURITY.md

SETTING = re.compile(r"`([A-Z][A-Z0-9_]{2,})(?:=[^`]*)?`")
PROJECT_PATH = re.compile(r"`((?:config|docs|scripts|services)/[^`*<>]+?)`")


def settings_read(project: Path) -> str:
    """The text of every place a setting can be read from: app configs, compose, config/."""
    sources = [
        *project.glob("services/*/app/core/config.py"),
        *project.glob("services/*/src/config.js"),
        *project.glob("docker-compose*.yml"),
        project / "config" / ".env.example",
    ]
    return "\n".join(path.read_text() for path in sources)


@pytest.mark.parametrize("name", RENDERS)
def test_security_page_names_only_real_settings_and_files(render, name) -> None:
    project = render(name)
    text = (project / "SECURITY.md").read_text()
    assert not UNRENDERED.search(text)
    known = settings_read(project)
    for setting in sorted(set(SETTING.findall(text))):
        # pydantic-settings fields are the variables' lower-case names
        assert setting in known or f"{setting.lower()}:" in known, f"SECURITY.md: {setting} is read nowhere"
    for mentioned in sorted(set(PROJECT_PATH.findall(text))):
        assert (project / mentioned).exists(), f"SECURITY.md names {mentioned}, which the render lacks"
