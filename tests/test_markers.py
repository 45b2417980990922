"""The one marker module: parse, verify and replace blocks; legacy closers; clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from stackplate import markers

FILE = """\
services:
  # mine, before
  ##<<SERVICES>>
  api:
    image: api:1
  ##<</SERVICES>>
  mine:
    image: mine:1
volumes:
  ##<<VOLUMES>>
  data:
  ##<</VOLUMES>>
"""


def test_parse_finds_blocks_with_lines_and_indent() -> None:
    blocks = markers.parse(FILE, "compose.yml")
    assert list(blocks) == ["SERVICES", "VOLUMES"]
    services = blocks["SERVICES"]
    assert (services.begin, services.end, services.indent) == (2, 5, "  ")
    assert markers.bodies(FILE)["SERVICES"] == "  api:\n    image: api:1"


def test_replace_changes_only_the_block_body() -> None:
    updated = markers.replace_bodies(FILE, {"SERVICES": "  web:\n    image: web:2"})
    assert updated == FILE.replace("  api:\n    image: api:1", "  web:\n    image: web:2")


def test_replace_with_an_empty_body_keeps_both_marker_lines() -> None:
    updated = markers.replace_bodies(FILE, {"VOLUMES": ""})
    assert updated.endswith("volumes:\n  ##<<VOLUMES>>\n  ##<</VOLUMES>>\n")


def test_replace_keeps_crlf_line_endings() -> None:
    crlf = FILE.replace("\n", "\r\n")
    updated = markers.replace_bodies(crlf, {"SERVICES": "  web: {}"})
    assert "\r\n  web: {}\r\n  ##<</SERVICES>>\r\n" in updated
    assert "\n" not in updated.replace("\r\n", "")


@pytest.mark.parametrize("legacy", ["##</SERVICES>", "##</SERVICES>>"])
def test_legacy_closers_are_read_and_rewritten(legacy) -> None:
    old = FILE.replace("##<</SERVICES>>", legacy)
    assert markers.bodies(old) == markers.bodies(FILE)
    assert markers.canonical_text(old) == FILE
    assert markers.replace_bodies(old, {"VOLUMES": "  data:"}) == FILE


# (the broken text, the line, the block, words of the problem)
BROKEN = {
    "missing end": (FILE.replace("  ##<</VOLUMES>>\n", ""), 10, "VOLUMES", "begins here and never ends"),
    "missing end before another block": (
        FILE.replace("  ##<</SERVICES>>\n", ""),
        9,
        "SERVICES",
        "begun at line 3, has no end before block VOLUMES begins here",
    ),
    "duplicate begin": (
        FILE + "  ##<<VOLUMES>>\n  ##<</VOLUMES>>\n",
        13,
        "VOLUMES",
        "begins twice (first at line 10)",
    ),
    "reversed": ("a:\n  ##<</X>>\n  ##<<X>>\n", 2, "X", "ends here before it begins"),
    "nested": (
        "##<<OUTER>>\n##<<INNER>>\n##<</INNER>>\n##<</OUTER>>\n",
        2,
        "OUTER",
        "begun at line 1, has no end before block INNER begins here; blocks do not nest",
    ),
    "crossed": ("##<<A>>\n##<</B>>\n", 2, "B", "ends inside block A (line 1)"),
    "end twice": ("##<<A>>\n##<</A>>\n##<</A>>\n", 3, "A", "ends twice"),
}


def test_malformed_marker_line_is_an_error() -> None:
    with pytest.raises(markers.MarkerError, match=r"f.yml:2: malformed marker line '##<<SERVICES>'"):
        markers.parse("a:\n##<<SERVICES>\n", "f.yml")


def test_rewrite_file_leaves_a_broken_file_byte_for_byte(tmp_path: Path) -> None:
    path = tmp_path / "docker-compose.yml"
    broken = FILE.replace("  ##<</VOLUMES>>\n", "").encode()
    path.write_bytes(broken)
    with pytest.raises(markers.MarkerError):
        markers.rewrite_file(path, {"SERVICES": "  x: {}"})
    assert path.read_bytes() == broken
    assert [p.name for p in tmp_path.iterdir()] == ["docker-compose.yml"]


def test_rewrite_file_refuses_an_unknown_block(tmp_path: Path) -> None:
    path = tmp_path / "c.yml"
    path.write_text(FILE)
    with pytest.raises(markers.MarkerError, match="block NETWORKS: is not in this file"):
        markers.rewrite_file(path, {"NETWORKS": ""})
    assert path.read_text() == FILE


def test_rewrite_file_writes_and_reports_change(tmp_path: Path) -> None:
    path = tmp_path / "c.yml"
    path.write_text(FILE)
    path.chmod(0o640)
    assert markers.rewrite_file(path, {"VOLUMES": "  other:"}) is True
    assert "  other:\n" in path.read_text()
    assert path.stat().st_mode & 0o777 == 0o640
    assert markers.rewrite_file(path, {"VOLUMES": "  other:"}) is False


def test_normalised_body_puts_one_blank_line_between_multi_line_entries() -> None:
    body = "\n\n  a:\n    x: 1\n\n\n  # about b\n  b:\n    y: 2   \n  c:\n\n  d:\n"
    assert markers.normalise_body(body) == [
        "  a:",
        "    x: 1",
        "",
        "  # about b",
        "  b:",
        "    y: 2",
        "",
        "  c:",
        "  d:",
    ]


# ------------------------------------------------------------ Markdown form

MARKDOWN = """\
# Overview

