"""Every rendered react-vite service passes its own lint, type check, vitest suite and production build,
and its production nginx keeps query strings out of the access log and sets X-Forwarded-For itself."""

from __future__ import annotations

import contextlib
import http.server
import json
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from matrix import MATRIX, services_of
from reports import vitest_counts

from stackplate.native import run_checked, running_frontend

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
