"""A minimal client of the rendered API for tests: JSON calls with a bearer token."""

from __future__ import annotations

import http.client
import json
import threading
import urllib.request
from urllib.parse import urlsplit


def call(url: str, method: str = "GET", body: dict | None = None, token: str | None = None) -> bytes:
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.read()


def login(api: str, email: str, password: str) -> str:
    """An access token for the user."""
    answer = call(f"{api}/api/v1/auth/login", "POST", {"email": email, "password": password})
    return json.loads(answer)["access_token"]


class EventStream(threading.Thread):
    """Reads the API's SSE stream in the background, collecting each event's data."""

    def __init__(self, api_url: str, token: str) -> None:
        super().__init__(daemon=True)
        parts = urlsplit(api_url)
        self.connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
        self.connection.request("GET", "/api/v1/events", headers={"authorization": f"Bearer {token}"})
        self.response = self.connection.getresponse()
        assert self.response.status == 200
        self.events: list[dict] = []
        self.done = threading.Event()

    def run(self) -> None:
        for raw in self.response:
            line = raw.decode().rstrip("\n")
            if line.startswith("data: "):
                event = json.loads(line[len("data: ") :])
                self.events.append(event)
                if event["status"] in ("done", "failed"):
                    self.done.set()

    def close(self) -> None:
        self.connection.sock.close()
