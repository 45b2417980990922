"""The docs blocks and scripts/docs.py: generated from the compose files for every matrix entry,
the user's own services included, and drift is caught and named."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
from matrix import MATRIX

from stackplate import compose, markers
from stackplate.check import check_project, docs_problems

OVERVIEW = "docs/architecture/overview.md"
README = "README.md"
CHECKER = "scripts/docs.py"
FIX = "run `stackplate docs` or `python3 scripts/docs.py`"


def load_checker(project: Path) -> ModuleType:
    """The project's scripts/docs.py as a module."""
    spec = importlib.util.spec_from_file_location(f"check_docs_{abs(hash(str(project)))}", project / CHECKER)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def add_placeholder_docs(project: Path) -> list[str]:
    """Empty files for the doc pages that links lead to but that are written elsewhere.

    The other pages of docs/ are written in parallel with the overview; until
    they exist, the links to them would fail every check. Only pages inside
    docs/ are made up, and only in this test project.
    """
    checker = load_checker(project)
    made = []
    for document in checker.markdown_files(project):
        for link in checker.relative_links(document.read_text(encoding="utf-8")):
            target = checker.link_target(project, document, link).resolve()
            if not target.exists() and target.is_relative_to((project / "docs").resolve()):
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text("")
                made.append(target.relative_to(project.resolve()).as_posix())
    return made


@pytest.fixture(scope="module")
def render(matrix_render, tmp_path_factory) -> Callable[[str], Path]:
    """A copy of a matrix render (once per module), with placeholders for the docs written elsewhere."""
    rendered: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in rendered:
            destination = tmp_path_factory.mktemp(name) / "project"
            shutil.copytree(matrix_render(name), destination, symlinks=True)
            add_placeholder_docs(destination)
            rendered[name] = destination
        return rendered[name]

    return get


