"""Images and boots on the Docker engine: build times, image sizes, time to healthy.

Renders the default project (development services off), makes its upstream
images available (stand-ins where no registry answers), then for each app
service's production image measures a cold build (BuildKit cache pruned
first), a warm build (nothing changed) and the rebuild after a one-line change
to a source file, and the image's size. Then the time from ``up --wait`` to
every service healthy, warm, with the production and the development file.

The anchor, built side by side under the same stand-ins: the backend of a
popular FastAPI full-stack template, its Copier-era release 0.10.0, whose
backend Dockerfile uses python + uv. Give a clone of that template's
repository with ``--anchor PATH`` (it is not part of this repository).

Where the base images are stand-ins, build times and sizes depend on them
(Debian packages instead of the official builds): the table says which.

A benchmark prints a table; it asserts nothing. Run:
``python bench/engine.py [--anchor PATH] [--no-cold]``.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import copier

from stackplate.compose import compose_command
from stackplate.compose_boot import ComposeProject
from stackplate.engine import client, is_stand_in
from stackplate.standins import ensure, ensure_images
from stackplate.standins.references import ImageUse, dockerfile_stages

REPO = Path(__file__).resolve().parent.parent
ANCHOR_RELEASE = "0.10.0"
# One line appended to a source file of each image: what a developer changes.
CHANGED_FILE = {"api": "app/main.py", "worker": "src/index.js", "frontend": "src/App.tsx"}
NO_DEVELOPMENT_SERVICES = {"ollama": False, "pgadmin": False, "redis_commander": False}
COMMENT = {"api": "# bench: changed\n", "worker": "// bench: changed\n", "frontend": "// bench: changed\n"}


@dataclass
class Row:
    image: str
    base: str
    cold: float | None
    warm: float
    changed: float
    size_mb: float


def timed(command: list[str], cwd: Path | None = None) -> float:
    start = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command[:6])}... failed:\n{result.stderr[-2000:]}")
    return time.perf_counter() - start


def prune_build_cache() -> None:
    client().api.prune_builds(all=True)


def base_of(image_tag: str) -> str:
    labels = client().images.get(image_tag).labels or {}
    return "stand-in" if is_stand_in(labels) else "upstream"


def size_mb(image_tag: str) -> float:
    return client().images.get(image_tag).attrs["Size"] / 1e6


def measure_project(project: Path, cold: bool) -> list[Row]:
    compose = ComposeProject(project, production=True)
    name = compose.config()["name"]
    rows = []
    for service, changed_file in CHANGED_FILE.items():
        build = compose.command("build", service)
        if cold:
            prune_build_cache()
        cold_seconds = timed(build) if cold else None
        warm = timed(build)
        source = project / "services" / service / changed_file
        source.write_text(source.read_text() + COMMENT[service])
        changed = timed(build)
        tag = f"{name}-{service}"
        rows.append(Row(f"{service} (production)", base_of(tag), cold_seconds, warm, changed, size_mb(tag)))
    return rows


def measure_anchor(anchor: Path, scratch: Path, cold: bool) -> Row:
    rendered = scratch / "anchor"
    copier.run_copy(
        str(anchor), str(rendered), vcs_ref=ANCHOR_RELEASE, defaults=True, unsafe=True, quiet=True
    )
    dockerfile = rendered / "backend" / "Dockerfile"
    stages = dockerfile_stages(dockerfile, {})
    uses = [ImageUse(stage.parent) for stage in stages]
    uses += [
        ImageUse(value.split("--from=", 1)[1].split()[0])
        for stage in stages
        for instruction, value in stage.instructions
        if instruction == "COPY" and "--from=" in value
    ]
    ensure_images(uses, client())
    compose_file = scratch / "anchor-compose.yml"
    compose_file.write_text(
        "name: bench-anchor\nservices:\n  backend:\n    image: bench-anchor-backend\n"
        f"    build:\n      context: {rendered}\n      dockerfile: backend/Dockerfile\n"
    )
    build = [*compose_command(), "-f", str(compose_file), "build", "backend"]
    if cold:
        prune_build_cache()
    cold_seconds = timed(build) if cold else None
    warm = timed(build)
    main = rendered / "backend" / "app" / "main.py"
    main.write_text(main.read_text() + COMMENT["api"])
    changed = timed(build)
    tag = "bench-anchor-backend"
    return Row(f"anchor backend {ANCHOR_RELEASE}", base_of(tag), cold_seconds, warm, changed, size_mb(tag))


def time_to_healthy(project: Path, production: bool) -> float:
    compose = ComposeProject(project, production)
    compose.run("build")
    try:
        return timed(compose.command("up", "--detach", "--wait", "--wait-timeout", "300"))
    finally:
        compose.down(volumes=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--anchor", type=Path, help="a clone of the anchor template's repository")
    parser.add_argument("--no-cold", action="store_true", help="skip the cold builds (no cache prune)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-engine-") as folder:
        scratch = Path(folder)
        project = scratch / "project"
        answers = {"project_slug": "bench-engine", **NO_DEVELOPMENT_SERVICES}
        copier.run_copy(
            str(REPO), str(project), data=answers, defaults=True, unsafe=True, quiet=True, vcs_ref="HEAD"
        )
        ensure(project, client())
        rows = measure_project(project, cold=not args.no_cold)
        if args.anchor:
            rows.append(measure_anchor(args.anchor, scratch, cold=not args.no_cold))
        healthy = {
            "production": time_to_healthy(project, production=True),
            "development": time_to_healthy(project, production=False),
        }
    print("| image | base images | cold build s | warm build s | rebuild after a one-line change s | MB |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        cold = f"{row.cold:.1f}" if row.cold is not None else "-"
        times = f"{cold} | {row.warm:.1f} | {row.changed:.1f}"
        print(f"| {row.image} | {row.base} | {times} | {row.size_mb:.0f} |")
    print()
    print("| compose file | up --wait to all healthy, warm, s |")
    print("|---|---|")
    for combination, seconds in healthy.items():
        print(f"| {combination} | {seconds:.1f} |")


if __name__ == "__main__":
    main()
