"""Every rendered react-vite service passes its own lint, type check, vitest suite and production build,
and its production nginx keeps query strings out of the access log and sets X-Forwarded-For itself."""

from __future__ import annotations

import contextlib
import copy
import http.server
import json
import re
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from matrix import MATRIX, services_of
from reports import vitest_counts

from stackplate.native import run_checked, running_frontend, uv_command

# The default frontend; renamed ones are built and driven in a browser by test_boot.py.
RENDERS = ("defaults",)


@pytest.mark.slow
@pytest.mark.parametrize("answers_name", RENDERS)
def test_rendered_frontend_checks_pass(answers_name, matrix_render_copy, tmp_path, node_modules) -> None:
    answers = MATRIX[answers_name]
    project = matrix_render_copy(answers_name)
    names = [s["name"] for s in services_of(answers) if s["kind"] == "react-vite"]
    assert names, f"{answers_name} renders no react-vite service"
    for name in names:
        service_dir = project / "services" / name
        node_modules(service_dir)
        for script in ("lint", "typecheck"):
            run_checked(["npm", "run", "--silent", script], service_dir, {}, f"{name}: npm run {script}")
        report = tmp_path / f"{name}-vitest.json"
        test_command = [
            "npm",
            "test",
            "--",
            "--reporter=default",
            "--reporter=json",
            f"--outputFile.json={report}",
        ]
        run_checked(test_command, service_dir, {"CI": "1"}, f"{name}: npm test")
        vitest_counts(report).assert_all_passed(f"{name}: vitest")
        run_checked(["npm", "run", "build"], service_dir, {}, f"{name}: npm run build")
        index = (service_dir / "dist" / "index.html").read_text()
        project_name = yaml.safe_load((project / ".copier-answers.yml").read_text())["project_name"]
        assert f"<title>{project_name}</title>" in index and "/assets/" in index


# ---------------------------------------------------------------------------- the frontend's types and the API


# What the frontend's src/api/types.ts mirrors of the API's OpenAPI components. A response
# interface has exactly the component's properties, none optional (FastAPI sends every field),
# with the same types; a request interface sends some of the component's properties, every
# required one among them, with types the API accepts. Page<T> is each *Page component.
RESPONSES = {
    "User": "UserOut",
    "TokenResponse": "TokenResponse",
    "EventsTicket": "StreamTicketOut",
    "ExportJob": "ExportOut",
}
PAGES = {"User": "UserPage", "ExportJob": "ExportPage"}
REQUESTS = {"NewUser": "UserCreate", "UserChanges": "UserUpdate"}
# JobEvent is no component (server-sent events): its fields are the API's EVENT_FIELDS, typed as
# the job's (job_id as ExportOut.id).
EVENT = ("JobEvent", "ExportOut", {"job_id": "id"})

# The API's schema and event fields, printed by the rendered API itself.
OPENAPI_SCRIPT = """
import json
from app.core.broker import EVENT_FIELDS
from app.core.config import Settings
from app.main import create_app

settings = Settings(DATABASE_URL="postgresql://u:p@127.0.0.1:1/db", jwt_secret_key="k" * 48,
                    first_admin_email="", first_admin_password="", redis_url="", rabbitmq_url="")
print(json.dumps({"openapi": create_app(settings).openapi(), "event_fields": list(EVENT_FIELDS)}))
"""

_INTERFACE = re.compile(r"export interface (\w+)(?:<(\w+)>)? \{(.*?)\n\}", re.S)
_ALIAS = re.compile(r"export type (\w+) = ([^;]+);")
_FIELD = re.compile(r"^\s*(\w+)(\??): ([^;]+);", re.M)


def ts_declarations(source: str) -> tuple[dict[str, dict[str, tuple[bool, str]]], dict[str, str]]:
    """types.ts's interfaces ({name: {field: (optional, type)}}, generics by their own name) and aliases."""
    source = re.sub(r"/\*.*?\*/|//[^\n]*", "", source, flags=re.S)
    interfaces = {
        name: {field: (optional == "?", kind.strip()) for field, optional, kind in _FIELD.findall(body)}
        for name, _, body in _INTERFACE.findall(source)
    }
    return interfaces, {name: kind.strip() for name, kind in _ALIAS.findall(source)}


