"""What a stand-in recipe is given and what it returns.

A recipe (one module per upstream image under :mod:`stackplate.standins.images`)
writes a build context: a Dockerfile of ours and the files it copies. It names
each part it puts in and where that part came from, so that the image's labels
and ``stackplate standins --list`` say exactly what the stand-in contains.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# The host's CA bundle: containers reach the package registries only when they
# trust it. It goes into stand-ins only, never into a project's files.
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
# Where a stand-in keeps it, named so that nobody mistakes it for the image's own.
STAND_IN_CA_PATH = "/usr/local/share/stackplate-stand-in/host-ca.crt"

FILES = Path(__file__).with_name("files")


@dataclass(frozen=True)
class Reference:
    """An image reference split into repository and tag (``postgres:17.6-trixie``)."""

    text: str
    repository: str
    tag: str

    @classmethod
    def parse(cls, text: str) -> Reference:
        name, _, tag = text.rpartition(":")
        if not name or "/" in tag:  # no tag, or the colon was a registry port
            name, tag = text, "latest"
        for prefix in ("docker.io/library/", "docker.io/"):
            name = name.removeprefix(prefix)
        return cls(text, name, tag)

    def debian_release(self, default: str) -> str:
        """The Debian release a tag names (``...-trixie``), else ``default``."""
        for release in ("trixie", "bookworm"):
            if release in self.tag:
                return release
        return default

    def version(self) -> str:
        """The tag's leading version (``17.6`` of ``17.6-trixie``)."""
        return self.tag.split("-", 1)[0]


@dataclass(frozen=True)
class Part:
    """One thing inside a stand-in: what it is, its real version, where it came from."""

    name: str
    version: str
    source: str

    def __str__(self) -> str:
        return f"{self.name} {self.version} ({self.source})"


@dataclass(frozen=True)
class Tool:
    """A command our files run inside the upstream image, and why the real image has it."""

    name: str
    upstream: str


@dataclass
class Context:
    """A recipe's workspace: the build folder and the ways to fill it."""

    reference: Reference
    directory: Path
    debian_base: Callable[[str], str]  # release -> the local Debian root image
    debian_versions: Callable[[str, list[str]], dict[str, str]]  # release, packages -> versions
    fetch_npm: Callable[[str, Path], Path]  # "name@version", folder -> the packed tarball
    fetch_wheel: Callable[[str, Path], Path]  # "name==version", folder -> the wheel

    def write(self, name: str, text: str, mode: int = 0o644) -> None:
        path = self.directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(mode)

    def copy_file(self, name: str, target: str | None = None, mode: int = 0o755) -> None:
        """Copy one of our files (``standins/files/NAME``) into the build folder."""
        destination = self.directory / (target or name)
        shutil.copyfile(FILES / name, destination)
        destination.chmod(mode)

    def copy_host_ca(self) -> None:
        shutil.copyfile(HOST_CA_BUNDLE, self.directory / "host-ca.crt")


def apt_install(packages: dict[str, str]) -> str:
    """A RUN line installing exact Debian versions without starting their services."""
    pinned = " ".join(f"{name}={version}" for name, version in sorted(packages.items()))
    return (
        "RUN printf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d \\\n"
        "    && apt-get update \\\n"
        f"    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends {pinned} \\\n"
        "    && rm -rf /var/lib/apt/lists/* /usr/sbin/policy-rc.d\n"
    )


def debian_parts(release: str, versions: dict[str, str], names: dict[str, str]) -> list[Part]:
    """The Debian root and its packages: ``names`` maps a package to what it is called in the list."""
    return [
        Part("Debian", release, "debootstrap --variant=minbase"),
        *(
            Part(label, versions[package], f"Debian {release} package {package}")
            for package, label in names.items()
        ),
    ]
