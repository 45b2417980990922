"""FIRST_ADMIN_EMAIL is created only while no active admin exists (and only once)."""

import asyncio
import logging

import asyncpg
import pytest

from app.core.state import AppContext
from tests.conftest import Account, add_user

BOSS, SECRET = "boss@example.com", "s3cret!!"


async def start_api(make_settings, email: str = BOSS) -> None:
    """What an API process does at start-up (the whole lifespan start), then stop it."""
    ctx = await AppContext.start(
        make_settings(first_admin_email=email, first_admin_password=SECRET)
    )
    await ctx.stop()


async def admins(db: asyncpg.Pool) -> list[str]:
    rows = await db.fetch("SELECT email FROM users WHERE role = 'admin' ORDER BY email")
    return [row["email"] for row in rows]


async def test_created_on_an_empty_database_and_not_again(make_settings, db: asyncpg.Pool) -> None:
    await start_api(make_settings)
    await start_api(make_settings)
    assert await admins(db) == [BOSS]


async def test_a_renamed_bootstrap_admin_does_not_come_back(
    make_settings, db: asyncpg.Pool
) -> None:
    await start_api(make_settings)
    await db.execute("UPDATE users SET email = 'renamed@example.com' WHERE email = $1", BOSS)
    await start_api(make_settings)
    assert await admins(db) == ["renamed@example.com"]


async def test_another_admin_is_enough(make_settings, db: asyncpg.Pool, admin: Account) -> None:
    await start_api(make_settings)  # the bootstrap e-mail was never created, nor is it now
    assert await admins(db) == [admin.email]


async def test_deleting_every_admin_is_the_recovery_path(
    make_settings, db: asyncpg.Pool, admin: Account
) -> None:
    await add_user(db, "plain@example.com")
    await db.execute("DELETE FROM users WHERE role = 'admin'")
    await start_api(make_settings)
    assert await admins(db) == [BOSS]


@pytest.mark.parametrize("change", ["role = 'user'", "is_active = false"])
async def test_demoted_or_deactivated_admins_count_as_none(
    make_settings, db: asyncpg.Pool, admin: Account, change: str
) -> None:
    await db.execute(f"UPDATE users SET {change} WHERE id = $1", admin.id)
    await start_api(make_settings)
    active = await db.fetch("SELECT email FROM users WHERE role = 'admin' AND is_active")
    assert [row["email"] for row in active] == [BOSS]


async def test_an_existing_non_admin_with_that_email_is_left_alone(
    make_settings, db: asyncpg.Pool, caplog: pytest.LogCaptureFixture
) -> None:
    taken = await add_user(db, BOSS, "user", password="their own password")
    caplog.set_level(logging.WARNING, logger="app")
    await start_api(make_settings)
    row = await db.fetchrow("SELECT role, hashed_password FROM users WHERE id = $1", taken.id)
    assert row["role"] == "user"  # neither promoted nor given FIRST_ADMIN_PASSWORD
    import bcrypt

    assert bcrypt.checkpw(b"their own password", row["hashed_password"].encode())
    assert any("no active admin" in r.getMessage() for r in caplog.records)


async def test_processes_starting_together_create_one_admin(
    make_settings, db: asyncpg.Pool
) -> None:
    # Even while FIRST_ADMIN_EMAIL changes in a rolling deploy: one admin, not one per process.
    emails = [f"boss{n}@example.com" for n in range(4)]
    await asyncio.gather(*(start_api(make_settings, email) for email in emails))
    assert len(await admins(db)) == 1