def ts_atoms(kind: str, aliases: dict[str, str], param: dict[str, str]) -> frozenset[str]:
    """A TypeScript type as a set of atoms: string, number, boolean, null, "literal", ref:Name, Name[]."""
    atoms: set[str] = set()
    for written in kind.split("|"):
        part = param.get(written.strip(), written.strip())
        if part in aliases:
            atoms |= ts_atoms(aliases[part], aliases, param)
        elif part.endswith("[]"):
            atoms.add(f"{'|'.join(sorted(ts_atoms(part[:-2], aliases, param)))}[]")
        elif part in ("string", "number", "boolean", "null") or part.startswith('"'):
            atoms.add(part)
        else:
            atoms.add(f"ref:{part}")
    return frozenset(atoms)


def schema_atoms(schema: dict, components: dict, refs: dict[str, str]) -> frozenset[str]:
    """A JSON schema as the same atoms; a $ref to a component that an interface mirrors is ref:<interface>."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        return (
            frozenset({f"ref:{refs[name]}"})
            if name in refs
            else schema_atoms(components[name], components, refs)
        )
    if "anyOf" in schema:
        return frozenset().union(*(schema_atoms(s, components, refs) for s in schema["anyOf"]))
    if "enum" in schema or "const" in schema:
        return frozenset(json.dumps(value) for value in schema.get("enum", [schema.get("const")]))
    if schema.get("type") == "array":
        return frozenset({f"{'|'.join(sorted(schema_atoms(schema['items'], components, refs)))}[]"})
    return frozenset({{"integer": "number"}.get(schema["type"], schema["type"])})


def field_errors(where: str, fields: dict, schema: dict, context: tuple, request: bool) -> list[str]:
    """An interface's fields against a component: names, optionality and types (see RESPONSES)."""
    aliases, param, components, refs = context
    properties, required = schema.get("properties", {}), set(schema.get("required", []))
    if request:
        errors = [f"{where}: {p} is required by the API" for p in sorted(required - fields.keys())]
    else:
        errors = [f"{where}: {p} is missing in types.ts" for p in sorted(properties.keys() - fields.keys())]
    for field, (optional, kind) in sorted(fields.items()):
        if field not in properties:
            errors.append(f"{where}: {field} is not in the API's schema")
            continue
        ours, theirs = ts_atoms(kind, aliases, param), schema_atoms(properties[field], components, refs)
        wrong = (
            (ours - theirs or (optional and field in required)) if request else (ours != theirs or optional)
        )
        if wrong:
            verb = "takes" if request else "sends"
            errors.append(f"{where}: {field}{'?' * optional} is {kind}; the API {verb} {sorted(theirs)}")
    return errors


def contract_errors(types_ts: str, api: dict) -> list[str]:
    """Where src/api/types.ts and the API's OpenAPI schema (and event fields) disagree; empty if nowhere."""
    interfaces, aliases = ts_declarations(types_ts)
    components = api["openapi"]["components"]["schemas"]
    refs = {component: interface for interface, component in RESPONSES.items()}
    known = {*RESPONSES, *REQUESTS, EVENT[0], "Page"}
    errors = [
        f"types.ts: {name} mirrors no API schema (map it in this test)" for name in interfaces.keys() - known
    ]
    checks = [(i, i, c, {}, False) for i, c in RESPONSES.items()]
    checks += [(i, i, c, {}, True) for i, c in REQUESTS.items()]
    checks += [(f"Page<{t}>", "Page", c, {"T": t}, False) for t, c in PAGES.items()]
    for where, interface, component, param, request in checks:
        if component not in components:
            errors.append(f"{where}: the API has no schema {component}")
            continue
        context = (aliases, param, components, refs)
        errors += field_errors(
            f"{where} vs {component}", interfaces.get(interface, {}), components[component], context, request
        )
    name, job, renamed = EVENT
    event = interfaces.get(name, {})
    if sorted(event) != sorted(api["event_fields"]):
        errors.append(f"{name}: fields {sorted(event)}; the API sends {sorted(api['event_fields'])}")
    # An event is the job's state: each field typed as the job's (job_id as its id).
    as_job = {renamed.get(field, field): value for field, value in event.items()}
    job_schema = components[job]
    subset = {**job_schema, "properties": {p: s for p, s in job_schema["properties"].items() if p in as_job}}
    errors += field_errors(f"{name} vs {job}", as_job, subset, (aliases, {}, components, refs), request=False)
    return errors


