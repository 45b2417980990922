"""Users and roles: every endpoint, role denials, validation, conflicts, first admin."""

import uuid

import asyncpg
import httpx
import pytest

from tests.conftest import Account, add_user, running

USERS = "/api/v1/users"


async def test_admin_lists_users_paginated(
    client: httpx.AsyncClient, admin: Account, db: asyncpg.Pool
) -> None:
    for n in range(4):
        await add_user(db, f"u{n}@example.com")
    page = (await client.get(f"{USERS}?offset=1&limit=2", headers=admin.headers)).json()
    assert page["total"] == 5 and (page["offset"], page["limit"]) == (1, 2)
    assert [u["email"] for u in page["items"]] == ["u0@example.com", "u1@example.com"]
    assert set(page["items"][0]) == {
        "id", "email", "full_name", "role", "is_active", "created_at", "updated_at",
    }  # fmt: skip
    default = (await client.get(USERS, headers=admin.headers)).json()
    assert (default["offset"], default["limit"], len(default["items"])) == (0, 50, 5)


@pytest.mark.parametrize("query", ["limit=101", "limit=0", "offset=-1", "limit=abc"])
async def test_pagination_is_validated(
    client: httpx.AsyncClient, admin: Account, query: str
) -> None:
    response = await client.get(f"{USERS}?{query}", headers=admin.headers)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][0] == "query"


async def test_users_cannot_list_users(client: httpx.AsyncClient, user: Account) -> None:
    response = await client.get(USERS, headers=user.headers)
    assert response.status_code == 403


async def test_me(client: httpx.AsyncClient, user: Account) -> None:
    me = (await client.get(f"{USERS}/me", headers=user.headers)).json()
    assert (me["id"], me["email"], me["role"], me["full_name"]) == (
        str(user.id), "user@example.com", "user", "Uma User",
    )  # fmt: skip
    assert "hashed_password" not in me


async def test_me_refused_for_deleted_or_inactive_user(
    client: httpx.AsyncClient, user: Account, db: asyncpg.Pool
) -> None:
    await db.execute("UPDATE users SET is_active = false WHERE id = $1", user.id)
    assert (await client.get(f"{USERS}/me", headers=user.headers)).status_code == 401


async def test_admin_creates_users(client: httpx.AsyncClient, admin: Account) -> None:
    response = await client.post(
        USERS,
        headers=admin.headers,
        json={"email": "New@Example.com", "password": "long enough", "full_name": " New "},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["email"], body["role"], body["is_active"], body["full_name"]) == (
        "new@example.com", "user", True, "New",
    )  # fmt: skip
    assert response.headers["location"] == f"{USERS}/{body['id']}"
    login = await client.post(
        "/api/v1/auth/login", json={"email": "new@example.com", "password": "long enough"}
    )
    assert login.status_code == 200
    duplicate = await client.post(
        USERS, headers=admin.headers, json={"email": "NEW@example.com", "password": "whatever1"}
    )
    assert duplicate.status_code == 409


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"email": "not-an-email", "password": "long enough"}, "email"),
        ({"email": "a@example.com", "password": "short"}, "password"),
        ({"email": "a@example.com", "password": "é" * 40}, "password"),  # > 72 bytes
        ({"email": "a@example.com", "password": "long enough", "role": "root"}, "role"),
        ({"email": "a@example.com", "password": "long enough", "extra": 1}, "extra"),
    ],
)
async def test_create_user_validation(
    client: httpx.AsyncClient, admin: Account, payload: dict, field: str
) -> None:
    response = await client.post(USERS, headers=admin.headers, json=payload)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][-1] == field


async def test_users_cannot_create_users(client: httpx.AsyncClient, user: Account) -> None:
    response = await client.post(
        USERS, headers=user.headers, json={"email": "x@example.com", "password": "long enough"}
    )
    assert response.status_code == 403


async def test_read_user_admin_self_and_others(
    client: httpx.AsyncClient, admin: Account, user: Account, other: Account
) -> None:
    assert (await client.get(f"{USERS}/{user.id}", headers=admin.headers)).json()["id"] == str(
        user.id
    )
    assert (await client.get(f"{USERS}/{user.id}", headers=user.headers)).status_code == 200
    assert (await client.get(f"{USERS}/{other.id}", headers=user.headers)).status_code == 403
    missing = await client.get(f"{USERS}/{uuid.uuid4()}", headers=admin.headers)
    assert missing.status_code == 404
    assert (await client.get(f"{USERS}/not-a-uuid", headers=admin.headers)).status_code == 422


