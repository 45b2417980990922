"""The general per-client rate limit (Redis and in-memory) and its 429 answer.

The limiter runs on a FakeClock (see conftest.running): windows are fixed, so on
the wall clock a test would flake whenever it straddled a window boundary.
"""

import httpx
import pytest

from tests.conftest import REDIS_URL, Account, limiter_clock, running

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
        assert limited.headers["retry-after"] == "30"  # FakeClock: 30 s into the minute
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


async def test_a_window_boundary_starts_a_new_count(
    make_settings, admin: Account, redis: bool
) -> None:
    """Fixed windows: the last moment of one still counts there, the next one starts at 0."""
    overrides = {} if redis else {"redis_url": ""}
    settings = make_settings(general_rate_limit="2/minute", **overrides)
    async with running(settings, client_ip="10.1.2.4") as (app, client):
        clock = limiter_clock(app)
        clock.advance(29.75)  # 0.25 s before the minute ends
        me = "/api/v1/users/me"
        codes = [(await client.get(me, headers=admin.headers)).status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        limited = await client.get(me, headers=admin.headers)
        assert limited.headers["retry-after"] == "1"  # never 0, though the reset is sooner
        clock.advance(0.25)  # the next minute: a fresh budget
        codes = [(await client.get(me, headers=admin.headers)).status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        assert (await client.get(me, headers=admin.headers)).headers["retry-after"] == "60"
