"""Liveness, readiness, request ids, request logging, CORS and the OpenAPI document."""

import logging

import httpx
import pytest

from tests.conftest import RABBITMQ_URL, REDIS_URL, TcpProxy, redis_via, requires_redis, running


@pytest.mark.parametrize("path", ["/health", "/api/v1/health"])
async def test_liveness(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


async def test_request_id_is_echoed_or_generated(client: httpx.AsyncClient) -> None:
    given = await client.get("/health", headers={"X-Request-ID": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    generated = await client.get("/health", headers={"X-Request-ID": "bad id with spaces"})
    assert len(generated.headers["x-request-id"]) == 32


async def test_one_log_line_per_request_with_its_id(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="app.access")
    await client.get("/api/v1/users/me?access_token=secret", headers={"X-Request-ID": "req-42"})
    lines = [r for r in caplog.records if r.name == "app.access"]
    assert len(lines) == 1
    line = lines[0]
    assert (line.method, line.path, line.status) == ("GET", "/api/v1/users/me", 401)
    assert line.request_id == "req-42" and line.duration_ms >= 0
    assert "secret" not in str(line.__dict__)  # the query string is never logged


def test_json_formatter() -> None:
    import orjson

    from app.core.logging import JsonFormatter, request_id_var

    record = logging.makeLogRecord({"name": "x", "msg": "hi %s", "args": ("there",), "levelno": 30,
                                    "levelname": "WARNING", "status": 200})  # fmt: skip
    token = request_id_var.set("rid")
    try:
        data = orjson.loads(JsonFormatter("svc").format(record))
    finally:
        request_id_var.reset(token)
    assert data["message"] == "hi there" and data["level"] == "warning"
    assert (data["service"], data["request_id"], data["status"]) == ("svc", "rid", 200)


@pytest.mark.parametrize("path", ["/ready", "/api/v1/ready"])
async def test_ready(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ready" and body["failed"] == []
    assert body["checks"] == {
        "postgres": "ok",
        "redis": "ok" if REDIS_URL else "off",
        "rabbitmq": "ok" if RABBITMQ_URL else "off",
    }


@requires_redis
async def test_ready_fails_naming_redis_when_redis_goes_away(
    make_settings, redis_proxy: TcpProxy
) -> None:
    async with running(make_settings(redis_url=redis_via(redis_proxy))) as (_, client):
        assert (await client.get("/ready")).status_code == 200
        await redis_proxy.close()
        response = await client.get("/ready")
        assert response.status_code == 503
        body = response.json()
        assert body["status"] == "unavailable" and body["failed"] == ["redis"]
        assert body["checks"]["postgres"] == "ok" and body["checks"]["redis"] != "ok"
        assert (await client.get("/health")).status_code == 200  # liveness does no I/O


async def test_ready_fails_naming_postgres(make_settings) -> None:
    settings = make_settings(
        DATABASE_URL="postgresql://nobody:nothing@127.0.0.1:9/nowhere",
        readiness_timeout_seconds=1,
    )
    from app.core.state import AppContext

    # The first admin is off, so the lifespan starts without touching the database.
    async with running(settings) as (app, client):
        assert isinstance(app.state.ctx, AppContext)
        response = await client.get("/api/v1/ready")
        assert response.status_code == 503
        assert "postgres" in response.json()["failed"]


async def test_cors_preflight_allows_configured_origin(client: httpx.AsyncClient) -> None:
    response = await client.options(
        "/api/v1/auth/login",
        headers={
            "Origin": "http://localhost:3000",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "http://localhost:3000"
    assert response.headers["access-control-allow-credentials"] == "true"
    denied = await client.options(
        "/api/v1/auth/login",
        headers={"Origin": "http://evil.test", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in denied.headers


async def test_openapi_documents_models_errors_and_security(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    assert spec["components"]["securitySchemes"]["BearerToken"]["scheme"] == "bearer"
    users = spec["paths"]["/api/v1/users"]["get"]
    assert users["security"] == [{"BearerToken": []}]
    assert users["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/UserPage"
    )
    assert {"401", "403", "422"} <= set(users["responses"])
    assert "security" not in spec["paths"]["/api/v1/auth/login"]["post"]
    assert "429" in spec["paths"]["/api/v1/auth/login"]["post"]["responses"]
    assert "503" in spec["paths"]["/api/v1/exports"]["post"]["responses"]
    assert (
        "text/event-stream" in spec["paths"]["/api/v1/events"]["get"]["responses"]["200"]["content"]
    )
    expected = {
        "/health", "/ready", "/api/v1/health", "/api/v1/ready", "/api/v1/auth/login",
        "/api/v1/auth/refresh", "/api/v1/auth/logout", "/api/v1/users", "/api/v1/users/me",
        "/api/v1/users/{user_id}", "/api/v1/exports", "/api/v1/exports/{job_id}",
        "/api/v1/exports/{job_id}/download", "/api/v1/events",
    }  # fmt: skip
    assert expected <= set(spec["paths"])