async def login(client: httpx.AsyncClient, email: str, password: str) -> dict:
    response = await client.post(
        "/api/v1/auth/login",
        json={"email": email, "password": password, "include_refresh_token": True},
    )
    assert response.status_code == 200, response.text
    client.cookies.clear()
    return response.json()


def bearer(tokens: dict) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


async def test_user_updates_themself_but_not_their_role(
    client: httpx.AsyncClient, user: Account
) -> None:
    url = f"{USERS}/{user.id}"
    response = await client.patch(url, headers=user.headers, json={"full_name": "Uma Renamed"})
    assert response.status_code == 200, response.text
    assert response.json()["full_name"] == "Uma Renamed"
    promote = await client.patch(url, headers=user.headers, json={"role": "admin"})
    assert promote.status_code == 403
    same_role = await client.patch(url, headers=user.headers, json={"role": "user"})
    assert same_role.status_code == 200  # not a change
    deactivate = await client.patch(url, headers=user.headers, json={"is_active": False})
    assert deactivate.status_code == 403


@pytest.mark.parametrize("change", [{"password": "a new secret"}, {"email": "uma@new.example.com"}])
async def test_a_self_change_of_password_or_email_needs_the_current_password(
    client: httpx.AsyncClient, user: Account, change: dict
) -> None:
    url = f"{USERS}/{user.id}"
    for proof in ({}, {"current_password": "not it"}):
        refused = await client.patch(url, headers=user.headers, json={**change, **proof})
        assert refused.status_code == 403, refused.text
    assert (await client.get(f"{USERS}/me", headers=user.headers)).json()["email"] == user.email
    done = await client.patch(
        url, headers=user.headers, json={**change, "current_password": user.password}
    )
    assert done.status_code == 200, done.text
    email = change.get("email", user.email)
    await login(client, email, change.get("password", user.password))


async def test_a_new_password_ends_the_other_sessions_but_not_this_one(
    client: httpx.AsyncClient, user: Account
) -> None:
    here = await login(client, user.email, user.password)
    elsewhere = await login(client, user.email, user.password)
    changed = await client.patch(
        f"{USERS}/{user.id}",
        headers=bearer(here),
        json={"password": "a new secret", "current_password": user.password},
    )
    assert changed.status_code == 200, changed.text
    refresh = "/api/v1/auth/refresh"
    stolen = await client.post(refresh, json={"refresh_token": elsewhere["refresh_token"]})
    assert stolen.status_code == 401, "the other session survived the new password"
    mine = await client.post(refresh, json={"refresh_token": here["refresh_token"]})
    assert mine.status_code == 200, mine.text
    # The access tokens issued before the change are refused; the refreshed one works.
    assert (await client.get(f"{USERS}/me", headers=bearer(elsewhere))).status_code == 401
    assert (await client.get(f"{USERS}/me", headers=bearer(mine.json()))).status_code == 200


async def test_a_demoted_admin_loses_the_admin_reads_at_once(
    client: httpx.AsyncClient, admin: Account, db: asyncpg.Pool
) -> None:
    boss = await add_user(db, "boss@example.com", "admin")
    tokens = await login(client, admin.email, admin.password)
    for _ in range(2):  # the second read is a cache hit (the fast path, with Redis)
        assert (await client.get(USERS, headers=bearer(tokens))).status_code == 200
    assert (await client.get(f"{USERS}/{boss.id}", headers=bearer(tokens))).status_code == 200
    demoted = await client.patch(f"{USERS}/{admin.id}", headers=boss.headers, json={"role": "user"})
    assert demoted.status_code == 200
    for path in (USERS, f"{USERS}/{boss.id}", f"{USERS}/{admin.id}", "/api/v1/exports"):
        response = await client.get(path, headers=bearer(tokens))
        assert response.status_code == 401, f"{path}: the old admin token still reads"
    # A refresh gives a token with the new role: a plain user's rights.
    fresh = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert (await client.get(USERS, headers=bearer(fresh.json()))).status_code == 403


async def test_a_deactivated_user_loses_the_cached_reads_at_once(
    client: httpx.AsyncClient, admin: Account, user: Account
) -> None:
    mine = f"{USERS}/{user.id}"
    for _ in range(2):
        assert (await client.get(mine, headers=user.headers)).status_code == 200
    off = await client.patch(mine, headers=admin.headers, json={"is_active": False})
    assert off.status_code == 200
    assert (await client.get(mine, headers=user.headers)).status_code == 401


