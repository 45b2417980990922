"""Data survives on the real engine: down without -v, a real ``copier update`` to a template version
that changes an image tag and adds a service, a rebuild, and up again.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from apiclient import call, login
from booting import stackplate_boot
from conftest import HOST_PORTS, copier_cli
from engine import compose_name, engine_or_fail, ensure_stand_ins, leftovers, own_network, remove_project
from matrix import ALL_DEV_OFF
from updating import edit, render_committed, versioned_template

from stackplate.compose_boot import ComposeProject

pytestmark = [pytest.mark.engine, pytest.mark.slow, HOST_PORTS]

OLD_PYTHON, NEW_PYTHON = "python:3.13.9-slim-trixie", "python:3.13.10-slim-trixie"

SESSIONS_SERVICE = """
  sessions:
    image: redis:{{ redis_version }}
    restart: unless-stopped
    healthcheck:
      test: ["CMD", "redis-cli", "ping"]
      interval: 5s
      timeout: 5s
      retries: 10
    networks:
      - {{ network_name }}
"""


def v2(template: Path) -> None:
    """Template v2: the API's Python base image moves on a patch release; a new service appears."""
    (dockerfile,) = template.glob("template/services/*fastapi*/Dockerfile.jinja")
    edit(dockerfile, OLD_PYTHON, NEW_PYTHON)
    compose = template / "template" / "docker-compose.yml.jinja"
    text = compose.read_text()
    end_of_backing = text.index("  {% endmarker %}", text.index('{% marker "BACKING_SERVICES" %}'))
    compose.write_text(text[:end_of_backing] + SESSIONS_SERVICE.lstrip("\n") + text[end_of_backing:])


def test_a_user_survives_down_and_an_update_that_changes_an_image_and_adds_a_service(tmp_path) -> None:
    engine = engine_or_fail()
    template = versioned_template(tmp_path, v2)
    project = render_committed(template, tmp_path / "project", **own_network("sp-update"), **ALL_DEV_OFF)
    ensure_stand_ins(project)
    user = {"email": "survivor@example.com", "password": "a long enough password", "full_name": "Survivor"}
    env_before = (project / "config" / ".env").read_bytes()
    try:
        with stackplate_boot(project, tmp_path / "boot-v1.log", "--engine", "docker") as booted:
            api = booted["services"]["api"]["url"]
            admin = login(api, booted["admin"]["email"], booted["admin"]["password"])
            call(f"{api}/api/v1/users", "POST", user, admin)
        # The boot ended with docker compose down, named volumes kept.
        assert leftovers(engine, "sp-update")["containers"] == []

        result = copier_cli("update", "--trust", "--defaults", "--vcs-ref", "v2", cwd=project)
        assert result.returncode == 0, result.stderr
        assert NEW_PYTHON in (project / "services" / "api" / "Dockerfile").read_text()
        ensure_stand_ins(project, fresh=False)  # the new base image; the data stays

        with stackplate_boot(project, tmp_path / "boot-v2.log", "--engine", "docker") as booted:
            api = booted["services"]["api"]["url"]
            token = login(api, user["email"], user["password"])
            me = json.loads(call(f"{api}/api/v1/users/me", token=token))
            assert me["email"] == user["email"]
            sessions = [c for c in ComposeProject(project, False).containers() if c["Service"] == "sessions"]
            assert [(c["State"], c["Health"]) for c in sessions] == [("running", "healthy")], sessions
        assert (project / "config" / ".env").read_bytes() == env_before
    finally:
        remove_project(project)
    assert leftovers(engine, compose_name(project)) == {"containers": [], "networks": [], "volumes": []}