def run_script(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python3 scripts/docs.py ARGS`` in the project, as its users run it."""
    return subprocess.run(
        [sys.executable, CHECKER, *args], cwd=project, capture_output=True, text=True, timeout=60, check=False
    )


def run_checker(project: Path) -> subprocess.CompletedProcess[str]:
    return run_script(project, "--check")


def block(project: Path, name: str, page: str = OVERVIEW) -> str:
    """The body of a docs block."""
    return markers.bodies((project / page).read_text(encoding="utf-8"), page)[name]


def diagram_blocks(project: Path) -> dict[str, str]:
    """The fenced blocks of the overview's DIAGRAMS block, by language."""
    return dict(
        re.findall(r"^```(\w+)\n(.*?)^```$", block(project, "DIAGRAMS") + "\n", re.DOTALL | re.MULTILINE)
    )


def compose_services(project: Path) -> dict[str, dict[str, dict]]:
    """The services of the development and production combinations, as Compose resolves them."""
    return {
        combination: compose.resolved(project, combination)["services"]
        for combination in ("development", "production")
    }


# ------------------------------------------------------- every matrix entry

ENTRIES = sorted(MATRIX)


@pytest.mark.parametrize("name", ENTRIES)
def test_check_docs_passes_on_a_fresh_project(render, name) -> None:
    result = run_checker(render(name))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "docs match the compose files"


@pytest.mark.parametrize("name", ENTRIES)
def test_overview_names_every_service_and_its_ports(render, name) -> None:
    project = render(name)
    text = (project / OVERVIEW).read_text(encoding="utf-8")
    rows = {line.split("|")[1].strip(): line for line in block(project, "PORTS").splitlines() if line}
    for combination, services in compose_services(project).items():
        for service, spec in services.items():
            row = rows.get(service)
            assert row, f"{name}: no table row for {service} ({combination})"
            for port in spec.get("ports", []):
                assert f"{port['published']}:{port['target']}" in row, f"{name}: {service} {port} in {row}"
    answers = MATRIX[name]
    for service in answers.get("services", []):
        assert f"| {service['name']} |" in text
        if "port" in service:
            assert f"| {service['name']} | {service['port']} | {service['port']} |" in text


@pytest.mark.parametrize("name", ENTRIES)
def test_ascii_diagram_boxes_are_sized_to_the_names(render, name) -> None:
    project = render(name)
    block = diagram_blocks(project)["text"]
    rows: list[list[str]] = []
    previous_was_box = False
    for line in block.splitlines():
        is_box = line[:1] in ("┌", "│", "└")
        if is_box and not previous_was_box:
            rows.append([])
        if is_box:
            rows[-1].append(line)
        previous_was_box = is_box
    assert rows, f"{name}: no boxes in the ASCII diagram"
    first_lines = set()
    for row in rows:
        assert len({len(line) for line in row}) == 1, f"{name}: ragged box row:\n" + "\n".join(row)
        top, *middle, bottom = row
        for box in re.finditer(r"┌(─+)┐", top):
            start, end, inner = box.start(), box.end(), len(box.group(1))
            assert bottom[start:end] == "└" + "─" * inner + "┘"
            contents = [line[start + 1 : end - 1] for line in middle]
            assert all(line[start] == "│" == line[end - 1] for line in middle)
            # One space of padding each side of the longest line: the box fits its text.
            assert all(content.startswith(" ") for content in contents)
            assert max(len(content.rstrip()) for content in contents) == inner - 1, contents
            first_lines.add(contents[0].strip())
    for services in compose_services(project).values():
        assert set(services) <= first_lines, f"{name}: {set(services) - first_lines} have no box"


@pytest.mark.parametrize("name", ENTRIES)
def test_mermaid_flowchart_shows_every_service(render, name) -> None:
    project = render(name)
    mermaid = diagram_blocks(project)["mermaid"]
    assert mermaid.startswith("flowchart ")
    for services in compose_services(project).values():
        for service in services:
            assert f'"{service}<br/>' in mermaid, f"{name}: {service} is not in the Mermaid diagram"


@pytest.mark.parametrize("name", ENTRIES)
def test_checker_merges_the_compose_files_as_compose_does(render, name) -> None:
    """The checker's own merge of the files agrees with the real Compose binary."""
    project = render(name)
    checker = load_checker(project)
    stack, problems = checker.load_stack(project)
    assert problems == []
    for combination in ("development", "production"):
        resolved = compose.resolved(project, combination)
        merged = getattr(stack, combination)
        assert set(merged["services"]) == set(resolved["services"])
        assert set(merged["volumes"]) == set(resolved["volumes"])
        assert set(merged["networks"]) == set(resolved["networks"])
        for service, spec in resolved["services"].items():
            ours = {(port[1], port[2]) for port in checker._ports(merged["services"][service].get("ports"))}
            assert ours == {(p["published"], str(p["target"])) for p in spec.get("ports", [])}, service
            limits = spec.get("deploy", {}).get("resources", {}).get("limits", {})
            our_limits = ((merged["services"][service].get("deploy") or {}).get("resources") or {}).get(
                "limits"
            )
            if limits:
                assert size_in_bytes(our_limits["memory"]) == float(limits["memory"]), service
                assert float(our_limits["cpus"]) == float(limits["cpus"]), service


def size_in_bytes(value: str) -> float:
    """A compose memory size ("512M", "1G") in bytes, as ``docker compose config`` prints it."""
    number, unit = re.fullmatch(r"([\d.]+)([kmgt]?)", value.lower()).groups()
    return float(number) * 1024 ** " kmgt".index(unit or " ")


def test_checker_declares_its_dependencies_for_uv_run(render) -> None:
    """PEP 723 metadata, so that ``uv run scripts/docs.py`` brings PyYAML along."""
    text = (render("defaults") / CHECKER).read_text(encoding="utf-8")
    block = re.search(r"^# /// script\n(.*?)^# ///$", text, re.DOTALL | re.MULTILINE)
    assert block
    metadata = tomllib.loads(
        "\n".join(line.removeprefix("#").removeprefix(" ") for line in block.group(1).splitlines())
    )
    assert metadata["requires-python"] == ">=3.11"
    assert any(dependency.startswith("pyyaml") for dependency in metadata["dependencies"])


# -------------------------------------------------------------------- drift


@pytest.fixture
def project(render, tmp_path) -> Path:
    """A fresh copy of the defaults render, to break."""
    copy = tmp_path / "project"
    shutil.copytree(render("defaults"), copy)
    return copy


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} is not in {path.name}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def add_mailhog(project: Path) -> None:
    """A service of the user's, outside the template's blocks, and not in the docs."""
    edit(
        project / "docker-compose.yml",
        "\nsecrets:\n",
        '\n  mailhog:\n    image: mailhog/mailhog:v1.0.1\n    ports:\n      - "8025:8025"\n'
        "    networks:\n      - app-network\n\nsecrets:\n",
    )


def add_volume(project: Path) -> None:
    edit(project / "docker-compose.yml", "  ##<</VOLUMES>>\n", "  ##<</VOLUMES>>\n  uploads-data:\n")


def publish_in_production(service: str, port: str) -> Callable[[Path], None]:
    def change(project: Path) -> None:
        path = project / "docker-compose.production.yml"
        # After the service's restart line, below its comments and image line if it has them.
        pattern = rf"(\n  {service}:\n(?:    .*\n)*?    restart: always\n)"
        text, count = re.subn(pattern, rf'\1    ports:\n      - "{port}"\n', path.read_text(), count=1)
        assert count == 1, f"no restart line of {service} in {path.name}"
        path.write_text(text)

    return change


def change_api_memory(project: Path) -> None:
    path = project / "docker-compose.production.yml"
    text = path.read_text(encoding="utf-8")
    api = text.index("  api:\n")
    at = text.index("memory: 1G", api)
    path.write_text(text[:at] + "memory: 2G" + text[at + len("memory: 1G") :], encoding="utf-8")


def break_a_link(project: Path) -> None:
    (project / "docs/notes.md").write_text(
        "# Notes\n\nSee [the runbook](../docs/operations/runbook.md#restart) and [the overview](architecture/overview.md).\n",
        encoding="utf-8",
    )


