"""Docs blocks written from the merged compose files: the user's own services, volumes, networks and
ports are documented after ``stackplate docs``, and a broken docs marker is refused with nothing written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stackplate import markers
from stackplate.check import check_project
from stackplate.cli import app

REPO = Path(__file__).resolve().parents[1]
OVERVIEW = "docs/architecture/overview.md"
DOCS_PAGES = (OVERVIEW, "README.md", "docs/operations/deployment.md")


@pytest.fixture
def rendered(matrix_render) -> Path:
    """The defaults' shared render of this run: read it only."""
    return matrix_render("defaults")


@pytest.fixture
def project(matrix_render_copy) -> Path:
    return matrix_render_copy("defaults")


def insert_after(path: Path, anchor: str, text: str) -> None:
    content = path.read_text(encoding="utf-8")
    assert content.count(anchor) == 1, f"{anchor!r} is not once in {path.name}"
    path.write_text(content.replace(anchor, anchor + text), encoding="utf-8")


def docs(project: Path):
    return CliRunner().invoke(app, ["docs", str(project)])


def body(project: Path, name: str, page: str = OVERVIEW) -> str:
    return markers.bodies((project / page).read_text(encoding="utf-8"), page)[name]


def rows(project: Path, name: str, page: str = OVERVIEW) -> dict[str, str]:
    """A docs table's rows by their first cell (links reduced to their text)."""
    found = {}
    for line in [line for line in body(project, name, page).splitlines() if line.startswith("|")][2:]:
        first = line.split("|")[1].strip()
        found[first.split("]")[0].lstrip("[")] = line
    return found


def add_mine(project: Path) -> None:
    """The issue's scenario: a service of the user's, right after the template's SERVICES block."""
    insert_after(project / "docker-compose.yml", "  ##<</SERVICES>>\n", "  mine:\n    image: busybox:1.36\n")


def test_the_project_carries_the_marker_module_byte_for_byte(rendered) -> None:
    copy = rendered / "scripts/lib/stackplate_markers.py"
    assert copy.read_bytes() == (REPO / "src/stackplate/markers.py").read_bytes()


