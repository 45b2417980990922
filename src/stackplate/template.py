"""Where the template is, and rendering a project from it with Copier."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import copier


class RenderError(Exception):
    """A project could not be rendered; the message is one line for the user."""


def template_root() -> Path:
    """The template this CLI renders.

    $STACKPLATE_TEMPLATE if set; else the git checkout this package runs from
    (development); else the copy bundled in the installed wheel.
    """
    configured = os.environ.get("STACKPLATE_TEMPLATE")
    if configured:
        return Path(configured)
    here = Path(__file__).resolve().parent
    for candidate in (here.parents[1], here / "_template"):
        if (candidate / "copier.yml").is_file():
            return candidate
    raise RenderError("cannot find the template: set STACKPLATE_TEMPLATE to a stackplate checkout")


def render_project(
    destination: Path,
    data: Mapping[str, Any] | None = None,
    *,
    template: str | Path | None = None,
    vcs_ref: str | None = None,
) -> Path:
    """``copier copy`` the template into ``destination`` with answers ``data``.

    Questions without an answer take their defaults. Trust is given because
    the template's own Jinja extensions need it. A bad answer raises
    :class:`RenderError` with Copier's one-line message, and Copier removes the
    destination it created.
    """
    try:
        copier.run_copy(
            str(template or template_root()),
            str(destination),
            data=dict(data or {}),
            defaults=True,
            unsafe=True,
            quiet=True,
            vcs_ref=vcs_ref,
        )
    except ValueError as error:
        raise RenderError(str(error).splitlines()[0]) from error
    return destination
