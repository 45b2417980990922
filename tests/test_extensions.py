"""The template's Jinja extensions, each on its own fixture template (tests/fixtures/jinja)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from jinja2 import Environment, FileSystemLoader

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures" / "jinja"


@pytest.fixture(scope="module")
def extension_module():
    spec = importlib.util.spec_from_file_location(
        "stackplate_jinja_under_test", REPO / "extensions/stackplate_jinja.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def env(extension_module) -> Environment:
    return Environment(
        loader=FileSystemLoader(FIXTURES),
        extensions=[extension_module.MarkerBlocks, extension_module.StackFilters],
        keep_trailing_newline=True,
    )


def test_marker_block_is_indented_like_its_tag_with_one_blank_line_between_services(env) -> None:
    rendered = env.get_template("compose.yml.jinja").render(names=["api", "web"])
    assert rendered == (
        "services:\n"
        "  ##<<SERVICES>>\n"
        "  # api service\n"
        "  api:\n"
        "    image: api:1\n"
        "    restart: always\n"
        "\n"
        "  # web service\n"
        "  web:\n"
        "    image: web:1\n"
        "    restart: always\n"
        "  ##<</SERVICES>>\n"
        "\n"
        "volumes:\n"
        "  ##<<VOLUMES>>\n"
        "  api-data:\n"
        "  web-data:\n"
        "  ##<</VOLUMES>>\n"
    )


def test_marker_block_renders_the_same_bytes_every_time(env) -> None:
    template = env.get_template("compose.yml.jinja")
    assert len({template.render(names=["a", "b", "c"]) for _ in range(3)}) == 1


def test_empty_marker_block_keeps_both_lines(env) -> None:
    rendered = env.get_template("empty.yml.jinja").render()
    assert rendered == "services:\n    ##<<DEVELOPMENT_SERVICES>>\n    ##<</DEVELOPMENT_SERVICES>>\n"


def test_of_kind_filter_normalises_and_selects(env) -> None:
    template = env.from_string(
        "{% for s in services | of_kind('node-worker') %}{{ s.name }}->{{ s.api }};{% endfor %}"
    )
    services = [{"name": "a", "kind": "fastapi", "port": 1}, {"name": "w", "kind": "node-worker"}]
    assert template.render(services=services) == "w->a;"


def test_answer_problem_reads_the_answers_in_context(env) -> None:
    template = env.from_string("{{ answer_problem('redis_port') }}")
    given = {"services": [{"name": "api", "kind": "fastapi", "port": 8000}], "redis": True}
    assert template.render(**given, redis_port=6379) == ""
    assert (
        template.render(**given, redis_port=8000) == "redis_port 8000 is already published by service 'api'"
    )


def test_port_mapping_quotes_host_and_container(env) -> None:
    rendered = env.get_template("ports.yml.jinja").render(postgres_port=15432)
    assert rendered == 'ports:\n  - "8000:8000"\n  - "15432:5432"\n'


@pytest.mark.parametrize("bad", [0, 70000, "80", None])
def test_port_mapping_refuses_a_non_port(env, bad) -> None:
    with pytest.raises(ValueError, match="is not a port"):
        env.from_string("{{ p | port_mapping }}").render(p=bad)


def test_box_is_drawn_to_fit_the_longest_line(env) -> None:
    service = {"name": "billing-api", "kind": "fastapi", "port": 8100}
    rendered = env.get_template("box.txt.jinja").render(service=service)
    assert rendered == ("┌───────────────┐\n│ billing-api   │\n│ fastapi :8100 │\n└───────────────┘\n")


def test_dns_label_filter_makes_names_from_free_text(env) -> None:
    assert env.from_string("{{ 'Billing API (v2)' | dns_label }}").render() == "billing-api-v2"
