"""ghcr.io/astral-sh/uv: the uv and uvx binaries of the tag's release, in an empty image.

The official image is ``FROM scratch`` with ``/uv`` and ``/uvx``; stackplate's
Dockerfiles copy ``/uv`` out of it. The binaries come from PyPI's ``uv`` wheel
of the same release, which carries them.
"""

from __future__ import annotations

import zipfile

from stackplate.standins.recipe import Context, Part, Tool

REPOSITORIES = ("ghcr.io/astral-sh/uv",)
DEFAULT_RELEASE = ""
TOOLS: tuple[Tool, ...] = ()  # nothing runs inside it: its /uv is copied into other images


def prepare(context: Context) -> list[Part]:
    version = context.reference.version()
    wheel = context.fetch_wheel(f"uv=={version}", context.directory)
    with zipfile.ZipFile(wheel) as archive:
        for name in ("uv", "uvx"):
            member = next(m for m in archive.namelist() if m.endswith(f".data/scripts/{name}"))
            (context.directory / name).write_bytes(archive.read(member))
            (context.directory / name).chmod(0o755)
    wheel.unlink()
    context.write(
        "Dockerfile",
        'FROM scratch\nCOPY uv uvx /\nWORKDIR /io\nENTRYPOINT ["/uv"]\n',
    )
    return [Part("uv and uvx", version, f"PyPI wheel uv=={version}")]
