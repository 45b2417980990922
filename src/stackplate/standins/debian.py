"""Debian root images for stand-ins: one ``debootstrap`` root per release, imported once.

No registry means no ``debian:*-slim`` either, so each release's minimal root
(``debootstrap --variant=minbase``) is built here and imported into the engine
as ``stackplate-stand-in/debian:RELEASE``, labelled a stand-in, and reused by
every recipe. Package versions are looked up in a throwaway container of that
root, so that recipes can pin exactly what they install.
"""

from __future__ import annotations

import hashlib
import inspect
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import docker

from stackplate.engine import STAND_IN_LABEL, STANDS_FOR_LABEL, EngineError, image_labels

MIRROR = "http://deb.debian.org/debian"
RECIPE_LABEL = "org.stackplate.recipe"
REPOSITORY = "stackplate-stand-in/debian"


class DebianRoots:
    """The imported roots, built on first use (thread-safe: recipes build in parallel)."""

    def __init__(self, engine: docker.DockerClient, progress=print) -> None:
        self.engine = engine
        self.progress = progress
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self._versions: dict[tuple[str, str], str] = {}

    def base(self, release: str) -> str:
        """The local image of ``release``'s root, imported now if the engine lacks it."""
        reference = f"{REPOSITORY}:{release}"
        with self._lock(release):
            labels = image_labels(self.engine, reference)
            if labels is None or labels.get(RECIPE_LABEL) != root_fingerprint():
                self._import(release, reference)
        return reference

    def versions(self, release: str, packages: list[str]) -> dict[str, str]:
        """The candidate version of each package in ``release`` (what apt would install)."""
        missing = [p for p in packages if (release, p) not in self._versions]
        if missing:
            script = "apt-get update -qq >/dev/null && apt-cache show --no-all-versions " + " ".join(missing)
            output = self._run(self.base(release), script)
            self._versions.update(_parse_versions(release, output))
        unknown = [p for p in packages if (release, p) not in self._versions]
        if unknown:
            raise EngineError(f"Debian {release} has no package {', '.join(unknown)}")
        return {p: self._versions[(release, p)] for p in packages}

    def _lock(self, release: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(release, threading.Lock())

    def _run(self, image: str, script: str) -> str:
        container = self.engine.containers.run(image, ["sh", "-c", script], detach=True)
        try:
            result = container.wait(timeout=300)
            output = container.logs().decode(errors="replace")
        finally:
            container.remove(force=True)
        if result.get("StatusCode") != 0:
            raise EngineError(f"{image}: {script!r} failed: {output.strip()[-500:]}")
        return output

    def _import(self, release: str, reference: str) -> None:
        if not shutil.which("debootstrap"):
            raise EngineError("debootstrap is not installed (apt-get install debootstrap)")
        self.progress(f"stand-ins: building the Debian {release} root (debootstrap)")
        with tempfile.TemporaryDirectory(prefix=f"stackplate-{release}-") as scratch:
            root, archive = Path(scratch) / "root", Path(scratch) / "root.tar"
            _checked(
                ["debootstrap", "--variant=minbase", release, str(root), MIRROR], f"debootstrap {release}"
            )
            _make_slim(root, release)
            _checked(["tar", "--numeric-owner", "-C", str(root), "-cf", str(archive), "."], "tar")
            changes = [
                f"LABEL {STAND_IN_LABEL}=true",
                f"LABEL {STANDS_FOR_LABEL}=debian:{release}-slim",
                f'LABEL org.stackplate.contents="Debian {release} (debootstrap --variant=minbase, {MIRROR})"',
                f"LABEL {RECIPE_LABEL}={root_fingerprint()}",
                'CMD ["bash"]',
            ]
            self.engine.api.import_image_from_file(
                str(archive), repository=REPOSITORY, tag=release, changes=changes
            )


# What Debian's slim images leave out, for every package installed later too.
SLIM_EXCLUDES = """\
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
"""


def _make_slim(root: Path, release: str) -> None:
    """Trim the root like Debian's slim images: no docs, manuals or translations, no apt lists."""
    (root / "etc/dpkg/dpkg.cfg.d/slim").write_text(SLIM_EXCLUDES)
    trimmed = ("usr/share/man", "usr/share/info", "usr/share/locale", "usr/share/lintian", "usr/share/groff")
    for folder in trimmed:
        shutil.rmtree(root / folder, ignore_errors=True)
        (root / folder).mkdir()
    for path in (root / "usr/share/doc").glob("*/*"):
        if path.name != "copyright" and not path.is_dir():
            path.unlink()
    for pattern in ("var/lib/apt/lists/*_*", "var/cache/apt/*.bin", "var/cache/apt/archives/*.deb"):
        for path in root.glob(pattern):
            path.unlink()
    # The suites Debian's own images list: the release, its updates and security.
    (root / "etc/apt/sources.list").write_text(
        f"deb {MIRROR} {release} main\n"
        f"deb {MIRROR} {release}-updates main\n"
        f"deb {MIRROR}-security {release}-security main\n"
    )


def root_fingerprint() -> str:
    """A digest of this module: a change to how roots are made means new roots."""
    return hashlib.sha256(inspect.getsource(sys.modules[__name__]).encode()).hexdigest()[:16]


def _parse_versions(release: str, output: str) -> dict[tuple[str, str], str]:
    found: dict[tuple[str, str], str] = {}
    package = None
    for line in output.splitlines():
        if line.startswith("Package: "):
            package = line.split(": ", 1)[1].strip()
        elif line.startswith("Version: ") and package:
            found[(release, package)] = line.split(": ", 1)[1].strip()
    return found


def _checked(command: list[str], what: str) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=900)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-10:])
        raise EngineError(f"{what} failed (exit {result.returncode}):\n{tail}")
