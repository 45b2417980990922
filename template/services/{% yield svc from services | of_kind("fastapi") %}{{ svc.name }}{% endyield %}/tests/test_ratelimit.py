"""The general per-client rate limit (Redis and in-memory) and its 429 answer."""

import httpx
import pytest

from tests.conftest import REDIS_URL, Account, running

pytestmark = pytest.mark.parametrize(
    "redis",
    [
        pytest.param(
            True, id="redis", marks=pytest.mark.skipif(not REDIS_URL, reason="Redis is off")
        ),
        pytest.param(False, id="memory"),
    ],
)


async def test_general_limit_per_client(make_settings, admin: Account, redis: bool) -> None:
    overrides = {} if redis else {"redis_url": ""}
    settings = make_settings(general_rate_limit="3/minute", **overrides)
    async with running(settings, client_ip="10.1.2.3") as (app, client):
        assert app.state.ctx.redis.enabled is redis
        codes = []
        for path in ["/api/v1/users", f"/api/v1/users/{admin.id}", "/api/v1/users/me"] * 2:
            codes.append((await client.get(path, headers=admin.headers)).status_code)
        assert codes == [200, 200, 200, 429, 429, 429]
        limited = await client.get("/api/v1/users", headers=admin.headers)
        assert limited.status_code == 429
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        assert "Too many requests" in limited.json()["detail"]
        # Probes are never limited; another client has its own budget.
        assert (await client.get("/health")).status_code == 200
        assert (await client.get("/ready")).status_code == 200
        other = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=("10.9.9.9", 1)),
            base_url="http://testserver",
        )
        async with other:
            assert (await other.get("/api/v1/users", headers=admin.headers)).status_code == 200
