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
import shlex
import subprocess
import sys
import typing
from pathlib import Path
from typing import Any

import pytest
import typer
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


# ------------------------------------------------ usage lines and examples


def long_option(parameter: Any) -> str:
    return next(opt for opt in parameter.opts if opt.startswith("--"))


def value_name(command: Any, parameter: Any) -> str:
    """What an option's value is called: its metavar, else its choices, else its name."""
    choices = enum_choices(command.callback, parameter.name)
    return parameter.metavar or ("|".join(choices) if choices else parameter.name.upper())


def usage_piece(command: Any, parameter: Any) -> str:
    if parameter.param_type_name == "argument":
        word = parameter.name.upper()
        return word if parameter.required else f"[{word}]"
    if parameter.is_flag:
        text = " | ".join([long_option(parameter), *parameter.secondary_opts])
    else:
        text = f"{long_option(parameter)} {value_name(command, parameter)}"
    text = text if parameter.required else f"[{text}]"
    return text + "..." if parameter.multiple else text


def usage(name: str, command: Any) -> str:
    """A command's usage line as docs/cli.md writes it: arguments, then options in their order."""
    arguments = [p for p in command.params if p.param_type_name == "argument"]
    options = [p for p in command.params if p.param_type_name == "option"]
    return " ".join([f"stackplate {name}", *(usage_piece(command, p) for p in [*arguments, *options])])


def documented_usage(section: str) -> str:
    """The first ```text block of a cli.md section, its continuation lines joined."""
    match = re.search(r"^```text\n(.*?)^```", section, re.DOTALL | re.MULTILINE)
    assert match, "the section has no ```text usage block"
    return " ".join(match.group(1).split())


@pytest.mark.parametrize("name", sorted(commands()))
def test_usage_line_in_the_docs_is_the_commands_own(name) -> None:
    section = cli_doc_sections().get(name)
    assert section is not None, f"docs/cli.md has no section `stackplate {name}`"
    assert documented_usage(section) == usage(name, commands()[name])


@pytest.mark.parametrize("name", sorted(commands()))
def test_help_of_every_command_runs(name) -> None:
    console_script = Path(sys.executable).with_name("stackplate")
    result = subprocess.run(
        [str(console_script), name, "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr


def command_lines(text: str) -> list[str]:
    """``stackplate ...`` lines of the fenced code blocks, continuations joined, comments dropped."""
    found = []
    for block in re.findall(r"^```[^\n]*\n(.*?)^```", text, re.DOTALL | re.MULTILINE):
        for raw in block.replace("\\\n", " ").splitlines():
            line = raw.strip().removeprefix("$ ")
            if line.startswith("stackplate ") and not line.startswith("stackplate [--help]"):
                found.append(line)
    return found


def example_arguments(line: str) -> list[str]:
    """An example's arguments: shell comments and redirections dropped, ``[--opt X]`` taken as given."""
    words = shlex.split(line.replace("[", " ").replace("]", " "), comments=True)[1:]
    for index, word in enumerate(words):
        if word in ("&", "|", ";", "&&") or re.match(r"\d?>", word):
            return words[:index]
    return words


def docs_examples() -> list[tuple[str, str]]:
    """Every stackplate command line in the docs site and the README, but cli.md's usage lines."""
    pages = [*sorted(DOCS.glob("*.md")), REPO / "README.md"]
    return [
        (page.relative_to(REPO).as_posix(), line)
        for page in pages
        if page != CLI_DOC
        for line in command_lines(page.read_text())
    ]


def test_the_docs_show_command_examples() -> None:
    assert len(docs_examples()) >= 10


@pytest.mark.parametrize(("page", "line"), docs_examples())
def test_every_command_example_in_the_docs_is_a_valid_command_line(page, line) -> None:
    """Parsed by the CLI itself (nothing runs): a renamed option or a wrong choice fails here."""
    name, *arguments = example_arguments(line)
    command = commands().get(name)
    assert command is not None, f"{page}: `{line}` names no command"
    try:
        command.make_context(f"stackplate {name}", arguments)
    except typer.TyperException as error:  # the CLI's parse errors (click's, inside typer)
        pytest.fail(f"{page}: `{line}`: {error.format_message()}")
