"""How long does rendering a stackplate project take, and where does the time go?

Measures ``copier copy`` of this template, in process (``copier.run_copy``),
for 1, 3, 10 and 30 app services and for the template's default answer
(3 services: api, worker, frontend): the median of 5 runs after 1 warm-up,
each into a fresh destination.

Next to each Copier time stands a "floor": the same tree rendered with a plain
``jinja2.Environment`` that loads the template's own extension classes, written
to disk the same way. The floor is what the rendering itself costs; the gap to
Copier is Copier's own machinery (questions, validators, sandbox, per-file
bookkeeping). Before any timing the floor is checked to produce the same files
as Copier, so the two numbers are about the same work.

Finally one ``copier copy --trust --defaults`` CLI run is timed as a
subprocess, to show the interpreter start-up and import cost on its own.

Then a second table times keeping a project up to date, for 1, 3, 10 and 30
app services. A git template repository gets two tags: v1, the template as it
is, and v2, the same with one line changed inside a marker block (the app
services' ``start_period`` in docker-compose.yml). A project rendered from v1
and committed is copied afresh for every run, outside the clock, and updated
to v2 in process:

- ``copier update``: ``copier.run_update`` alone (median of 5);
- ``stackplate update``: ``stackplate.update.update_project``, the CLI's update,
  which adds a drift check before Copier and a block regeneration plus
  ``stackplate check`` after it (median of 3);
- ``stackplate check``: ``stackplate.check.check_project`` on an updated
  project (median of 5).

Each update is checked to have carried the change, with no conflicts and
nothing for ``stackplate check`` to report, so the times are of updates that
worked.

Run from the repository root: ``python bench/render.py [--quick] [--only copy|update]``.
``--quick`` does 1 run of each, without warm-up: a smoke test, not numbers.
``--only`` runs one of the two parts (default: both).
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import copier
import jinja2
import yaml

from stackplate.answers import services_problem
from stackplate.check import check_project
from stackplate.project import conflicted_files
from stackplate.update import update_project

REPO = Path(__file__).resolve().parent.parent
SUFFIX = ".jinja"
ANSWERS_FILE = ".copier-answers.yml"
# config/.env holds secrets generated fresh on every render, so it can never
# match byte for byte between two renders; every other file must.
RANDOM_FILES = {"config/.env"}

SERVICE_COUNTS = (1, 3, 10, 30)
DEFAULTS = "3 (defaults)"  # the row for the template's default services answer
KIND_CYCLE = ("fastapi", "node-worker", "react-vite")
NAME_PREFIX = {"fastapi": "api", "node-worker": "worker", "react-vite": "web"}
FIRST_PORT = 9100

# Targets the template is held to.
DEFAULTS_TARGET_S = 1.0
THIRTY_TARGET_S = 3.0
# Growth counts as linear while the marginal cost per service from 3 to 30
# stays within this factor of the one from 3 to 10 (timing noise included).
LINEAR_TOLERANCE = 1.5

# The v2 release: one line inside the SERVICES block, rendered once per app
# service, so the merge has work in proportion to the services.
V2_FILE = "template/docker-compose.yml.jinja"
V2_OLD, V2_NEW = "      start_period: 20s", "      start_period: 25s"
GIT_ENV = {
    "GIT_AUTHOR_NAME": "stackplate bench",
    "GIT_AUTHOR_EMAIL": "bench@example.com",
    "GIT_COMMITTER_NAME": "stackplate bench",
    "GIT_COMMITTER_EMAIL": "bench@example.com",
}

# A path part such as: {% yield svc from services | of_kind("x") %}{{ svc.name }}{% endyield %}
YIELD_PART = re.compile(r"^\{%-?\s*yield\s+(\w+)\s+from\s+(.+?)\s*-?%\}(.*)\{%-?\s*endyield\s*-?%\}(.*)$")


# ------------------------------------------------------------------ inputs


def services_for(count: int) -> list[dict[str, Any]]:
    """``count`` app services cycling fastapi, node-worker, react-vite.

    The cycle starts with fastapi, so every react-vite has an API before it.
    """
    services = []
    ports = itertools.count(FIRST_PORT)
    for index, kind in zip(range(1, count + 1), itertools.cycle(KIND_CYCLE)):
        service: dict[str, Any] = {"name": f"{NAME_PREFIX[kind]}-{index}", "kind": kind}
        if kind != "node-worker":
            service["port"] = next(ports)
        services.append(service)
    problem = services_problem(services)
    if problem:
        raise SystemExit(f"bench: generated an invalid services list for {count}: {problem}")
    return services


def cases() -> list[tuple[str, int, dict[str, Any]]]:
    """(label, service count, Copier data) for each row of the table."""
    rows = [(DEFAULTS, 3, {})]
    rows += [(str(n), n, {"services": services_for(n)}) for n in SERVICE_COUNTS]
    return rows


def snapshot_template(into: Path) -> Path:
    """Copy the template's files into a plain (non-git) folder and return it.

    From a git checkout Copier clones the template on every run (and copies
    uncommitted changes on top), which would time git, not rendering. A plain
    folder is used in place. The extensions load ``src/stackplate/answers.py``
    and ``markers.py`` by path relative to themselves, so the layout is kept.
    """
    root = into / "template-src"
    ignore = shutil.ignore_patterns("__pycache__", "*.py[co]")
    root.mkdir()
    shutil.copy2(REPO / "copier.yml", root / "copier.yml")
    shutil.copytree(REPO / "template", root / "template", ignore=ignore)
    shutil.copytree(REPO / "extensions", root / "extensions", ignore=ignore)
    (root / "src" / "stackplate").mkdir(parents=True)
    for name in ("answers.py", "markers.py"):
        shutil.copy2(REPO / "src" / "stackplate" / name, root / "src" / "stackplate" / name)
    return root


# ------------------------------------------------------------------ copier


def copier_render(src: Path, dst: Path, data: dict[str, Any]) -> None:
    copier.run_copy(str(src), str(dst), data=data, defaults=True, unsafe=True, quiet=True)


def copier_cli_render(src: Path, dst: Path) -> None:
    """One ``copier copy`` in a fresh interpreter, start-up and imports included."""
    copier_exe = Path(sys.executable).with_name("copier")
    command = [str(copier_exe)] if copier_exe.exists() else [sys.executable, "-m", "copier"]
    command += ["copy", "--trust", "--defaults", str(src), str(dst)]
    subprocess.run(command, check=True, capture_output=True)


# ------------------------------------------------------------- jinja floor


def load_extensions(src: Path) -> ModuleType:
    """The template's extension module, imported by path as Copier does."""
    path = src / "extensions" / "stackplate_jinja.py"
    spec = importlib.util.spec_from_file_location("_bench_stackplate_jinja", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def floor_env(src: Path, ext: ModuleType) -> jinja2.Environment:
    """A fresh environment per render, like Copier's, so templates compile each time.

    Plain ``Environment`` rather than Copier's sandbox, and without Copier's
    ansible filters and yield tag (the floor expands yield names itself; only
    the skipped answers file needs ``to_nice_yaml``): the floor is a lower
    bound. The loader is rooted where Copier roots it, since ``MarkerBlocks``
    rereads the template source through it to find a tag's indentation.
    """
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(src)),
        extensions=[ext.MarkerBlocks, ext.StackFilters],
        keep_trailing_newline=True,
    )


