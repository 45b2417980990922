"""Read-through cache (hit, miss, invalidation), Redis going away, and the fallbacks."""

import logging

import asyncpg
import httpx
import pytest

from tests.conftest import Account, TcpProxy, redis_via, requires_redis, running

USERS = "/api/v1/users"


async def rename_behind_the_cache(db: asyncpg.Pool, account: Account, name: str) -> None:
    await db.execute("UPDATE users SET full_name = $1 WHERE id = $2", name, account.id)


async def names(client: httpx.AsyncClient, admin: Account) -> list[str | None]:
    response = await client.get(USERS, headers=admin.headers)
    assert response.status_code == 200
    return [u["full_name"] for u in response.json()["items"]]


@requires_redis
async def test_list_hit_miss_and_invalidation(
    client: httpx.AsyncClient, admin: Account, user: Account, db: asyncpg.Pool
) -> None:
    assert await names(client, admin) == ["Ada Admin", "Uma User"]  # miss: from PostgreSQL
    await rename_behind_the_cache(db, user, "Changed in SQL")
    # A hit: the database is not read, so the change made behind the API's back is not seen.
    assert await names(client, admin) == ["Ada Admin", "Uma User"]
    # Another page is another entry (a miss), read from the database.
    other_page = await client.get(f"{USERS}?limit=1&offset=1", headers=admin.headers)
    assert other_page.json()["items"][0]["full_name"] == "Changed in SQL"
    # A write through the API invalidates every cached page and item.
    patched = await client.patch(
        f"{USERS}/{admin.id}", headers=admin.headers, json={"full_name": "Ada Again"}
    )
    assert patched.status_code == 200
    assert await names(client, admin) == ["Ada Again", "Changed in SQL"]


@requires_redis
async def test_item_hit_and_invalidation_by_create_and_delete(
    client: httpx.AsyncClient, admin: Account, user: Account, db: asyncpg.Pool
) -> None:
    url = f"{USERS}/{user.id}"
    first = await client.get(url, headers=user.headers)  # the user reads themself: a miss
    await rename_behind_the_cache(db, user, "Changed in SQL")
    hit = await client.get(url, headers=user.headers)
    assert hit.content == first.content  # the very same bytes, from Redis
    assert (await client.get(url, headers=admin.headers)).json()["full_name"] == "Uma User"
    created = await client.post(
        USERS, headers=admin.headers, json={"email": "n@example.com", "password": "long enough"}
    )
    assert created.status_code == 201
    assert (await client.get(url, headers=admin.headers)).json()["full_name"] == "Changed in SQL"
    assert (await names(client, admin))[-1] is None  # the new user is listed
    await client.delete(f"{USERS}/{created.json()['id']}", headers=admin.headers)
    assert len(await names(client, admin)) == 2


@requires_redis
async def test_cache_hit_still_checks_the_token_and_role(
    client: httpx.AsyncClient, admin: Account, user: Account, other: Account
) -> None:
    assert (await client.get(USERS, headers=admin.headers)).status_code == 200  # now cached
    assert (await client.get(f"{USERS}/{other.id}", headers=admin.headers)).status_code == 200
    assert (await client.get(USERS)).status_code == 401
    assert (await client.get(USERS, headers={"Authorization": "Bearer x.y.z"})).status_code == 401
    assert (await client.get(USERS, headers=user.headers)).status_code == 403
    assert (await client.get(f"{USERS}/{other.id}", headers=user.headers)).status_code == 403
    assert (await client.get(f"{USERS}?limit=500", headers=admin.headers)).status_code == 422


