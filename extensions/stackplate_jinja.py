"""The template's Jinja vocabulary: marker blocks, answer checks, service filters.

Copier loads this file from a clone of the template (through
``copier_template_extensions.TemplateExtensionLoader``), where our package is
not installed. So it may use only the standard library and jinja2, and it
loads the shared rules (``src/stackplate/answers.py``, ``markers.py``) by file
path from the same clone, so that a template version always runs its own rules.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from jinja2 import nodes, pass_context
from jinja2.ext import Extension
from jinja2.runtime import Context

_ROOT = Path(__file__).resolve().parent.parent
# In the template repository the shared modules are in src/stackplate/; in the
# copy bundled with the installed package (stackplate/_template/) they are the
# package's own modules, one level up.
_SHARED = next(
    (folder for folder in (_ROOT / "src" / "stackplate", _ROOT.parent) if (folder / "markers.py").is_file()),
    _ROOT / "src" / "stackplate",
)


def _load_shared(name: str) -> ModuleType:
    """Import ``src/stackplate/<name>.py`` of this template clone under a private name."""
    module_name = f"_stackplate_template_{name}_{abs(hash(str(_SHARED)))}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, _SHARED / f"{name}.py")
    assert spec and spec.loader, f"cannot load {name}.py from {_SHARED}"
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


answers = _load_shared("answers")
markers = _load_shared("markers")


class MarkerBlocks(Extension):
    """``{% marker "NAME" %}…{% endmarker %}`` renders a template-owned block.

    The begin and end lines stand at the indentation of the tag, and blank
    lines in the body are normalised, so every render is byte-for-byte the same.
    """

    tags = frozenset({"marker"})

    def parse(self, parser: Any) -> nodes.Node:
        lineno = next(parser.stream).lineno
        name = parser.parse_expression()
        indent = nodes.Const(self._indent_of_line(parser.name, lineno))
        body = parser.parse_statements(("name:endmarker",), drop_needle=True)
        call = self.call_method("_render", [name, indent])
        return nodes.CallBlock(call, [], [], body).set_lineno(lineno)

    def _indent_of_line(self, template_name: str | None, lineno: int) -> str:
        """The whitespace in front of the tag, read from the template source."""
        if not template_name or self.environment.loader is None:
            return ""
        source = self.environment.loader.get_source(self.environment, template_name)[0]
        line = source.splitlines()[lineno - 1]
        return line[: len(line) - len(line.lstrip())]

    def _render(self, name: str, indent: str, caller: Any) -> str:
        return markers.render_block(name, caller(), indent)


class StackFilters(Extension):
    """Filters and globals that turn the answers into what the templates need."""

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        environment.filters.update(
            {
                "app_services": answers.app_services,
                "of_kind": _of_kind,
                "slugify": answers.slugify,
                "dns_label": answers.slugify,
                "snake": answers.snake,
                "port_mapping": _port_mapping,
                "box": _box,
                "db_clients": _db_clients,
                "image_reference": _image_reference,
                # "fastapi" | compose_limits, "redis" | kubernetes_resources: answers.RESOURCES.
                "compose_limits": answers.compose_limits,
                "kubernetes_resources": answers.kubernetes_resources,
            }
        )
        # The secrets are not rendered: scripts/generate_secrets.py makes them (a Copier task).
        environment.globals.update(
            {"answer_problem": _answer_problem, "stackplate_markers_source": _markers_source}
        )
        _print_validation_errors_on_one_line()


def _markers_source() -> str:
    """The marker module's source, byte for byte: the project's scripts/lib/stackplate_markers.py.

    One source file: the project's docs script parses its blocks with the very
    rules the template and the CLI use.
    """
    return (_SHARED / "markers.py").read_text(encoding="utf-8")


def _of_kind(services: Any, kind: str) -> list[dict[str, Any]]:
    """The normalised app services of one kind: ``services | of_kind('fastapi')``."""
    return [s for s in answers.app_services(services) if s["kind"] == kind]


def _db_clients(services: Any) -> list[dict[str, Any]]:
    """The app services that log in to PostgreSQL (APIs and workers), each as its own role."""
    return [s for s in answers.app_services(services) if s["kind"] in ("fastapi", "node-worker")]


def _image_reference(svc: dict[str, Any], project_slug: str, *, variables: bool = True) -> str:
    """The image an app service's production build is tagged with, one name for every deployment.

    ``${REGISTRY:-localhost}/<project>-<service>:${TAG:-latest}`` for compose (the
    variables choose where it is pushed and which version); ``variables=False``:
    the defaults spelled out, for files that read no environment (Kubernetes).
    """
    repository = f"{project_slug}-{svc['name']}"
    if variables:
        return f"${{REGISTRY:-{answers.IMAGE_REGISTRY}}}/{repository}:${{TAG:-{answers.IMAGE_TAG}}}"
    return f"{answers.IMAGE_REGISTRY}/{repository}:{answers.IMAGE_TAG}"


def _port_mapping(host: Any, container: Any = None, bind: str = "") -> str:
    """A quoted compose port mapping: ``8080 | port_mapping(80)`` -> ``"8080:80"``;
    ``5432 | port_mapping(bind="127.0.0.1")`` -> ``"127.0.0.1:5432:5432"`` (loopback only).

    Quoted because YAML 1.1 reads an unquoted ``22:22`` as a base-60 number.
    """
    target = host if container is None else container
    for value in (host, target):
        problem = answers.port_problem(value, "port")
        if problem:
            raise ValueError(problem)
    return f'"{bind}:{host}:{target}"' if bind else f'"{host}:{target}"'


def _box(lines: Any, padding: int = 1) -> str:
    """Lines of text in a box drawn to fit them: ``["api", ":8000"] | box``."""
    lines = [str(line) for line in ([lines] if isinstance(lines, str) else lines)]
    width = max((len(line) for line in lines), default=0) + 2 * padding
    pad = " " * padding
    body = [f"│{pad}{line.ljust(width - 2 * padding)}{pad}│" for line in lines]
    return "\n".join([f"┌{'─' * width}┐", *body, f"└{'─' * width}┘"])


@pass_context
def _answer_problem(context: Context, question: str) -> str:
    """The validator of every question: ``{{ answer_problem('redis_port') }}``.

    Returns "" for a good answer, else one line naming the value and the
    problem. The context holds this answer and every earlier one.
    """
    return answers.question_problem(question, dict(context.get_all())) or ""


def _print_validation_errors_on_one_line() -> None:
    """Make plain ``copier copy --data bad=…`` end with one line, not a traceback.

    Copier's CLI lets the ValueError of a failed validator escape as a
    traceback when answers come from ``--data``/``--data-file``. The process is
    about to exit anyway; we only change how that one kind of error is shown.
    """
    previous = sys.excepthook
    if getattr(previous, "_stackplate", False):
        return

    def hook(kind: type[BaseException], error: BaseException, tb: Any) -> None:
        if isinstance(error, ValueError) and str(error).startswith("Validation error for question"):
            print(f"copier: {error}", file=sys.stderr)
            return
        previous(kind, error, tb)

    hook._stackplate = True  # type: ignore[attr-defined]
    sys.excepthook = hook