def stale(block_name: str, found: str, expected: str, page: str = OVERVIEW) -> tuple[str, ...]:
    """The words of a stale-block line: page, block, the first differing line found and expected."""
    return (
        f"{page}:",
        f": block {block_name} differs from what the compose files generate",
        ": found ",
        found,
        f", expected {expected}",
        FIX,
    )


def edit_ports_row_by_hand(project: Path) -> None:
    edit(project / OVERVIEW, "| api | 8000 | 8000 |", "| api | 8000 | 9999 |")


# Each case: the change, and the lines it must produce (each given by words that one line holds).
DRIFT = {
    "dev-port": (
        lambda project: edit(project / "docker-compose.development.yml", '"8000:8000"', '"8001:8000"'),
        [
            stale(
                "PORTS", "'| api | 8000 | 8000 |", "'| api | 8000 | 8001 | HTTP (JSON API, SSE) | 8001:8000 |"
            ),
            stale("SERVICES", "'| [api](docs/services/api.md)", "'| [api](docs/services/api.md)", README),
        ],
    ),
    "undocumented-service": (
        add_mailhog,
        [
            stale("DIAGRAMS", "", ""),
            stale("PORTS", "'| ollama |", "'| mailhog | 8025 | 8025 | - | 8025:8025 | 8025:8025 |'"),
            stale("RESOURCES", "found ''", "'| mailhog | 1 | - | - |'"),
            (
                "docker-compose.yml: production publishes 8025:8025 for mailhog, which is neither a "
                "frontend nor an API",
            ),
        ],
    ),
    "volume": (add_volume, [stale("VOLUMES", "found ''", "'| uploads-data | - | - | - |'")]),
    "subnet": (
        # The docs say Docker picks the subnet (the default); the user fixes one.
        lambda project: edit(
            project / "docker-compose.yml",
            "    driver: bridge\n",
            "    driver: bridge\n    ipam:\n      config:\n        - subnet: 172.21.0.0/16\n",
        ),
        [
            stale(
                "NETWORKS",
                "| app-network | bridge | - (Docker",
                "'| app-network | bridge | 172.21.0.0/16 | 172.21.0.1 |",
            )
        ],
    ),
    "worker-port-in-production": (
        publish_in_production("worker", "9090:9090"),
        [
            (
                "docker-compose.production.yml: production publishes 9090:9090 for worker, "
                "which is a node-worker service; only frontend (react-vite) and API (fastapi) services "
                "may publish ports in production",
            ),
            stale(
                "PORTS",
                "'| worker | - |",
                "'| worker | 9090 | - | AMQP client (outbound only) | - | 9090:9090 |'",
            ),
        ],
    ),
    "backing-port-in-production": (
        publish_in_production("postgres", "5432:5432"),
        [
            (
                "docker-compose.production.yml: production publishes 5432:5432 for postgres, which is "
                "neither a frontend nor an API",
            )
        ],
    ),
    "memory-limit": (
        change_api_memory,
        [stale("RESOURCES", "'| api | 1 | 1 | 1G |'", "'| api | 1 | 1 | 2G |'")],
    ),
    "edited-by-hand": (
        edit_ports_row_by_hand,
        [stale("PORTS", "'| api | 8000 | 9999 |", "'| api | 8000 | 8000 |")],
    ),
    "broken-link": (
        break_a_link,
        [
            (
                "docs/notes.md: link ../docs/operations/runbook.md#restart leads to "
                "docs/operations/runbook.md, which does not exist",
            )
        ],
    ),
}


@pytest.mark.parametrize("case", sorted(DRIFT))
def test_drift_is_caught_and_named(project, case) -> None:
    change, expected = DRIFT[case]
    change(project)
    result = run_checker(project)
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    for words in expected:
        assert any(all(word in found for word in words) for found in lines), (
            f"no line with {words!r} in:\n{result.stdout}"
        )
    assert "docs match the compose files" not in result.stdout


def test_links_to_urls_anchors_and_code_are_not_files(project) -> None:
    (project / "docs/notes.md").write_text(
        "# Notes\n\n[web](https://example.com/x.md) [mail](mailto:ops@example.com) [top](#notes)\n"
        "[overview](architecture/overview.md#ports) [root](/README.md) `[code](nowhere.md)`\n\n"
        "```markdown\n[fenced](nowhere.md)\n```\n\n[ref]: ./architecture/overview.md\n",
        encoding="utf-8",
    )
    result = run_checker(project)
    assert result.returncode == 0, result.stdout


def test_stackplate_check_reports_the_docs_drift(project) -> None:
    edit(project / "docker-compose.development.yml", '"8000:8000"', '"8001:8000"')
    problems = check_project(project)
    words = stale("PORTS", "'| api | 8000 | 8000 |", "'| api | 8000 | 8001 |")
    assert any(all(word in line for word in words) for line in problems), problems


def test_stackplate_check_skips_projects_without_the_script(project) -> None:
    """Projects rendered by template versions before the docs have no scripts/docs.py."""
    edit(project / "docker-compose.development.yml", '"8000:8000"', '"8001:8000"')
    assert docs_problems(project) != []
    (project / CHECKER).unlink()
    assert docs_problems(project) == []