@pytest.mark.slow
def test_frontend_types_match_the_apis_openapi_schema(matrix_render, synced_venv) -> None:
    """types.ts against the schema the rendered API itself produces; and the check sees a rename either way."""
    project = matrix_render("defaults")
    [frontend] = [s for s in services_of(MATRIX["defaults"]) if s["kind"] == "react-vite"]
    api_name = frontend.get("api") or "api"
    env = {"UV_PROJECT_ENVIRONMENT": str(synced_venv(project / "services" / api_name))}
    printed = run_checked(
        uv_command("run", "--frozen", "python", "-c", OPENAPI_SCRIPT),
        project / "services" / api_name,
        env,
        "the API's OpenAPI schema",
    )
    api = json.loads(printed.strip().splitlines()[-1])
    types_ts = (project / "services" / frontend["name"] / "src" / "api" / "types.ts").read_text()
    assert contract_errors(types_ts, api) == []

    renamed_here = types_ts.replace("  row_count: number | null;", "  rows: number | null;", 1)
    assert "ExportJob vs ExportOut: row_count is missing in types.ts" in contract_errors(renamed_here, api)
    renamed_there = copy.deepcopy(api)
    user = renamed_there["openapi"]["components"]["schemas"]["UserOut"]["properties"]
    user["name"] = user.pop("full_name")
    assert "User vs UserOut: full_name is not in the API's schema" in contract_errors(types_ts, renamed_there)


class _EchoHeaders(http.server.BaseHTTPRequestHandler):
    """A stand-in API: answers every GET with the path and headers it received, as JSON."""

    def do_GET(self) -> None:
        body = json.dumps({"path": self.path, "headers": dict(self.headers.items())}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass  # quiet: the test reads what it needs from the answers


@contextlib.contextmanager
def _echo_upstream() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _EchoHeaders)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _get_json(url: str, headers: dict[str, str]) -> dict:
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as response:
        return json.loads(response.read())


def _logged_text(folder: Path) -> str:
    """Everything nginx wrote under ``folder`` (its logs, wherever the config sends them)."""
    return "\n".join(path.read_text(errors="replace") for path in folder.rglob("*.log"))


def _wait_logged(folder: Path, needle: str, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = _logged_text(folder)
        if needle in text:
            return text
        time.sleep(0.1)
    raise AssertionError(f"no access-log line with {needle!r} after {timeout:.0f} s:\n{_logged_text(folder)}")


def test_rendered_nginx_logs_no_query_strings_and_overwrites_forwarded_for(matrix_render, tmp_path) -> None:
    """The production nginx (real, on a loopback port) in front of an upstream that echoes headers:
    a ticket in a query string is not in any log, and a client's X-Forwarded-For is replaced."""
    project = matrix_render("defaults")  # read-only: nginx writes its files under tmp_path
    [name] = [s["name"] for s in services_of(MATRIX["defaults"]) if s["kind"] == "react-vite"]
    logs = tmp_path / "logs"
    logs.mkdir()
    with _echo_upstream() as upstream, running_frontend(project, name, upstream, logs, install=False) as web:
        spoofed = {"X-Forwarded-For": "1.2.3.4", "Accept": "text/event-stream"}
        streamed = _get_json(f"{web.url}/api/v1/events?ticket=secret-ticket&last_event_id=7", spoofed)
        listed = _get_json(f"{web.url}/api/v1/users?offset=0&note=secret-note", spoofed)

        # Proxied unchanged, but the forwarded-for chain is only the peer nginx saw.
        assert streamed["path"] == "/api/v1/events?ticket=secret-ticket&last_event_id=7"
        for seen in (streamed, listed):
            assert seen["headers"]["X-Forwarded-For"] == "127.0.0.1", seen["headers"]
            assert seen["headers"]["X-Real-IP"] == "127.0.0.1"

        logged = _wait_logged(logs, "GET /api/v1/users")
        assert "secret" not in logged, logged
        assert '"GET /api/v1/events HTTP/1.1" 200' in logged
        assert '"GET /api/v1/users HTTP/1.1" 200' in logged
