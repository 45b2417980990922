"""The update story, with real `copier update`: blocks regenerated, every outside edit kept."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import copier_cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from updating import (
    commit_all,
    edit,
    leftover_rejects,
    outside_blocks,
    versioned_template,
)

from stackplate import compose, markers
from stackplate.project import block_drift, conflicted_files, reference_render

COMPOSE_FILES = ("docker-compose.yml", "docker-compose.development.yml", "docker-compose.production.yml")
DEFAULT_SERVICES = [
    {"name": "api", "kind": "fastapi", "port": 8000},
    {"name": "worker", "kind": "node-worker"},
    {"name": "frontend", "kind": "react-vite", "port": 3000},
]
ADMIN = {"name": "admin", "kind": "react-vite", "port": 3001}


def v2_changes_inside_blocks(template: Path) -> None:
    """Template v2: a longer start period and a label on every app service (both inside blocks)."""
    compose_file = template / "template/docker-compose.yml.jinja"
    edit(compose_file, "      start_period: 20s", "      start_period: 25s")
    edit(
        compose_file,
        "    labels:\n      org.stackplate.role:",
        "    labels:\n      stackplate.kind: {{ svc.kind }}\n      org.stackplate.role:",
        1,  # the first is the app services' (the backing services have no svc)
    )


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """The template at v1 and at v2 (the change below); `pristine` and `project` build on it."""
    return versioned_template(tmp_path_factory.mktemp("versions"), v2_changes_inside_blocks)


def user_edits(project: Path) -> None:
    """What a user does outside the blocks: an own service, comments, a changed value."""
    base = project / "docker-compose.yml"
    edit(
        base,
        "  ##<</BACKING_SERVICES>>\n",
        "  ##<</BACKING_SERVICES>>\n\n  # Our mail catcher, not the template's.\n  mailpit:\n    image: axllent/mailpit:v1.27\n    networks:\n      - app-network\n",
    )
    edit(
        base,
        "name: my-stack\n\nservices:\n",
        "name: my-stack\n\n# Shared by my own services.\nx-logging: &logging\n  driver: json-file\n\nservices:\n",
    )
    edit(base, "  ##<<SERVICES>>\n", "  # --- app services (template) ---\n  ##<<SERVICES>>\n")
    edit(base, "name: my-stack\n", "name: my-shop\n")  # a value outside the blocks
    dev = project / "docker-compose.development.yml"
    edit(dev, "services:\n", "services:\n  # ports below are for my laptop\n")
    commit_all(project, "my edits")


def copier_update_cli(project: Path, *args: str) -> subprocess.CompletedProcess:
    return copier_cli("update", "--trust", "--defaults", *args, cwd=project)


def assert_clean_update(project: Path, edited: dict[str, str]) -> None:
    """Blocks are what the answers render now; what the user wrote outside is byte for byte there."""
    with reference_render(project) as reference:
        assert block_drift(project, reference) == []
    for name, before in edited.items():
        assert outside_blocks((project / name).read_text()) == outside_blocks(before), name
    assert conflicted_files(project) == []
    assert leftover_rejects(project) == []
    assert compose.problems(project) == []


@pytest.mark.slow  # a real copier update (several renders)
def test_update_adds_service_changes_port_and_image_and_keeps_user_edits(project) -> None:
    user_edits(project)
    edited = {name: (project / name).read_text() for name in COMPOSE_FILES}
    secrets_before = (project / "config/.env").read_bytes()
    services = yaml.safe_dump([*DEFAULT_SERVICES, ADMIN], default_flow_style=True).strip()
    result = copier_update_cli(
        project,
        "--vcs-ref=v2",
        f"--data=services={services}",
        "--data=postgres_port=15432",
        "--data=postgres_version=17.7-alpine3.22",
    )
    assert result.returncode == 0, result.stderr
    assert_clean_update(project, edited)
    base = (project / "docker-compose.yml").read_text()
    assert "  admin:\n" in base and "stackplate.kind: react-vite" in base and "start_period: 25s" in base
    assert "image: postgres:17.7-alpine3.22" in base
    assert base.startswith(edited["docker-compose.yml"][:200]) and "name: my-shop\n" in base
    assert '"127.0.0.1:15432:5432"' in (project / "docker-compose.development.yml").read_text()
    assert (project / "services/admin/Dockerfile").is_file()
    assert (project / "config/.env").read_bytes() == secrets_before


@pytest.mark.slow  # a real copier update (several renders)
def test_secrets_survive_every_update(project) -> None:
    before = (project / "config/.env").read_bytes()
    services = yaml.safe_dump([*DEFAULT_SERVICES, ADMIN], default_flow_style=True).strip()
    updates = (("v2", []), ("v2", ["--data=redis_port=16379"]), ("v2", [f"--data=services={services}"]))
    for ref, data in updates:
        result = copier_update_cli(project, f"--vcs-ref={ref}", *data)
        assert result.returncode == 0, result.stderr
        assert (project / "config/.env").read_bytes() == before
        commit_all(project, f"update to {ref}")


@pytest.mark.slow  # a real copier update (several renders)
def test_an_update_adds_the_new_services_secret_and_changes_no_other(project) -> None:
    """The generator runs after the update: it makes only what is missing (a new API's role password)."""
    folder = project / "config/secrets"
    before = {path.name: path.read_bytes() for path in folder.iterdir()}
    (folder / "redis_users.acl").unlink()  # lost by hand: made again from the kept password
    billing = {"name": "billing", "kind": "fastapi", "port": 8100}
    services = yaml.safe_dump([*DEFAULT_SERVICES, billing], default_flow_style=True).strip()
    result = copier_update_cli(project, "--vcs-ref=v2", f"--data=services={services}")
    assert result.returncode == 0, result.stderr
    after = {path.name: path.read_bytes() for path in folder.iterdir()}
    assert set(after) == {*before, "billing_db_password"}
    assert {name: after[name] for name in before} == before
    assert len(after["billing_db_password"]) == 32 and after["billing_db_password"] not in before.values()


# Lines a user may add outside the blocks; YAML comments keep every file valid.
comment_text = st.text(
    alphabet=st.characters(codec="ascii", categories=["L", "N"]) | st.sampled_from(" -_.:"), max_size=30
)
insertion = st.tuples(
    st.sampled_from(COMPOSE_FILES),
    st.floats(0, 1, exclude_max=True),
    comment_text,
    st.sampled_from(["", "  ", "    "]),
)


def outside_positions(text: str) -> list[int]:
    """Line indexes before which an inserted line stays outside every block."""
    blocks = markers.parse(text).values()
    count = len(text.splitlines())
    return [p for p in range(count + 1) if not any(b.begin < p <= b.end for b in blocks)]


def insert_lines(project: Path, insertions) -> dict[str, str]:
    for name, where, words, indent in insertions:
        path = project / name
        lines = path.read_text().splitlines(keepends=True)
        positions = outside_positions("".join(lines))
        lines.insert(positions[int(where * len(positions))], f"{indent}# {words}\n")
        path.write_text("".join(lines))
    return {name: (project / name).read_text() for name in COMPOSE_FILES}


@pytest.mark.slow  # property test: five real copier updates (25 s each here; the full run has 30 min)
@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(insertions=st.lists(insertion, min_size=1, max_size=6))
def test_random_edits_outside_blocks_survive_an_update(pristine, tmp_path_factory, insertions) -> None:
    project = tmp_path_factory.mktemp("random") / "project"
    shutil.copytree(pristine, project, symlinks=True)
    edited = insert_lines(project, insertions)
    commit_all(project, "random edits")
    services = yaml.safe_dump([*DEFAULT_SERVICES, ADMIN], default_flow_style=True).strip()
    result = copier_update_cli(project, "--vcs-ref=v2", f"--data=services={services}")
    assert result.returncode == 0, result.stderr
    assert_clean_update(project, edited)
