"""Local stand-ins for upstream images, for machines that reach no image registry.

This is test infrastructure (CI sandboxes, air-gapped labs), not part of any
rendered project. For every upstream image a project names that the engine
lacks and cannot pull, :func:`ensure` builds a stand-in under the same
reference from Debian packages and from binaries that registry packages ship,
honouring the part of the real image's contract the project uses. Each
stand-in is labelled as one (``org.stackplate.stand-in=true``,
``org.stackplate.stands-for``, ``org.stackplate.contents`` with the real
versions inside). An image that is not a stand-in is never replaced.
"""

from __future__ import annotations

import hashlib
import inspect
import subprocess
import sys
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import docker
import docker.errors

from stackplate.engine import (
    STAND_IN_LABEL,
    STANDS_FOR_LABEL,
    EngineError,
    image_labels,
    is_stand_in,
    try_pull,
)
from stackplate.standins import debian
from stackplate.standins.debian import RECIPE_LABEL, DebianRoots
from stackplate.standins.images import CANNOT_STAND_IN, recipe_for
from stackplate.standins.recipe import FILES, Context, Reference
from stackplate.standins.references import ImageUse, images_of

CONTENTS_LABEL = "org.stackplate.contents"

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Outcome:
    reference: str
    state: str  # present | pulled | built | up to date | unavailable
    detail: str = ""


def ensure(project: Path, engine: docker.DockerClient, progress: Progress = print) -> list[Outcome]:
    """Make every upstream image of ``project`` available, standing in where it must."""
    return ensure_images(images_of(project), engine, progress)


def ensure_images(
    uses: list[ImageUse], engine: docker.DockerClient, progress: Progress = print
) -> list[Outcome]:
    """Make each image available: present, pulled, or a stand-in built."""
    roots = DebianRoots(engine, progress)
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(lambda use: _ensure_one(use, engine, roots, progress), uses))


def _ensure_one(
    use: ImageUse, engine: docker.DockerClient, roots: DebianRoots, progress: Progress
) -> Outcome:
    reference = Reference.parse(use.reference)
    labels = image_labels(engine, use.reference)
    if labels is not None and not is_stand_in(labels):
        return Outcome(use.reference, "present", "the real image (not a stand-in): left as it is")
    recipe = recipe_for(reference.repository)
    if recipe is None:
        reason = CANNOT_STAND_IN.get(reference.repository, "no stand-in recipe for it")
        if labels is None and try_pull(engine, use.reference) is None:
            return Outcome(use.reference, "pulled")
        return Outcome(use.reference, "unavailable", reason)
    fingerprint = recipe_fingerprint(recipe, use.reference)
    if labels is not None and labels.get(RECIPE_LABEL) == fingerprint:
        return Outcome(use.reference, "up to date", labels.get(CONTENTS_LABEL, ""))
    if labels is None and try_pull(engine, use.reference) is None:
        return Outcome(use.reference, "pulled")
    progress(f"stand-ins: building {use.reference}")
    contents = _build(recipe, reference, engine, roots, fingerprint)
    progress(f"stand-ins: built {use.reference}: {contents}")
    return Outcome(use.reference, "built", contents)


def _build(
    recipe: ModuleType,
    reference: Reference,
    engine: docker.DockerClient,
    roots: DebianRoots,
    fingerprint: str,
) -> str:
    with tempfile.TemporaryDirectory(prefix="stackplate-stand-in-") as directory:
        context = Context(
            reference=reference,
            directory=Path(directory),
            debian_base=roots.base,
            debian_versions=roots.versions,
            fetch_npm=_npm_pack,
            fetch_wheel=_pip_download,
        )
        parts = recipe.prepare(context)
        contents = "; ".join(str(part) for part in parts)
        labels = {
            STAND_IN_LABEL: "true",
            STANDS_FOR_LABEL: reference.text,
            CONTENTS_LABEL: contents,
            RECIPE_LABEL: fingerprint,
        }
        try:
            engine.images.build(path=directory, tag=reference.text, labels=labels, rm=True, forcerm=True)
        except docker.errors.BuildError as error:
            log = "".join(chunk.get("stream", "") for chunk in error.build_log)
            tail = "\n".join(log.splitlines()[-15:])
            raise EngineError(f"stand-in {reference.text}: {error.msg}\n{tail}") from error
    return contents


def recipe_fingerprint(recipe: ModuleType, reference: str) -> str:
    """A digest of the recipe's code, our files and the reference: a change means rebuild."""
    digest = hashlib.sha256(reference.encode())
    for module in _recipe_modules(recipe):
        digest.update(inspect.getsource(module).encode())
    digest.update(inspect.getsource(_build).encode())
    digest.update(inspect.getsource(debian).encode())
    for path in sorted(FILES.iterdir()):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:16]


def _recipe_modules(recipe: ModuleType) -> list[ModuleType]:
    """The recipe and the recipes it borrows helpers from (redis-commander uses node's)."""
    borrowed = {getattr(value, "__module__", "") for value in vars(recipe).values() if callable(value)} - {
        recipe.__name__
    }
    recipes = sorted(name for name in borrowed if name.startswith("stackplate.standins.images."))
    return [recipe, *(sys.modules[name] for name in recipes)]


def listing(engine: docker.DockerClient) -> list[tuple[str, str]]:
    """(reference, contents) for every stand-in the engine holds."""
    rows = []
    for image in engine.images.list(filters={"label": f"{STAND_IN_LABEL}=true"}):
        labels = image.labels or {}
        for tag in image.tags:
            rows.append((tag, labels.get(CONTENTS_LABEL, "?")))
    return sorted(rows)


def tool_rows(project: Path) -> list[tuple[str, str, str]]:
    """(image, tool, where the upstream image is known to have it) for every tool our files run."""
    rows = []
    for use in images_of(project):
        recipe = recipe_for(Reference.parse(use.reference).repository)
        known = {tool.name: tool.upstream for tool in (recipe.TOOLS if recipe else ())}
        for tool in sorted(use.tools):
            rows.append((use.reference, tool, known.get(tool, "NOT KNOWN to be in the upstream image")))
    return rows


def _npm_pack(spec: str, directory: Path) -> Path:
    result = _run(["npm", "pack", "--silent", "--pack-destination", str(directory), spec], f"npm pack {spec}")
    return directory / result.strip().splitlines()[-1]


def _pip_download(spec: str, directory: Path) -> Path:
    before = set(directory.iterdir())
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:"]
    _run([*command, "--dest", str(directory), spec], f"pip download {spec}")
    (wheel,) = set(directory.iterdir()) - before
    return wheel


def _run(command: list[str], what: str) -> str:
    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=600)
    if result.returncode != 0:
        raise EngineError(f"{what} failed (exit {result.returncode}): {result.stderr.strip()[-500:]}")
    return result.stdout
