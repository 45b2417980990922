"""The questions reference (docs/questions.md), generated from copier.yml so it cannot drift.

Run ``python -m stackplate.questions_doc > docs/questions.md`` after changing
copier.yml; a test fails while the two disagree.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

HEADER = """# Questions

Generated from `copier.yml` by `python -m stackplate.questions_doc`; do not edit by hand.

Answer them interactively (`copier copy --trust TEMPLATE DEST`), or give them
with `--data name=value` / `--data-file answers.yml` (or `stackplate new DEST
--data name=value`). A bad answer stops the render with one line naming the
question and the value; nothing is written.

| Question | Type | Default | Asked when | What it is |
| --- | --- | --- | --- | --- |
"""

RULES = """
## Rules the validators enforce

- Service names, `project_slug` and `network_name` are DNS labels: 1-63 lowercase
  letters, digits and `-`, starting with a letter, not ending with `-`.
- Service names are unique and do not take the name of a backing or development
  service (`postgres`, `redis`, `rabbitmq`, `ollama`, `pgadmin`, `redis-commander`).
- Each `services` entry is `{name, kind, port}` with kind `fastapi`, `node-worker` or
  `react-vite`; a `node-worker` has no port; a `node-worker` or `react-vite` entry may
  name the API it serves with `api: NAME` (default: the first `fastapi` service), and
  a `react-vite` service needs one.
- Ports are 1-65535 and no two published ports are equal (app service ports, and the
  port of every backing and development service that is on).
- `fastapi` needs `postgres`; `node-worker` needs `rabbitmq` and `postgres`;
  `pgadmin` needs `postgres`; `redis_commander` needs `redis`.
- `network_subnet` is empty (Docker picks a free subnet) or a private IPv4 CIDR network
  with room for every service.
- `production_cors_origins` is empty or a comma-separated list of origins (`scheme://host[:port]`).
"""


def _cell(value: object) -> str:
    text = " ".join(str(value).split())
    return text.replace("|", "\\|") or " "


def render(copier_yml: Path) -> str:
    questions = {
        name: spec
        for name, spec in yaml.safe_load(copier_yml.read_text()).items()
        if not name.startswith("_")
    }
    rows = []
    for name, spec in questions.items():
        default = spec.get("default", "")
        if spec.get("type") == "yaml":
            default = "see below"
        rows.append(
            f"| `{name}` | {spec.get('type', 'str')} | `{_cell(default)}` | "
            f"{_cell(spec.get('when', 'always'))} | {_cell(spec.get('help', ''))} |"
        )
    services_default = questions["services"]["default"].rstrip()
    return (
        HEADER
        + "\n".join(rows)
        + "\n\n## Default `services`\n\n```yaml\n"
        + services_default
        + "\n```\n"
        + RULES
    )


if __name__ == "__main__":
    root = Path(__file__).resolve().parents[2]
    sys.stdout.write(render(root / "copier.yml"))