@requires_redis
async def test_redis_down_mid_run_answers_from_postgres(
    make_settings,
    redis_proxy: TcpProxy,
    admin: Account,
    user: Account,
    db: asyncpg.Pool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="app.redis")
    async with running(make_settings(redis_url=redis_via(redis_proxy))) as (app, client):
        assert await names(client, admin) == ["Ada Admin", "Uma User"]  # cached now
        await redis_proxy.close()  # Redis goes away
        await rename_behind_the_cache(db, user, "Fresh from PostgreSQL")
        for _ in range(5):
            assert await names(client, admin) == ["Ada Admin", "Fresh from PostgreSQL"]
        item = await client.get(f"{USERS}/{user.id}", headers=user.headers)
        assert item.status_code == 200 and item.json()["full_name"] == "Fresh from PostgreSQL"
        # Writes still work (their cache invalidation is retried once Redis is back).
        patched = await client.patch(
            f"{USERS}/{user.id}", headers=admin.headers, json={"full_name": "Written"}
        )
        assert patched.status_code == 200
        assert app.state.ctx.cache._pending == {"users"}
        # Login works: the refresh token goes to PostgreSQL, and it rotates there.
        login = await client.post(
            "/api/v1/auth/login",
            json={"email": user.email, "password": user.password, "include_refresh_token": True},
        )
        assert login.status_code == 200
        refresh = login.json()["refresh_token"]
        assert refresh.startswith("p.")
        client.cookies.clear()
        rotated = await client.post("/api/v1/auth/refresh", json={"refresh_token": refresh})
        assert rotated.status_code == 200 and rotated.json()["refresh_token"].startswith("p.")
    warnings = [r for r in caplog.records if r.name == "app.redis" and r.levelname == "WARNING"]
    assert len(warnings) == 1  # logged once, not once per request
    assert "Redis unavailable" in warnings[0].getMessage()


@requires_redis
async def test_a_redis_refresh_token_while_redis_is_down_is_a_503(
    make_settings, redis_proxy: TcpProxy, user: Account
) -> None:
    async with running(make_settings(redis_url=redis_via(redis_proxy))) as (_, client):
        login = await client.post(
            "/api/v1/auth/login",
            json={"email": user.email, "password": user.password, "include_refresh_token": True},
        )
        refresh = login.json()["refresh_token"]
        assert refresh.startswith("r.")
        await redis_proxy.close()
        client.cookies.clear()
        response = await client.post("/api/v1/auth/refresh", json={"refresh_token": refresh})
        assert response.status_code == 503 and response.headers["retry-after"]


async def test_without_redis_everything_works_from_postgres(
    make_settings, admin: Account, user: Account, db: asyncpg.Pool
) -> None:
    async with running(make_settings(redis_url="", login_rate_limit="2/minute")) as (app, client):
        assert not app.state.ctx.redis.enabled
        assert await names(client, admin) == ["Ada Admin", "Uma User"]
        await rename_behind_the_cache(db, user, "No cache at all")
        assert await names(client, admin) == ["Ada Admin", "No cache at all"]
        ready = (await client.get("/ready")).json()
        assert ready["checks"]["redis"] == "off" and ready["status"] == "ready"
        # Refresh tokens in the refresh_tokens table, with rotation and reuse detection.
        login = await client.post(
            "/api/v1/auth/login",
            json={"email": user.email, "password": user.password, "include_refresh_token": True},
        )
        first = login.json()["refresh_token"]
        assert first.startswith("p.")
        stored = await db.fetchval(
            "SELECT count(*) FROM refresh_tokens WHERE user_id = $1", user.id
        )
        assert stored == 1
        client.cookies.clear()
        second = (await client.post("/api/v1/auth/refresh", json={"refresh_token": first})).json()[
            "refresh_token"
        ]
        reused = await client.post("/api/v1/auth/refresh", json={"refresh_token": first})
        assert reused.status_code == 401
        dead = await client.post("/api/v1/auth/refresh", json={"refresh_token": second})
        assert dead.status_code == 401
        assert await db.fetchval("SELECT count(*) FROM refresh_tokens") == 0
        # Rate limits in process memory.
        wrong = {"email": admin.email, "password": "wrong password"}
        codes = [
            (await client.post("/api/v1/auth/login", json=wrong)).status_code for _ in range(3)
        ]
        assert codes == [401, 401, 429]


async def test_cached_and_uncached_answers_are_the_same_json(
    client: httpx.AsyncClient, admin: Account, user: Account
) -> None:
    """The read-through paths serialise rows directly; they must match the models' JSON."""
    me = (await client.get(f"{USERS}/me", headers=user.headers)).json()  # via pydantic
    item = (await client.get(f"{USERS}/{user.id}", headers=user.headers)).json()
    listed = (await client.get(USERS, headers=admin.headers)).json()["items"]
    assert item == me
    assert listed[1] == me
    again = await client.get(f"{USERS}/{user.id}", headers=user.headers)  # a hit when Redis is on
    assert again.json() == me
