"""Login, token rotation with reuse detection, logout, auth failures, login rate limit."""

import time
from http.cookies import SimpleCookie

import asyncpg
import httpx
import jwt
import pytest

from app.core.security import create_access_token
from tests.conftest import JWT_SECRET, PASSWORD, REDIS_URL, Account, add_user


async def login(
    client: httpx.AsyncClient, email: str, password: str = PASSWORD, *, in_body: bool = True
) -> httpx.Response:
    """Log in as a non-browser client that asks for the refresh token in the body (default)."""
    body = {"email": email, "password": password, "include_refresh_token": in_body}
    return await client.post("/api/v1/auth/login", json=body)


async def test_login_returns_tokens_and_sets_the_refresh_cookie(
    client: httpx.AsyncClient, user: Account
) -> None:
    response = await login(client, "User@Example.com")  # e-mails are case-insensitive
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 30 * 60
    assert body["refresh_expires_in"] == 7 * 24 * 3600
    claims = jwt.decode(body["access_token"], JWT_SECRET, algorithms=["HS256"])
    assert claims["sub"] == str(user.id) and claims["role"] == "user"
    assert claims["exp"] - claims["iat"] == 30 * 60
    cookie = SimpleCookie(response.headers["set-cookie"])["refresh_token"]
    assert cookie.value == body["refresh_token"]
    assert cookie["httponly"] and cookie["samesite"].lower() == "strict"
    assert cookie["path"] == "/api/v1/auth" and not cookie["secure"]
    assert int(cookie["max-age"]) == 7 * 24 * 3600
    me = await client.get(
        "/api/v1/users/me", headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert me.status_code == 200 and me.json()["email"] == "user@example.com"
    # Where the refresh token lives: Redis when on, else PostgreSQL.
    assert body["refresh_token"].startswith("r." if REDIS_URL else "p.")


async def test_bad_credentials_answer_alike_and_always_run_bcrypt(
    client: httpx.AsyncClient, user: Account, main_app, monkeypatch: pytest.MonkeyPatch
) -> None:
    hasher = main_app.state.ctx.hasher
    seen: list[str | None] = []
    original = hasher.verify

    async def spy(password: str, hashed: str | None) -> bool:
        seen.append(hashed)
        return await original(password, hashed)

    monkeypatch.setattr(hasher, "verify", spy)
    wrong_password = await login(client, user.email, "wrong password")
    unknown_email = await login(client, "nobody@example.com", "wrong password")
    for response in (wrong_password, unknown_email):
        assert response.status_code == 401
        assert response.json() == {"detail": "Incorrect email or password"}
        assert response.headers["www-authenticate"] == "Bearer"
    assert seen[0] is not None and seen[1] is None  # the unknown e-mail hashed a dummy


async def test_inactive_user_cannot_log_in(client: httpx.AsyncClient, db: asyncpg.Pool) -> None:
    await add_user(db, "gone@example.com", is_active=False)
    assert (await login(client, "gone@example.com")).status_code == 401


async def test_login_validation(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/auth/login", json={"email": "x@example.com"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "password"]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer not-a-jwt"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
    ],
)
async def test_protected_routes_need_a_valid_bearer(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    for path in ("/api/v1/users/me", "/api/v1/users", "/api/v1/exports"):
        response = await client.get(path, headers=headers)
        assert response.status_code == 401, path
        assert response.headers["www-authenticate"].startswith("Bearer")


async def test_expired_and_foreign_tokens_are_refused(
    client: httpx.AsyncClient, user: Account
) -> None:
    now = int(time.time())
    expired = jwt.encode(
        {"sub": str(user.id), "role": "user", "type": "access", "iat": now - 120, "exp": now - 60},
        JWT_SECRET,
        algorithm="HS256",
    )
    foreign = create_access_token("x" * 40, user.id, "admin", 30)[0]
    for token in (expired, foreign):
        response = await client.get(
            "/api/v1/users/me", headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'


async def test_refresh_rotates_and_reuse_revokes_the_family(
    client: httpx.AsyncClient, user: Account
) -> None:
    first = (await login(client, user.email)).json()["refresh_token"]
    client.cookies.clear()
    rotated = await client.post("/api/v1/auth/refresh", json={"refresh_token": first})
    assert rotated.status_code == 200, rotated.text
    second = rotated.json()["refresh_token"]
    assert second != first and rotated.json()["access_token"]
    # Reusing the first (now dead) token: 401, and the whole family is revoked...
    reused = await client.post("/api/v1/auth/refresh", json={"refresh_token": first})
    assert reused.status_code == 401
    assert "reuse" in reused.json()["detail"]
    assert 'refresh_token=""' in reused.headers["set-cookie"]  # cookie cleared
    # ...so the token issued by the rotation is dead too.
    stolen = await client.post("/api/v1/auth/refresh", json={"refresh_token": second})
    assert stolen.status_code == 401


async def test_refresh_with_the_cookie(client: httpx.AsyncClient, user: Account) -> None:
    await login(client, user.email, in_body=False)
    assert client.cookies.get("refresh_token")
    old = client.cookies.get("refresh_token")
    response = await client.post("/api/v1/auth/refresh")  # cookie path /api/v1/auth matches
    assert response.status_code == 200, response.text
    assert client.cookies.get("refresh_token") != old
    # A browser (the cookie) never sees the refresh token in a body: scripts cannot read it.
    assert response.json()["refresh_token"] is None


async def test_a_browser_login_keeps_the_refresh_token_out_of_the_body(
    client: httpx.AsyncClient, user: Account
) -> None:
    response = await login(client, user.email, in_body=False)
    assert response.status_code == 200, response.text
    assert response.json()["refresh_token"] is None
    cookie = SimpleCookie(response.headers["set-cookie"])["refresh_token"]
    assert cookie.value and cookie["httponly"]
    assert cookie.value not in response.text


async def test_a_session_ends_after_its_absolute_lifetime(
    client: httpx.AsyncClient, user: Account, db: asyncpg.Pool, main_app
) -> None:
    token = (await login(client, user.email)).json()["refresh_token"]
    client.cookies.clear()
    # Rotation keeps a session going, but only until SESSION_MAX_DAYS after its login.
    rotated = await client.post("/api/v1/auth/refresh", json={"refresh_token": token})
    assert rotated.status_code == 200
    token = rotated.json()["refresh_token"]
    await age_session(main_app, db, user, days=31)
    expired = await client.post("/api/v1/auth/refresh", json={"refresh_token": token})
    assert expired.status_code == 401, expired.text


async def age_session(app, db: asyncpg.Pool, user: Account, days: int) -> None:
    """Move the start of the user's sessions *days* into the past, in whichever store."""
    await db.execute(
        "UPDATE refresh_tokens"
        " SET family_started_at = family_started_at - make_interval(days => $2)"
        " WHERE user_id = $1",
        user.id,
        days,
    )
    tokens = app.state.ctx.tokens
    redis = tokens.gate.client
    if redis is None:
        return
    for family in await redis.smembers(f"{tokens.prefix}rtu:{user.id}"):
        for digest in await redis.smembers(f"{tokens.prefix}rtf:{family.decode()}"):
            key = f"{tokens.prefix}rt:{digest.decode()}"
            started = await redis.hget(key, "c")
            if started is not None:
                await redis.hset(key, "c", int(started) - days * 86400)


async def test_a_second_login_is_its_own_family(client: httpx.AsyncClient, user: Account) -> None:
    one = (await login(client, user.email)).json()["refresh_token"]
    two = (await login(client, user.email)).json()["refresh_token"]
    client.cookies.clear()
    assert (await client.post("/api/v1/auth/refresh", json={"refresh_token": one})).is_success
    reused = await client.post("/api/v1/auth/refresh", json={"refresh_token": one})
    assert reused.status_code == 401
    other_session = await client.post("/api/v1/auth/refresh", json={"refresh_token": two})
    assert other_session.status_code == 200


async def test_refresh_without_or_with_garbage_token(client: httpx.AsyncClient) -> None:
    assert (await client.post("/api/v1/auth/refresh")).status_code == 401
    garbage = await client.post("/api/v1/auth/refresh", json={"refresh_token": "r.garbage"})
    assert garbage.status_code == 401


async def test_refresh_refused_for_a_deactivated_user(
    client: httpx.AsyncClient, user: Account, db: asyncpg.Pool
) -> None:
    token = (await login(client, user.email)).json()["refresh_token"]
    client.cookies.clear()
    await db.execute("UPDATE users SET is_active = false WHERE id = $1", user.id)
    response = await client.post("/api/v1/auth/refresh", json={"refresh_token": token})
    assert response.status_code == 401


async def test_logout_revokes_and_clears_the_cookie(
    client: httpx.AsyncClient, user: Account
) -> None:
    token = (await login(client, user.email)).json()["refresh_token"]
    response = await client.post("/api/v1/auth/logout")  # via the cookie
    assert response.status_code == 204
    assert 'refresh_token=""' in response.headers["set-cookie"]
    assert "Max-Age=0" in response.headers["set-cookie"]
    client.cookies.clear()
    dead = await client.post("/api/v1/auth/refresh", json={"refresh_token": token})
    assert dead.status_code == 401
    # Logging out twice, or with nothing, is fine.
    assert (
        await client.post("/api/v1/auth/logout", json={"refresh_token": token})
    ).status_code == 204
    assert (await client.post("/api/v1/auth/logout")).status_code == 204


async def test_login_rate_limit_per_ip_and_email(client: httpx.AsyncClient, user: Account) -> None:
    for _ in range(5):
        assert (await login(client, user.email, "wrong password")).status_code == 401
    limited = await login(client, user.email)  # even the right password: the limit comes first
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "30"  # FakeClock: 30 s into a minute
    # Another e-mail from the same address is counted separately.
    assert (await login(client, "other@example.com", "x")).status_code == 401
