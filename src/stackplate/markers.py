"""Marker blocks: the parts of a file that the template owns.

A block runs from a line ``##<<NAME>>`` to a line ``##<</NAME>>`` (both may
be indented) in compose files, or from ``<!-- <<NAME>> -->`` to
``<!-- <</NAME>> -->`` in Markdown, where the HTML comments render invisibly.
Between them the template (or the docs generator) writes everything; outside
them the file belongs to the user. A file uses one form or the other, and each
block records its form in :attr:`Block.style`.

Rules, the same for both forms: exactly one begin and one end per block name
in a file, the begin first, and no block inside another. The closing spellings
of the projects this template grew from, ``##</NAME>`` and ``##</NAME>>``, are
read as ``##<</NAME>>`` and rewritten so by :func:`canonical_text`. Anything
else that starts like a marker is a :class:`MarkerError` naming the file, the
block and the line; ordinary HTML comments are left alone.

Stdlib only: the Jinja extension loads this file by path from a clone of the
template, the CLI imports it as ``stackplate.markers``, and every rendered
project carries a byte copy as ``scripts/lib/stackplate_markers.py`` for its
own docs script.
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
# The Markdown form: the same markers inside an HTML comment, alone on the line.
_MD_BEGIN = re.compile(rf"^(?P<indent>[ \t]*)<!--[ \t]*<<(?P<name>{_NAME})>>[ \t]*-->[ \t]*$")
_MD_END = re.compile(rf"^(?P<indent>[ \t]*)<!--[ \t]*<</(?P<name>{_NAME})>>[ \t]*-->[ \t]*$")
# An HTML comment that opens like a marker (``<!-- <<``, ``<!-- <</``) but is not one.
_MD_LOOKS_LIKE_MARKER = re.compile(r"^[ \t]*<!--[ \t]*<</?")

COMPOSE = "compose"
MARKDOWN = "markdown"


def begin_line(name: str, style: str = COMPOSE) -> str:
    return f"<!-- <<{name}>> -->" if style == MARKDOWN else f"##<<{name}>>"


def end_line(name: str, style: str = COMPOSE) -> str:
    return f"<!-- <</{name}>> -->" if style == MARKDOWN else f"##<</{name}>>"


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
    style: str = COMPOSE  # COMPOSE (``##<<NAME>>``) or MARKDOWN (``<!-- <<NAME>> -->``)

    def body(self, lines: list[str]) -> list[str]:
        return lines[self.begin + 1 : self.end]


# ------------------------------------------------------------------ parsing


def _classify(line: str) -> tuple[str, str, re.Match[str]] | None:
    """("begin" or "end", style, match) for a marker line, None for any other line."""
    for kind, style, pattern in (
        ("begin", COMPOSE, _BEGIN),
        ("end", COMPOSE, _END),
        ("begin", MARKDOWN, _MD_BEGIN),
        ("end", MARKDOWN, _MD_END),
    ):
        match = pattern.match(line)
        if match:
            return kind, style, match
    return None


def parse(text: str, filename: str = "<text>") -> dict[str, Block]:
    """Every block of ``text`` by name, in file order; :class:`MarkerError` if a rule breaks."""
    blocks: dict[str, Block] = {}
    open_block: tuple[str, int, str] | None = None  # name, begin index, indent
    style: tuple[str, int] | None = None  # the file's form, and the line that set it
    for index, line in enumerate(text.splitlines()):
        found = _classify(line)
        if found is None:
            if _LOOKS_LIKE_MARKER.match(line) or _MD_LOOKS_LIKE_MARKER.match(line):
                raise MarkerError(filename, index + 1, None, f"malformed marker line {line.strip()!r}")
            continue
        kind, line_style, match = found
        style = _one_style(style, line_style, index, filename)
        if kind == "begin":
            open_block = _open(blocks, open_block, match["name"], index, match["indent"], filename)
        else:
            name = match["name"] or match.groupdict().get("legacy")
            blocks[name] = _close(blocks, open_block, name, index, match, filename, line_style)
            open_block = None
    if open_block:
        name, begin_index, _ = open_block
        raise MarkerError(filename, begin_index + 1, name, "begins here and never ends")
    return blocks


def _one_style(style: tuple[str, int] | None, line_style: str, index: int, filename: str) -> tuple[str, int]:
    """A file keeps to one form: a second one is refused, naming the line of the first."""
    if style is None:
        return line_style, index
    if style[0] != line_style:
        raise MarkerError(
            filename,
            index + 1,
            None,
            f"{line_style} marker in a file of {style[0]} markers (line {style[1] + 1}); use one form",
        )
    return style


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
    style: str = COMPOSE,
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
    legacy = bool(end.groupdict().get("legacy"))
    return Block(name, begin_index, index, indent, legacy_end=legacy, style=style)


def bodies(text: str, filename: str = "<text>") -> dict[str, str]:
    """Each block's body (the lines between its markers), by name."""
    lines = text.splitlines()
    return {name: "\n".join(block.body(lines)) for name, block in parse(text, filename).items()}


def has_markers(text: str) -> bool:
    """Whether ``text`` holds a marker line of either form.

    An HTML comment that opens like a marker counts too, so a Markdown file
    whose only markers are broken is still checked (``<!-- <<`` is rare
    enough; ``##`` alone is not, it begins many comments and headings).
    """
    return any(_classify(line) or _MD_LOOKS_LIKE_MARKER.match(line) for line in text.splitlines())


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
        closer = block.indent + end_line(block.name, block.style) + _line_ending(lines[block.end])
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


def render_block(name: str, body: str, indent: str, style: str = COMPOSE) -> str:
    """A whole block: begin line, normalised body, end line at ``indent``.

    The first line carries no indentation: it is written where the tag stood,
    after the indentation already in front of the tag. Markdown bodies are
    kept as they are, less trailing spaces (their blank lines are content).
    """
    lines = [begin_line(name, style)]
    if style == MARKDOWN:
        lines.extend(line.rstrip() for line in body.strip("\n").splitlines())
    else:
        lines.extend(normalise_body(body))
    lines.append(indent + end_line(name, style))
    return "\n".join(lines)
