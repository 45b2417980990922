"""A minimal client of the rendered API for tests: JSON calls with a bearer token."""

from __future__ import annotations

import json
import urllib.request


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
