"""Marker blocks: the parts of a file that the template owns.

A block runs from a line ``##<<NAME>>`` to a line ``##<</NAME>>`` (both may
be indented). Between them the template regenerates everything on
``copier update``; outside them the file belongs to the user.

Stdlib only: the Jinja extension loads this file by path from a clone of the
template, and the CLI imports it as ``stackplate.markers``.
"""

from __future__ import annotations


def begin_line(name: str) -> str:
    return f"##<<{name}>>"


def end_line(name: str) -> str:
    return f"##<</{name}>>"


def _entries(lines: list[str]) -> list[list[str]]:
    """Split body lines into top-level entries; comments go with the entry below."""
    base = min(len(line) - len(line.lstrip()) for line in lines)
    entries: list[list[str]] = [[]]
    for line in lines:
        at_top = len(line) - len(line.lstrip()) == base
        if at_top and _has_header(entries[-1], base):
            entries.append([])
        entries[-1].append(line)
    return [entry for entry in entries if entry]


def _has_header(entry: list[str], base: int) -> bool:
    """Whether an entry already holds its own top-level (non-comment) line."""
    return any(
        len(line) - len(line.lstrip()) == base and not line.lstrip().startswith("#")
        for line in entry
    )


def normalise_body(body: str) -> list[str]:
    """The lines of a block's body, with its blank lines made deterministic.

    Trailing spaces and blank lines are dropped; then one blank line separates
    two top-level entries (lines at the body's smallest indentation, with the
    comments just above them) when either spans more than one line, so a list
    of one-line volume names stays compact and every service stands apart.
    """
    lines = [line.rstrip() for line in body.splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        return []
    result: list[str] = []
    previous: list[str] = []
    for entry in _entries(lines):
        if previous and (len(previous) > 1 or len(entry) > 1):
            result.append("")
        result.extend(entry)
        previous = entry
    return result


def render_block(name: str, body: str, indent: str) -> str:
    """A whole block: begin line, normalised body, end line at ``indent``.

    The first line carries no indentation: it is written where the tag stood,
    after the indentation already in front of the tag.
    """
    lines = [begin_line(name)]
    lines.extend(normalise_body(body))
    lines.append(indent + end_line(name))
    return "\n".join(lines)
