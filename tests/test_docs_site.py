"""The documentation site (mkdocs.yml, docs/) builds strictly, and docs/cli.md documents the CLI.

The build is the real ``mkdocs build --strict``: a broken link or anchor, a page
missing from the nav or a link out of docs/ fails it (see ``validation`` in
mkdocs.yml). The CLI reference is compared with the commands registered on the
typer app, so a new command or option cannot go undocumented.
"""

from __future__ import annotations

import enum
import os
import re
import subprocess
import sys
import typing
from pathlib import Path
from typing import Any

import pytest
import typer.main
import yaml
from conftest import REPO

from stackplate.cli import app

DOCS = REPO / "docs"
CLI_DOC = DOCS / "cli.md"


def nav_pages(entries: list[Any]) -> list[str]:
    """The Markdown files of an mkdocs nav, in order (sections flattened)."""
    pages: list[str] = []
    for entry in entries:
        values = entry.values() if isinstance(entry, dict) else [entry]
        for value in values:
            pages += nav_pages(value) if isinstance(value, list) else [value]
    return pages


def built_page(site: Path, page: str) -> Path:
    """Where mkdocs (with directory URLs) writes ``page``."""
    stem = page.removesuffix(".md")
    return site / "index.html" if stem == "index" else site / stem / "index.html"


def test_site_builds_strictly_with_a_page_per_nav_entry(tmp_path) -> None:
    config = yaml.safe_load((REPO / "mkdocs.yml").read_text())
    pages = nav_pages(config["nav"])
    assert sorted(pages) == sorted(p.name for p in DOCS.glob("*.md")), "the nav and docs/*.md differ"

    site = tmp_path / "site"
    mkdocs = Path(sys.executable).with_name("mkdocs")
    result = subprocess.run(
        [str(mkdocs), "build", "--strict", "--site-dir", str(site)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for page in pages:
        assert built_page(site, page).is_file(), f"{page} was not built"


def commands() -> dict[str, Any]:
    """The app's commands by name, as the command line sees them."""
    return dict(typer.main.get_command(app).commands)


def cli_doc_sections() -> dict[str, str]:
    """docs/cli.md's ``## `stackplate NAME` `` sections by command name."""
    sections = re.split(r"^## ", CLI_DOC.read_text(), flags=re.MULTILINE)[1:]
    found = {}
    for section in sections:
        match = re.match(r"`stackplate ([a-z-]+)`\n", section)
        if match:
            found[match.group(1)] = section
    return found


def mentioned(word: str, text: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", text) is not None


def enum_choices(callback: Any, parameter: str) -> list[str]:
    """The values of an Enum-typed parameter (e.g. ``boot --engine``); none for other types."""
    hint = typing.get_type_hints(callback)[parameter]
    candidates = typing.get_args(hint) or (hint,)
    return [
        member.value
        for candidate in candidates
        if isinstance(candidate, type) and issubclass(candidate, enum.Enum)
        for member in candidate
    ]


def test_cli_doc_has_a_section_for_every_command_and_no_other() -> None:
    assert sorted(cli_doc_sections()) == sorted(commands())


@pytest.mark.parametrize("name", sorted(commands()))
def test_every_argument_option_and_choice_is_documented(name) -> None:
    section = cli_doc_sections().get(name)
    assert section is not None, f"docs/cli.md has no section `stackplate {name}`"
    command = commands()[name]
    for parameter in command.params:
        if parameter.param_type_name == "argument":
            words = [parameter.name.upper()]
        else:
            words = [*parameter.opts, *parameter.secondary_opts]
        words += enum_choices(command.callback, parameter.name)
        for word in words:
            assert mentioned(word, section), f"stackplate {name}: {word} is not in docs/cli.md"


def test_every_boot_option_and_engine_is_documented() -> None:
    boot = commands()["boot"]
    section = cli_doc_sections()["boot"]
    options = [opt for p in boot.params if p.param_type_name == "option" for opt in p.opts]
    assert "--engine" in options
    for option in options:
        assert f"`{option}" in section, f"stackplate boot {option} is not in docs/cli.md"
    for engine in enum_choices(boot.callback, "engine"):
        assert f"`--engine {engine}`" in section, f"stackplate boot --engine {engine} is not in docs/cli.md"
