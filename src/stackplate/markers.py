"""Marker blocks: the parts of a file that the template owns.

A block runs from a line ``##<<NAME>>`` to a line ``##<</NAME>>`` (both may
be indented). Between them the template regenerates everything on
``copier update``; outside them the file belongs to the user.

Rules: exactly one begin and one end per block name in a file, the begin
first, and no block inside another. The closing spellings of the projects this
template grew from, ``##</NAME>`` and ``##</NAME>>``, are read as
``##<</NAME>>`` and rewritten so by :func:`canonical_text`. Anything else is a
:class:`MarkerError` naming the file, the block and the line.

Stdlib only: the Jinja extension loads this file by path from a clone of the
template, and the CLI imports it as ``stackplate.markers``.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

_NAME = r"[A-Z][A-Z0-9_]*"
_BEGIN = re.compile(rf"^(?P<indent>[ \t]*)##<<(?P<name>{_NAME})>>[ \t]*$")
# The canonical closer and the two legacy spellings (##</NAME> and ##</NAME>>).
_END = re.compile(rf"^(?P<indent>[ \t]*)##(?:<</(?P<name>{_NAME})>>|</(?P<legacy>{_NAME})>>?)[ \t]*$")
# Anything that starts like a marker but matches neither form above.
_LOOKS_LIKE_MARKER = re.compile(r"^[ \t]*##</?<?/?[A-Za-z]")


def begin_line(name: str) -> str:
    return f"##<<{name}>>"


def end_line(name: str) -> str:
    return f"##<</{name}>>"


class MarkerError(ValueError):
    """A file's markers break the rules; the message names file, block and line."""

    def __init__(self, filename: str, line: int, block: str | None, problem: str) -> None:
        self.filename, self.line, self.block, self.problem = filename, line, block, problem
        where = f"{filename}:{line}"
        super().__init__(f"{where}: block {block}: {problem}" if block else f"{where}: {problem}")


@dataclass(frozen=True)
class Block:
    """One block of a file. Lines are 0-based indexes into ``text.splitlines()``."""

    name: str
    begin: int
    end: int
    indent: str
    legacy_end: bool

    def body(self, lines: list[str]) -> list[str]:
        return lines[self.begin + 1 : self.end]


# ------------------------------------------------------------------ parsing


def parse(text: str, filename: str = "<text>") -> dict[str, Block]:
    """Every block of ``text`` by name, in file order; :class:`MarkerError` if a rule breaks."""
    blocks: dict[str, Block] = {}
    open_block: tuple[str, int, str] | None = None  # name, begin index, indent
    for index, line in enumerate(text.splitlines()):
        begin, end = _BEGIN.match(line), _END.match(line)
        if begin:
            open_block = _open(blocks, open_block, begin["name"], index, begin["indent"], filename)
        elif end:
            name = end["name"] or end["legacy"]
            blocks[name] = _close(blocks, open_block, name, index, end, filename)
            open_block = None
        elif _LOOKS_LIKE_MARKER.match(line):
            raise MarkerError(filename, index + 1, None, f"malformed marker line {line.strip()!r}")
    if open_block:
        name, begin_index, _ = open_block
        raise MarkerError(filename, begin_index + 1, name, "begins here and never ends")
    return blocks


def _open(
    blocks: dict[str, Block],
    open_block: tuple[str, int, str] | None,
    name: str,
    index: int,
    indent: str,
    filename: str,
) -> tuple[str, int, str]:
    if open_block:
        # Either the open block lost its end, or blocks were nested: both break the rules.
        outer, outer_begin, _ = open_block
        raise MarkerError(
            filename,
            index + 1,
            outer,
            f"begun at line {outer_begin + 1}, has no end before block {name} begins here; "
            "blocks do not nest",
        )
    if name in blocks:
        raise MarkerError(filename, index + 1, name, f"begins twice (first at line {blocks[name].begin + 1})")
    return name, index, indent


def _close(
    blocks: dict[str, Block],
    open_block: tuple[str, int, str] | None,
    name: str,
    index: int,
    end: re.Match[str],
    filename: str,
) -> Block:
    if name in blocks:
        raise MarkerError(filename, index + 1, name, f"ends twice (first at line {blocks[name].end + 1})")
    if open_block is None:
        raise MarkerError(filename, index + 1, name, "ends here before it begins")
    open_name, begin_index, indent = open_block
    if open_name != name:
        raise MarkerError(
            filename,
            index + 1,
            name,
            f"ends inside block {open_name} (line {begin_index + 1}); blocks do not nest",
        )
    return Block(name, begin_index, index, indent, legacy_end=bool(end["legacy"]))


def bodies(text: str, filename: str = "<text>") -> dict[str, str]:
    """Each block's body (the lines between its markers), by name."""
    lines = text.splitlines()
    return {name: "\n".join(block.body(lines)) for name, block in parse(text, filename).items()}


def has_markers(text: str) -> bool:
    return any(_BEGIN.match(line) or _END.match(line) for line in text.splitlines())


# -------------------------------------------------------------- rewriting


def replace_bodies(text: str, new_bodies: Mapping[str, str], filename: str = "<text>") -> str:
    """``text`` with the named blocks' bodies replaced, legacy closers made canonical.

    Every name in ``new_bodies`` must be a block of ``text``; the rest of the
    text, outside those blocks, is kept byte for byte.
    """
    blocks = parse(text, filename)
    missing = sorted(set(new_bodies) - set(blocks))
    if missing:
        raise MarkerError(filename, 1, missing[0], "is not in this file")
    lines = text.splitlines(keepends=True)
    newline = "\r\n" if lines and lines[0].endswith("\r\n") else "\n"
    for block in sorted(blocks.values(), key=lambda b: b.begin, reverse=True):
        closer = block.indent + end_line(block.name) + _line_ending(lines[block.end])
        if block.name in new_bodies:
            body = [line + newline for line in new_bodies[block.name].splitlines()]
            lines[block.begin + 1 : block.end + 1] = [*body, closer]
        elif block.legacy_end:
            lines[block.end] = closer
    return "".join(lines)


def canonical_text(text: str, filename: str = "<text>") -> str:
    """``text`` with every legacy closing marker rewritten as ``##<</NAME>>``."""
    return replace_bodies(text, {}, filename)


def _line_ending(line: str) -> str:
    return line[len(line.rstrip("\r\n")) :]


def rewrite_file(path: Path, new_bodies: Mapping[str, str], display_name: str | None = None) -> bool:
    """Replace block bodies in ``path``; True if it changed.

    The file is parsed in full before anything is written, and written through
    a temporary file and a rename, so on any error it stays byte for byte as it was.
    """
    original = path.read_bytes().decode("utf-8")
    updated = replace_bodies(original, new_bodies, display_name or str(path))
    if updated == original:
        return False
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as stream:
            stream.write(updated)
        os.chmod(temporary, path.stat().st_mode & 0o7777)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return True


# --------------------------------------------------------------- rendering


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
    return any(len(line) - len(line.lstrip()) == base and not line.lstrip().startswith("#") for line in entry)


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