async def test_user_cannot_update_others(
    client: httpx.AsyncClient, user: Account, other: Account
) -> None:
    response = await client.patch(
        f"{USERS}/{other.id}", headers=user.headers, json={"full_name": "x"}
    )
    assert response.status_code == 403


async def test_admin_updates_others(
    client: httpx.AsyncClient, admin: Account, user: Account, other: Account
) -> None:
    response = await client.patch(
        f"{USERS}/{user.id}", headers=admin.headers, json={"role": "admin", "email": "Uma@X.com"}
    )
    assert response.status_code == 200
    assert (response.json()["role"], response.json()["email"]) == ("admin", "uma@x.com")
    taken = await client.patch(
        f"{USERS}/{other.id}", headers=admin.headers, json={"email": "uma@x.com"}
    )
    assert taken.status_code == 409
    own_role = await client.patch(
        f"{USERS}/{admin.id}", headers=admin.headers, json={"role": "user"}
    )
    assert own_role.status_code == 403
    missing = await client.patch(
        f"{USERS}/{uuid.uuid4()}", headers=admin.headers, json={"full_name": "x"}
    )
    assert missing.status_code == 404
    invalid = await client.patch(f"{USERS}/{user.id}", headers=admin.headers, json={"role": "x"})
    assert invalid.status_code == 422


async def test_deactivation_revokes_refresh_tokens(
    client: httpx.AsyncClient, admin: Account, user: Account
) -> None:
    login = await client.post(
        "/api/v1/auth/login",
        json={"email": user.email, "password": user.password, "include_refresh_token": True},
    )
    refresh = login.json()["refresh_token"]
    client.cookies.clear()
    await client.patch(f"{USERS}/{user.id}", headers=admin.headers, json={"is_active": False})
    response = await client.post("/api/v1/auth/refresh", json={"refresh_token": refresh})
    assert response.status_code == 401


async def test_delete_user(
    client: httpx.AsyncClient, admin: Account, user: Account, db: asyncpg.Pool, exports_dir
) -> None:
    job_id = uuid.uuid4()
    await db.execute(
        "INSERT INTO export_jobs (id, owner_id, format, status, file_name)"
        " VALUES ($1, $2, 'csv', 'done', $3)",
        job_id,
        user.id,
        f"{job_id}.csv",
    )
    (exports_dir / f"{job_id}.csv").write_text("id,email\r\n")
    kept = exports_dir / "someone-elses.csv"
    kept.write_text("id\r\n")
    assert (await client.delete(f"{USERS}/{user.id}", headers=user.headers)).status_code == 403
    assert (await client.delete(f"{USERS}/{user.id}", headers=admin.headers)).status_code == 204
    assert (await client.get(f"{USERS}/{user.id}", headers=admin.headers)).status_code == 404
    assert await db.fetchval("SELECT count(*) FROM export_jobs") == 0  # cascaded
    assert not (exports_dir / f"{job_id}.csv").exists(), "the user's export file outlived them"
    assert kept.exists()
    assert (await client.delete(f"{USERS}/{user.id}", headers=admin.headers)).status_code == 404
    assert (await client.delete(f"{USERS}/{admin.id}", headers=admin.headers)).status_code == 403


async def test_first_admin_is_created_once(make_settings, db: asyncpg.Pool) -> None:
    settings = make_settings(first_admin_email="Boss@Example.com", first_admin_password="s3cret!!")
    for _ in range(2):  # a restart must not fail nor duplicate
        async with running(settings) as (_, client):
            login = await client.post(
                "/api/v1/auth/login", json={"email": "boss@example.com", "password": "s3cret!!"}
            )
            assert login.status_code == 200
    rows = await db.fetch("SELECT email, role FROM users")
    assert [tuple(r) for r in rows] == [("boss@example.com", "admin")]


async def test_nul_characters_are_a_422_not_a_500(
    client: httpx.AsyncClient, admin: Account
) -> None:
    created = await client.post(
        USERS,
        headers=admin.headers,
        json={"email": "n@example.com", "password": "long enough", "full_name": "a\x00b"},
    )
    assert created.status_code == 422
    login = await client.post("/api/v1/auth/login", json={"email": "a\x00@x", "password": "x"})
    assert login.status_code == 422
    huge = await client.get(f"{USERS}?offset={10**20}", headers=admin.headers)
    assert huge.status_code == 422
