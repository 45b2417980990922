"""API_DOCS_ENABLED, and a /ready that is rate-limited and tells no internals."""

import logging

import httpx
import pytest
from fastapi import FastAPI

from tests.conftest import running

DOCS = ("/docs", "/redoc", "/openapi.json")


async def test_docs_are_served_by_default(client: httpx.AsyncClient) -> None:
    for path in DOCS:
        assert (await client.get(path)).status_code == 200, path


async def test_docs_disabled_are_404(make_settings) -> None:
    async with running(make_settings(api_docs_enabled=False)) as (_, client):
        for path in DOCS:
            assert (await client.get(path)).status_code == 404, path
        assert (await client.get("/health")).status_code == 200


def test_api_docs_enabled_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, make_settings
) -> None:
    monkeypatch.setenv("API_DOCS_ENABLED", "false")
    from app.core.config import Settings

    assert Settings(jwt_secret_key="x" * 32).api_docs_enabled is False


async def test_ready_names_the_failed_service_but_no_detail(
    make_settings, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(
        DATABASE_URL="postgresql://nobody:nothing@127.0.0.1:9/nowhere",
        readiness_timeout_seconds=1,
    )
    caplog.set_level(logging.WARNING, logger="app.health")
    async with running(settings) as (_, client):
        response = await client.get("/ready")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable" and body["failed"] == ["postgres"]
    assert body["checks"]["postgres"] == "down"
    assert set(body["checks"].values()) <= {"ok", "off", "down"}
    for secret in ("127.0.0.1", "nowhere", "nobody", "Error", "refused", ":9"):
        assert secret not in response.text, secret
    logged = " ".join(r.getMessage() for r in caplog.records if r.name == "app.health")
    assert "postgres" in logged and ("Error" in logged or "did not answer" in logged)


async def test_ready_has_its_own_rate_limit(make_settings) -> None:
    async with running(make_settings(ready_rate_limit="2/hour"), "10.7.7.7") as (app, client):
        codes = [(await client.get(path)).status_code for path in ("/ready", "/api/v1/ready")]
        assert codes == [200, 200]
        limited = await client.get("/ready")
        assert limited.status_code == 429
        assert limited.headers["retry-after"] == "1770"  # FakeClock: 1830 s into an hour
        assert (await client.get("/health")).status_code == 200  # liveness stays free
        async with other_client(app) as other:  # another client has its own budget
            assert (await other.get("/ready")).status_code == 200


def other_client(app: FastAPI) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=("10.8.8.8", 1))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")