def expand_part(
    env: jinja2.Environment, part: str, context: dict[str, Any]
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Each (rendered name, context) a path part stands for.

    A ``{% yield x from EXPR %}NAME{% endyield %}SUFFIX`` part becomes one name per
    item of EXPR, with x bound for everything below it, as in Copier.
    """
    match = YIELD_PART.match(part)
    if not match:
        yield env.from_string(part).render(context), context
        return
    name, expr, body, suffix = match.groups()
    for item in env.compile_expression(expr)(context):
        inner = {**context, name: item}
        yield env.from_string(body + suffix).render(inner), inner


def floor_paths(
    env: jinja2.Environment, tpl_root: Path, rel: Path, context: dict[str, Any]
) -> Iterator[tuple[Path, Path, dict[str, Any]]]:
    """(source, destination relative path, context) for every file under ``rel``."""
    for entry in sorted((tpl_root / rel).iterdir()):
        templated_sibling = entry.with_name(entry.name + SUFFIX)
        if entry.is_file() and not entry.name.endswith(SUFFIX) and templated_sibling.exists():
            continue  # a rendered sibling wins, as in Copier
        if "_copier_conf" in entry.name:
            continue  # Copier's answers file: its bookkeeping, not the project
        for rendered, inner in expand_part(env, entry.name, context):
            if not rendered:
                continue  # an empty name drops the path, as in Copier
            if entry.is_dir():
                for source, dst_rel, ctx in floor_paths(env, tpl_root, rel / entry.name, inner):
                    yield source, Path(rendered) / dst_rel, ctx
            else:
                yield entry, Path(rendered), inner


def floor_render(src: Path, dst: Path, answers: dict[str, Any], ext: ModuleType) -> None:
    """Render template/ into ``dst`` with plain Jinja: ``*.jinja`` rendered, the rest copied."""
    env = floor_env(src, ext)
    tpl_root = src / "template"
    for source, dst_rel, context in floor_paths(env, tpl_root, Path(), answers):
        target = dst / dst_rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.name.endswith(SUFFIX):
            name = source.relative_to(src).as_posix()
            text = env.get_template(name).render(context)
            target.with_name(target.name[: -len(SUFFIX)]).write_bytes(text.encode())
        else:
            target.write_bytes(source.read_bytes())


def copier_answers(out: Path) -> dict[str, Any]:
    """The answers Copier used, as it recorded them (defaults rendered)."""
    return yaml.safe_load((out / ANSWERS_FILE).read_text())


# ---------------------------------------------------------------- checking


def files_of(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def check_floor(label: str, copier_out: Path, floor_out: Path) -> None:
    """Fail unless the floor wrote the same files, with the same bytes, as Copier.

    Otherwise the floor would not be a floor for the same work.
    """
    by_copier = files_of(copier_out)
    del by_copier[ANSWERS_FILE]
    by_floor = files_of(floor_out)
    if set(by_copier) != set(by_floor):
        raise SystemExit(
            f"bench: floor and Copier write different files for {label}: "
            f"only Copier {sorted(set(by_copier) - set(by_floor))}, "
            f"only floor {sorted(set(by_floor) - set(by_copier))}"
        )
    differ = sorted(p for p in by_copier if p not in RANDOM_FILES and by_copier[p] != by_floor[p])
    if differ:
        raise SystemExit(f"bench: floor and Copier render different contents for {label}: {differ}")
    assert by_copier["docker-compose.yml"] == by_floor["docker-compose.yml"]


# ------------------------------------------------------------------ timing


def timed(render: Callable[[Path], None], scratch: Path, runs: int) -> float:
    """Median seconds of ``runs`` renders, each into a destination that does not exist yet."""
    times = []
    for _ in range(runs):
        dst = Path(tempfile.mkdtemp(dir=scratch)) / "out"
        start = time.perf_counter()
        render(dst)
        times.append(time.perf_counter() - start)
        shutil.rmtree(dst.parent)  # outside the clock
    return statistics.median(times)


def measure_case(
    label: str,
    data: dict[str, Any],
    src: Path,
    ext: ModuleType,
    scratch: Path,
    runs: int,
    warmup: bool,
) -> dict[str, Any]:
    """Copier and floor medians for one services list, after checking they agree.

    The reference Copier render supplies the floor's answers, so it happens
    even with --quick; the check's floor render doubles as the floor's warm-up.
    """
    reference = Path(tempfile.mkdtemp(dir=scratch))
    copier_render(src, reference / "copier", data)
    answers = copier_answers(reference / "copier")
    floor_render(src, reference / "floor", answers, ext)
    check_floor(label, reference / "copier", reference / "floor")
    files = len(files_of(reference / "copier"))
    shutil.rmtree(reference)
    if warmup:
        timed(lambda dst: copier_render(src, dst, data), scratch, 1)
    return {
        "files": files,
        "copier": timed(lambda dst: copier_render(src, dst, data), scratch, runs),
        "floor": timed(lambda dst: floor_render(src, dst, answers, ext), scratch, runs),
    }


# ------------------------------------------------------------------ update


def git(cwd: Path, *args: str) -> None:
    """Run git, with an identity of its own: the machine may have none configured."""
    subprocess.run(
        ["git", "-c", "init.defaultBranch=main", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        env={**os.environ, **GIT_ENV},
    )


def commit_all(cwd: Path, message: str) -> None:
    git(cwd, "add", "-A")
    git(cwd, "commit", "-q", "-m", message)


def versioned_template(src: Path, into: Path) -> Path:
    """The template snapshot as a git repository tagged v1, then v2 with the one-line change.

    An update needs two versions Copier can check out, so unlike the copy part
    this template is a git repository, and Copier clones it for each render:
    that is part of what an update costs.
    """
    repo = into / "template-repo"
    shutil.copytree(src, repo)
    if (REPO / "migrations").is_dir():
        # copier.yml's _migrations name these scripts; a release carries them.
        ignore = shutil.ignore_patterns("__pycache__")
        shutil.copytree(REPO / "migrations", repo / "migrations", ignore=ignore)
    git(repo, "init", "-q")
    commit_all(repo, "template v1")
    git(repo, "tag", "v1")
    target = repo / V2_FILE
    text = target.read_text()
    if text.count(V2_OLD) != 1:
        raise SystemExit(f"bench: expected {V2_OLD.strip()!r} once in {V2_FILE}; update the bench")
    target.write_text(text.replace(V2_OLD, V2_NEW))
    commit_all(repo, "template v2")
    git(repo, "tag", "v2")
    return repo


def committed_project(template: Path, dst: Path, data: dict[str, Any]) -> Path:
    """A project rendered from v1 and committed: ``copier update`` merges against git."""
    copier.run_copy(str(template), str(dst), vcs_ref="v1", data=data, defaults=True, unsafe=True, quiet=True)
    git(dst, "init", "-q")
    commit_all(dst, "rendered from v1")
    return dst


def fresh_copies(pristine: Path, scratch: Path, count: int) -> list[Path]:
    """``count`` copies of the committed project, .git included: an update changes its project."""
    copies = []
    for _ in range(count):
        dst = Path(tempfile.mkdtemp(dir=scratch)) / "project"
        shutil.copytree(pristine, dst, symlinks=True)
        copies.append(dst)
    return copies


def copier_update(project: Path) -> None:
    copier.run_update(
        str(project), vcs_ref="v2", defaults=True, overwrite=True, unsafe=True, quiet=True, conflict="inline"
    )


def timed_each(action: Callable[[Path], Any], projects: list[Path]) -> tuple[float, list[Any]]:
    """Median seconds of ``action`` over the projects, one call each, and what the calls returned."""
    times, returned = [], []
    for project in projects:
        start = time.perf_counter()
        returned.append(action(project))
        times.append(time.perf_counter() - start)
    return statistics.median(times), returned


def check_updated(label: str, project: Path, count: int) -> None:
    """Fail unless the update carried v2's line into every app service, without conflicts.

    Otherwise the times would be of updates that did not do the work.
    """
    compose = (project / "docker-compose.yml").read_text()
    carried, left = compose.count(V2_NEW.strip()), compose.count(V2_OLD.strip())
    conflicts = conflicted_files(project)
    if carried != count or left or conflicts:
        raise SystemExit(
            f"bench: update to v2 for {label} services: {carried} of {count} services carry the change, "
            f"{left} still have the old line, conflicts in {conflicts}"
        )


def measure_update(
    count: int, template: Path, scratch: Path, runs: int, stackplate_runs: int
) -> dict[str, float]:
    """copier update, stackplate update and stackplate check medians for ``count`` app services.

    Every copy is made before the clock starts. stackplate check only reads,
    so it runs on the projects copier update just updated.
    """
    label, data = str(count), {"services": services_for(count)}
    pristine = committed_project(template, Path(tempfile.mkdtemp(dir=scratch)) / "project", data)
    by_copier = fresh_copies(pristine, scratch, runs)
    by_stackplate = fresh_copies(pristine, scratch, stackplate_runs)
    copier_s, _ = timed_each(copier_update, by_copier)
    check_s, problems = timed_each(check_project, by_copier)
    stackplate_s, results = timed_each(lambda project: update_project(project, vcs_ref="v2"), by_stackplate)
    for project in by_copier + by_stackplate:
        check_updated(label, project, count)
    found = [line for lines in [*problems, *(r.problems for r in results)] for line in lines]
    if found:
        raise SystemExit(f"bench: stackplate check finds problems after the update for {label}: {found[0]}")
    for project in [pristine, *by_copier, *by_stackplate]:
        shutil.rmtree(project.parent)  # 30 services times 9 projects adds up
    return {"copier": copier_s, "stackplate": stackplate_s, "check": check_s}


# ----------------------------------------------------------------- report


def print_table(rows: list[tuple[str, int, dict[str, Any]]]) -> None:
    header = (
        "services",
        "files",
        "copier copy (s)",
        "jinja floor (s)",
        "ratio",
        "per service (ms)",
    )
    lines = [
        (
            label,
            str(r["files"]),
            f"{r['copier']:.3f}",
            f"{r['floor']:.3f}",
            f"{r['copier'] / r['floor']:.1f}x",
            f"{r['copier'] / n * 1000:.1f}",
        )
        for label, n, r in rows
    ]
    print_grid(header, lines)
    print("per service = copier copy time / services (growth per added service: see targets)")


def print_grid(header: tuple[str, ...], lines: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in [header, *lines]) for i in range(len(header))]
    for row in [header, *lines]:
        print(" | ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)))
        if row is header:
            print("-+-".join("-" * width for width in widths))


def print_targets(results: dict[str, dict[str, Any]], cli: float) -> None:
    t = {label: r["copier"] for label, r in results.items()}
    print(
        f"targets: defaults {t[DEFAULTS]:.3f} s vs <= {DEFAULTS_TARGET_S} s "
        f"{verdict(t[DEFAULTS] <= DEFAULTS_TARGET_S)} "
        f"(CLI with start-up {cli:.3f} s {verdict(cli <= DEFAULTS_TARGET_S)}); "
        f"30 services {t['30']:.3f} s vs <= {THIRTY_TARGET_S} s "
        f"{verdict(t['30'] <= THIRTY_TARGET_S)}; "
        f"{growth(t)}"
    )


def growth(t: dict[str, float]) -> str:
    """The marginal cost per service from 3 to 30 against the one from 3 to 10."""
    slope_30 = (t["30"] - t["3"]) / 27
    slope_10 = (t["10"] - t["3"]) / 7
    linear = slope_30 <= slope_10 * LINEAR_TOLERANCE
    return (
        f"growth (t30-t3)/27 = {slope_30 * 1000:.1f} ms vs (t10-t3)/7 = {slope_10 * 1000:.1f} ms "
        f"per service: {'linear' if linear else 'NOT linear'} (tolerance {LINEAR_TOLERANCE}x)"
    )


def print_update_table(rows: list[tuple[str, dict[str, float]]], runs: int, stackplate_runs: int) -> None:
    header = ("services", "copier update (s)", "stackplate update (s)", "stackplate check (s)")
    lines = [
        (label, f"{r['copier']:.3f}", f"{r['stackplate']:.3f}", f"{r['check']:.3f}") for label, r in rows
    ]
    print_grid(header, lines)
    print(
        f"v1 -> v2 (one line in the SERVICES block); median of {runs} (copier update, stackplate check) "
        f"and {stackplate_runs} (stackplate update), each update on a fresh committed v1 project"
    )
    print(f"copier update {growth({label: r['copier'] for label, r in rows})}")


def verdict(ok: bool) -> str:
    return "OK" if ok else "MISSED"


def copy_part(src: Path, scratch: Path, quick: bool) -> None:
    """The copy table: Copier against the floor for each services list, the CLI, the targets."""
    runs, warmup, cli_runs = (1, False, 1) if quick else (5, True, 3)
    ext = load_extensions(src)
    rows = [
        (label, n, measure_case(label, data, src, ext, scratch, runs, warmup)) for label, n, data in cases()
    ]
    cli = timed(lambda dst: copier_cli_render(src, dst), scratch, cli_runs)
    print_table(rows)
    print(f"copier copy CLI, defaults, as a subprocess: {cli:.3f} s (median of {cli_runs})")
    print_targets({label: r for label, _, r in rows}, cli)


def update_part(src: Path, scratch: Path, quick: bool) -> None:
    """The update table: copier update, stackplate update and check, v1 to v2, per services list."""
    # stackplate update is copier update plus two reference renders: fewer runs keep the bench short.
    runs, stackplate_runs = (1, 1) if quick else (5, 3)
    template = versioned_template(src, scratch)
    rows = [(str(n), measure_update(n, template, scratch, runs, stackplate_runs)) for n in SERVICE_COUNTS]
    print_update_table(rows, runs, stackplate_runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 run each, no warm-up (smoke test)")
    parser.add_argument("--only", choices=("copy", "update"), help="run one part only (default: both)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="stackplate-bench-") as tmp:
        scratch = Path(tmp)
        # Render from a non-git copy: from a git checkout Copier would clone the
        # template on every run, and the numbers would be about git.
        src = snapshot_template(scratch)
        if args.only != "update":
            copy_part(src, scratch, args.quick)
        if args.only is None:
            print()
        if args.only != "copy":
            update_part(src, scratch, args.quick)


if __name__ == "__main__":
    main()
