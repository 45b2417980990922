"""Export files on disk: the worker writes them, the API serves and deletes them."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger("app.exports")


def export_file(root: Path, name: str) -> Path | None:
    """The file *name* inside *root*, or None if it would lie outside (never trust a name)."""
    base = root.resolve()
    path = (base / name).resolve()
    return path if path.is_relative_to(base) and path != base else None


def delete_export_files(root: Path, names: Iterable[str]) -> None:
    """Delete these export files; what cannot go now, the worker's retention sweep removes."""
    for name in names:
        path = export_file(root, name)
        if path is None:
            continue
        try:
            path.unlink(missing_ok=True)
        except OSError as error:
            log.warning("cannot delete export file %s: %s", name, error)