def test_a_fresh_render_has_fresh_docs_blocks(rendered) -> None:
    result = subprocess.run(
        [sys.executable, "scripts/docs.py", "--check"],
        cwd=rendered,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == "docs match the compose files\n"
    assert "| api | 8000 | 8000 |" in body(rendered, "PORTS")


def test_own_service_is_documented_after_stackplate_docs(project) -> None:
    add_mine(project)
    before = check_project(project)
    # The four: both diagrams (one block), the port table, the resource table; and the rest.
    for block in ("DIAGRAMS", "PORTS", "RESOURCES", "SERVICE_NAMES", "NETWORKS"):
        words = f"block {block} differs from what the compose files generate (it does not show mine): "
        assert any(words in line for line in before), before
    assert any("`stackplate docs`" in line for line in before)
    result = docs(project)
    assert result.exit_code == 0, result.output
    assert f"wrote {OVERVIEW}" in result.output
    assert check_project(project) == []
    ascii_art, mermaid = body(project, "DIAGRAMS").split("```mermaid")
    assert "│ mine " in ascii_art and "│ image busybox:1.36 " in ascii_art
    assert 'svc_mine["mine<br/>other, no port<br/>image busybox:1.36"]' in mermaid
    assert rows(project, "PORTS")["mine"] == "| mine | - | - | - | - | - |"
    assert rows(project, "RESOURCES")["mine"] == "| mine | 1 | - | - |"
    assert rows(project, "SERVICE_NAMES")["mine"] == "| mine | `mine` | default | development, production |"
    assert rows(project, "SERVICES", "README.md")["mine"].startswith("| mine | other | busybox:1.36 |")
    again = docs(project)
    assert again.exit_code == 0 and "docs blocks are up to date" in again.output


@pytest.mark.slow  # stackplate check renders the reference
def test_a_role_label_places_a_user_service_in_the_flows(project) -> None:
    insert_after(
        project / "docker-compose.yml",
        "  ##<</SERVICES>>\n",
        "  search:\n    image: opensearch:2\n    labels:\n      org.stackplate.role: database\n"
        "    depends_on:\n      - postgres\n",
    )
    assert docs(project).exit_code == 0
    assert "search<br/>database, no port<br/>image opensearch:2" in body(project, "DIAGRAMS")
    assert "| search | postgres | database | development, production |" in body(project, "FLOWS")
    assert check_project(project) == []


@pytest.mark.slow  # stackplate check renders the reference
def test_user_volume_and_network_are_documented(project) -> None:
    add_mine(project)
    insert_after(
        project / "docker-compose.yml",
        "    image: busybox:1.36\n",
        "    volumes:\n      - uploads:/srv/uploads\n      - ./data:/data:ro\n    networks:\n      - backend\n",
    )
    insert_after(project / "docker-compose.yml", "  ##<</VOLUMES>>\n", "  uploads:\n")
    insert_after(
        project / "docker-compose.yml",
        "  ##<</NETWORKS>>\n",
        "  backend:\n    ipam:\n      config:\n        - subnet: 10.77.0.0/24\n",
    )
    assert docs(project).exit_code == 0
    assert rows(project, "VOLUMES")["uploads"] == "| uploads | mine | /srv/uploads | - |"
    assert rows(project, "NETWORKS")["backend"] == "| backend | bridge | 10.77.0.0/24 | 10.77.0.1 | mine |"
    assert rows(project, "BIND_MOUNTS")["`./data`"] == (
        "| `./data` | mine | `/data` (read-only) | development, production |"
    )
    assert 'subgraph net_backend["network backend (10.77.0.0/24)"]' in body(project, "DIAGRAMS")
    assert check_project(project) == []


@pytest.mark.slow  # stackplate check renders the reference
def test_user_service_only_in_the_development_file(project) -> None:
    insert_after(
        project / "docker-compose.development.yml",
        "  ##<</DEVELOPMENT_SERVICES>>\n",
        '  mailer:\n    image: axllent/mailpit:v1.20\n    ports:\n      - "127.0.0.1:8025:8025"\n'
        "    networks:\n      - app-network\n",
    )
    assert any("mailer" in line for line in check_project(project))
    assert docs(project).exit_code == 0
    assert (
        rows(project, "PORTS")["mailer"]
        == "| mailer | 8025 | 8025 (127.0.0.1 only) | - | 127.0.0.1:8025:8025 | - |"
    )
    assert "mailer" not in rows(project, "RESOURCES")
    assert "mailer" not in rows(project, "PRODUCTION", "docs/operations/deployment.md")
    assert "│ development only " in body(project, "DIAGRAMS").split("│ mailer ")[1].split("└")[0]
    assert rows(project, "SERVICE_NAMES")["mailer"].endswith("| development |")
    assert check_project(project) == []


@pytest.mark.slow  # stackplate check renders the reference
def test_published_port_changed_by_hand_outside_the_blocks(project) -> None:
    add_mine(project)
    insert_after(
        project / "docker-compose.yml", "    image: busybox:1.36\n", '    ports:\n      - "9000:80"\n'
    )
    assert docs(project).exit_code == 0
    assert check_project(project) == [
        "docker-compose.yml: production publishes 9000:80 for mine, which is neither a frontend nor an API; "
        "only frontend (react-vite) and API (fastapi) services may publish ports in production"
    ]
    compose = project / "docker-compose.yml"
    compose.write_text(compose.read_text().replace('"9000:80"', '"9001:80"'))
    stale = [line for line in check_project(project) if "block PORTS" in line]
    assert len(stale) == 1
    assert "found '| mine | 80 | 9000 | - | 9000:80 | 9000:80 |'" in stale[0]
    assert "expected '| mine | 80 | 9001 | - | 9001:80 | 9001:80 |'" in stale[0]
    assert docs(project).exit_code == 0
    assert rows(project, "PORTS")["mine"] == "| mine | 80 | 9001 | - | 9001:80 | 9001:80 |"
    assert not any("block" in line for line in check_project(project))


def test_a_broken_docs_marker_is_refused_and_nothing_is_written(project) -> None:
    add_mine(project)
    overview = project / OVERVIEW
    overview.write_text(overview.read_text().replace("<!-- <</PORTS>> -->", "<!-- <</PORTS> -->"))
    line = overview.read_text().splitlines().index("<!-- <</PORTS> -->") + 1
    before = {page: (project / page).read_bytes() for page in DOCS_PAGES}
    result = docs(project)
    assert result.exit_code == 1
    message = f"{OVERVIEW}:{line}: malformed marker line '<!-- <</PORTS> -->'"
    assert message in result.output and len(result.output.strip().splitlines()) == 1, result.output
    script = subprocess.run(
        [sys.executable, "scripts/docs.py"], cwd=project, capture_output=True, text=True, check=False
    )
    assert script.returncode == 1 and message in script.stderr
    assert {page: (project / page).read_bytes() for page in DOCS_PAGES} == before
    assert message in check_project(project)


def test_docs_refuses_a_project_without_the_script(project) -> None:
    (project / "scripts/docs.py").unlink()
    result = docs(project)
    assert result.exit_code == 1
    assert "has no scripts/docs.py" in result.output