Prose of the user's.

<!-- <<PORTS>> -->
| Service | Port |
| --- | --- |
| api | 8000 |
<!-- <</PORTS>> -->

<!-- an ordinary comment, left alone -->
  <!-- <<VOLUMES>> -->
  - data
  <!-- <</VOLUMES>> -->
"""


def test_markdown_blocks_parse_with_their_style() -> None:
    blocks = markers.parse(MARKDOWN, "overview.md")
    assert list(blocks) == ["PORTS", "VOLUMES"]
    assert (blocks["PORTS"].begin, blocks["PORTS"].end, blocks["PORTS"].style) == (4, 8, markers.MARKDOWN)
    assert blocks["VOLUMES"].indent == "  "
    assert markers.bodies(MARKDOWN)["VOLUMES"] == "  - data"
    assert all(block.style == markers.COMPOSE for block in markers.parse(FILE).values())
    assert markers.has_markers(MARKDOWN)
    assert not markers.has_markers("# Title\n\n<!-- just a comment -->\n")


def test_markdown_replace_keeps_the_prose_and_the_markdown_closer() -> None:
    updated = markers.replace_bodies(
        MARKDOWN, {"PORTS": "| Service | Port |\n| --- | --- |\n\n| mine | 80 |"}
    )
    assert "| mine | 80 |\n<!-- <</PORTS>> -->\n" in updated
    assert "\n\n| mine | 80 |" in updated  # blank lines of a Markdown body are content
    assert updated.startswith("# Overview\n\nProse of the user's.\n\n<!-- <<PORTS>> -->\n")
    assert updated.endswith(
        "<!-- an ordinary comment, left alone -->\n" + MARKDOWN.split("left alone -->\n")[1]
    )


def test_markdown_render_block_uses_the_comment_form() -> None:
    assert markers.render_block("PORTS", "\n| a |  \n\n| b |\n", "", markers.MARKDOWN) == (
        "<!-- <<PORTS>> -->\n| a |\n\n| b |\n<!-- <</PORTS>> -->"
    )


MARKDOWN_BROKEN = {
    "missing end": (MARKDOWN.replace("<!-- <</PORTS>> -->\n", ""), 11, "PORTS", "has no end before block"),
    "duplicate begin": (
        MARKDOWN + "<!-- <<PORTS>> -->\n<!-- <</PORTS>> -->\n",
        15,
        "PORTS",
        "begins twice (first at line 5)",
    ),
    "reversed": ("<!-- <</X>> -->\n<!-- <<X>> -->\n", 1, "X", "ends here before it begins"),
    "nested": (
        "<!-- <<OUTER>> -->\n<!-- <<INNER>> -->\n<!-- <</INNER>> -->\n<!-- <</OUTER>> -->\n",
        2,
        "OUTER",
        "blocks do not nest",
    ),
    "never ends": ("<!-- <<X>> -->\ntext\n", 1, "X", "begins here and never ends"),
}


# Both forms break the same rules, and are named the same way.
BROKEN_IN = {"docker-compose.yml": BROKEN, "docs/overview.md": MARKDOWN_BROKEN}


@pytest.mark.parametrize(
    ("filename", "case"),
    [(filename, case) for filename, cases in BROKEN_IN.items() for case in sorted(cases)],
)
def test_broken_markers_name_file_block_and_line(filename, case) -> None:
    text, line, block, words = BROKEN_IN[filename][case]
    with pytest.raises(markers.MarkerError) as error:
        markers.parse(text, filename)
    assert (error.value.filename, error.value.line, error.value.block) == (filename, line, block)
    assert str(error.value).startswith(f"{filename}:{line}: block {block}: ")
    assert words in str(error.value)


@pytest.mark.parametrize("line", ["<!-- <<ports -->", "<!-- <</PORTS> -->", "<!-- <<PORTS>> --> tail"])
def test_malformed_markdown_marker_line_is_an_error(line) -> None:
    text = MARKDOWN.replace("<!-- <</PORTS>> -->", line)
    assert markers.has_markers(text)
    with pytest.raises(markers.MarkerError, match=r"o.md:9: malformed marker line"):
        markers.parse(text, "o.md")


def test_a_file_keeps_to_one_form() -> None:
    with pytest.raises(markers.MarkerError, match=r"m.md:3: markdown marker in a file of compose markers"):
        markers.parse("##<<A>>\n##<</A>>\n<!-- <<B>> -->\n<!-- <</B>> -->\n", "m.md")


def test_markdown_rewrite_leaves_a_broken_file_byte_for_byte(tmp_path: Path) -> None:
    path = tmp_path / "overview.md"
    broken = MARKDOWN.replace("<!-- <</VOLUMES>> -->", "<!-- <</VOLUMES> -->").encode()
    path.write_bytes(broken)
    with pytest.raises(markers.MarkerError):
        markers.rewrite_file(path, {"PORTS": "| x |"})
    assert path.read_bytes() == broken
