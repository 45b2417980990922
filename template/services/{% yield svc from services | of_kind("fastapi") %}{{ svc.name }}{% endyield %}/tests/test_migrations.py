"""Alembic: upgrade head on an empty database matches the models; downgrade base empties it."""

import asyncio
import secrets

import asyncpg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import pool
from sqlalchemy.ext.asyncio import create_async_engine

from app.core.db import Base
from tests.conftest import _asyncpg_dsn, alembic, create_database, drop_database

TABLES = {"users", "export_jobs", "refresh_tokens", "stream_tickets"}


async def tables(url: str) -> set[str]:
    connection = await asyncpg.connect(_asyncpg_dsn(url))
    try:
        rows = await connection.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    finally:
        await connection.close()
    return {row["tablename"] for row in rows}


async def schema_differences(url: str) -> list:
    engine = create_async_engine(url, poolclass=pool.NullPool)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync), Base.metadata)
            )
    finally:
        await engine.dispose()


async def new_database(name: str) -> str:
    try:
        return await create_database(name)
    except asyncpg.InsufficientPrivilegeError:
        pytest.skip("the DATABASE_URL user may not create databases")


async def test_upgrade_head_then_downgrade_base() -> None:
    name = f"test_migrations_{secrets.token_hex(4)}"
    url = await new_database(name)
    try:
        assert await tables(url) == set()
        await asyncio.to_thread(alembic, url, "upgrade", "head")
        assert await tables(url) == TABLES | {"alembic_version"}
        assert await schema_differences(url) == []  # the migration matches the models
        await asyncio.to_thread(alembic, url, "downgrade", "base")
        assert await tables(url) == {"alembic_version"}
        await asyncio.to_thread(alembic, url, "upgrade", "head")  # and back up again
        assert await tables(url) == TABLES | {"alembic_version"}
    finally:
        await drop_database(name)


def test_python_m_app_migrate(monkeypatch) -> None:
    """The Dockerfile's `python -m app migrate`, against a database named by DATABASE_URL."""
    from app.__main__ import main

    name = f"test_migrate_cli_{secrets.token_hex(4)}"
    url = asyncio.run(new_database(name))
    try:
        monkeypatch.setenv("DATABASE_URL", url.replace("postgresql+asyncpg://", "postgresql://"))
        assert main(["migrate"]) == 0
        assert main(["migrate"]) == 0  # idempotent
        assert asyncio.run(tables(url)) == TABLES | {"alembic_version"}
    finally:
        asyncio.run(drop_database(name))
