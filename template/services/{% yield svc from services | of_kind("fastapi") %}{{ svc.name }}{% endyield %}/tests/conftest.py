"""Fixtures: a fresh database per run, real Redis and RabbitMQ when configured.

Environment (set by whoever runs the suite):

* ``DATABASE_URL`` (required): a PostgreSQL server where this user may create
  databases. Each run creates its own database, migrates it with Alembic and
  drops it at the end, so parallel runs never share tables.
* ``REDIS_URL``, ``RABBITMQ_URL``: empty or unset means "off"; the tests that
  need that service are then skipped, naming it, and the fallback tests run.

Queue, exchange and Redis key names carry a random per-run service name.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import os
import secrets
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aio_pika
import asyncpg
import httpx
import pytest
import uvicorn
from aio_pika.abc import AbstractIncomingMessage
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy.engine import make_url

from app.__main__ import alembic_config
from app.core.config import Settings, normalize_database_url
from app.core.security import create_access_token
from app.main import create_app

DATABASE_URL = os.environ.get("DATABASE_URL", "").strip()
REDIS_URL = os.environ.get("REDIS_URL", "").strip()
RABBITMQ_URL = os.environ.get("RABBITMQ_URL", "").strip()
RUN = secrets.token_hex(4)
SERVICE = f"apitest{RUN}"
JWT_SECRET = secrets.token_urlsafe(48)
PASSWORD = "correct horse battery"

QUEUE = f"{SERVICE}.exports"  # the run's export queue (make_settings names it)

requires_redis = pytest.mark.skipif(
    not REDIS_URL, reason="Redis is off: REDIS_URL is empty (the fallback tests cover it)"
)
requires_rabbitmq = pytest.mark.skipif(
    not RABBITMQ_URL, reason="RabbitMQ is off: RABBITMQ_URL is empty"
)


def pytest_configure(config: pytest.Config) -> None:
    if not DATABASE_URL:
        raise pytest.UsageError(
            "DATABASE_URL is not set: point it at a PostgreSQL server where this user may "
            "create databases, e.g. DATABASE_URL=postgresql://user:pass@127.0.0.1:5432/postgres"
        )


# --------------------------------------------------------------------------- database


def _asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def database_url(name: str) -> str:
    """DATABASE_URL pointed at database *name* (asyncpg driver)."""
    return (
        make_url(normalize_database_url(DATABASE_URL))
        .set(database=name)
        .render_as_string(hide_password=False)
    )


async def create_database(name: str) -> str:
    connection = await asyncpg.connect(_asyncpg_dsn(DATABASE_URL))
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return database_url(name)


async def drop_database(name: str) -> None:
    connection = await asyncpg.connect(_asyncpg_dsn(DATABASE_URL))
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


def alembic(url: str, command_name: str, revision: str) -> None:
    """Run an Alembic command (sync: call it through asyncio.to_thread)."""
    from alembic import command

    config = alembic_config()
    config.attributes["database_url"] = url
    config.attributes["configure_logger"] = False
    getattr(command, command_name)(config, revision)


@pytest.fixture(scope="session")
async def db_url() -> AsyncIterator[str]:
    """A new, migrated database for this run; dropped afterwards.

    Without the right to create databases, the database of DATABASE_URL itself is
    used: downgraded to nothing and upgraded again (then runs must not overlap).
    """
    name = f"test_{SERVICE}"
    try:
        url = await create_database(name)
    except asyncpg.InsufficientPrivilegeError:
        url = normalize_database_url(DATABASE_URL)
        await asyncio.to_thread(alembic, url, "downgrade", "base")
        await asyncio.to_thread(alembic, url, "upgrade", "head")
        yield url
        return
    try:
        await asyncio.to_thread(alembic, url, "upgrade", "head")
        yield url
    finally:
        await drop_database(name)


@pytest.fixture(scope="session")
async def db(db_url: str) -> AsyncIterator[asyncpg.Pool]:
    """Raw SQL access behind the app's back (to play the worker, or to prove a cache hit)."""
    pool = await asyncpg.create_pool(_asyncpg_dsn(db_url), min_size=1, max_size=4)
    yield pool
    await pool.close()


# --------------------------------------------------------------------------- settings and apps


@pytest.fixture(scope="session")
def exports_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("exports")


@pytest.fixture(scope="session")
def make_settings(db_url: str, exports_dir: Path) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "DATABASE_URL": db_url,
            "RABBITMQ_URL": RABBITMQ_URL,
            "service_name": SERVICE,
            # Named here, not left to the environment: in a container (a devcontainer)
            # EXPORT_QUEUE and EVENTS_EXCHANGE are the running service's own.
            "export_queue": QUEUE,
            "events_exchange": f"{SERVICE}.events",
            "redis_url": REDIS_URL,
            "rabbitmq_host": "",
            "jwt_secret_key": JWT_SECRET,
            "bcrypt_rounds": 4,
            "exports_dir": exports_dir,
            "first_admin_email": "",
            "first_admin_password": "",
            "cors_origins": "http://localhost:3000",
            "login_rate_limit": "5/minute",
            "general_rate_limit": "100000/minute",
            "log_level": "info",
        }
        values.update(overrides)
        return Settings(**values)

    return make


class FakeClock:
    """The rate limiter's clock in tests: still unless a test moves it.

    Limits count in fixed windows aligned to the clock; on the wall clock a test
    that crossed a window boundary would see its counts start over (or a
    Retry-After of 1 s). START is 30 s into a minute and 1830 s into an hour, so
    a test's hits share one window of any period and Retry-After is exact.
    """

    START = 1_767_225_600.0 + 1830  # 2026-01-01 00:30:30 UTC

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def limiter_clock(app: FastAPI) -> FakeClock:
    """The FakeClock that `running` gave the app's rate limiter."""
    clock = app.state.ctx.limiter.clock
    assert isinstance(clock, FakeClock), clock
    return clock


@contextlib.asynccontextmanager
async def running(
    settings: Settings, client_ip: str = "127.0.0.1"
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The app with its lifespan (its rate limiter on a FakeClock), and an httpx client
    talking to it in-process."""
    app = create_app(settings)
    async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30):
        app.state.ctx.limiter.clock = FakeClock()
        transport = httpx.ASGITransport(app=app, client=(client_ip, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield app, c


_apps: list[FastAPI] = []  # long-lived apps whose in-memory limits `clean` resets


@pytest.fixture(scope="session")
async def main_app(make_settings: Callable[..., Settings]) -> AsyncIterator[FastAPI]:
    async with running(make_settings()) as (app, _):
        _apps.append(app)
        yield app
        _apps.remove(app)


@pytest.fixture
async def client(main_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=main_app, client=("127.0.0.1", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@pytest.fixture(autouse=True)
async def clean(db: asyncpg.Pool) -> None:
    """Every test starts with empty tables, no Redis keys of this run, fresh limits."""
    await db.execute("TRUNCATE users, export_jobs, refresh_tokens CASCADE")
    if REDIS_URL:
        await flush_redis_keys()
    for app in _apps:
        app.state.ctx.limiter._memory.clear()


async def flush_redis_keys() -> None:
    from redis.asyncio import Redis

    redis = Redis.from_url(REDIS_URL)
    try:
        keys = [key async for key in redis.scan_iter(match=f"{SERVICE}:*", count=1000)]
        if keys:
            await redis.delete(*keys)
    finally:
        await redis.aclose()


# --------------------------------------------------------------------------- waiting

Check = Callable[[], Awaitable[bool] | bool]


async def eventually(check: Check, what: str, timeout: float) -> None:
    """Poll ``check`` until it is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not await _value(check()):
        assert time.monotonic() < deadline, f"{what}: not within {timeout:.0f} s"
        await asyncio.sleep(0.2)


async def _value(result: Awaitable[bool] | bool) -> bool:
    return await result if inspect.isawaitable(result) else result


# --------------------------------------------------------------------------- broker


@pytest.fixture
async def queue_messages() -> Callable[[], Awaitable[list[AbstractIncomingMessage]]]:
    """Drain and return what is on the export queue (like the worker would consume it)."""

    async def drain() -> list[AbstractIncomingMessage]:
        connection = await aio_pika.connect(RABBITMQ_URL)
        async with connection:
            channel = await connection.channel()
            queue = await channel.declare_queue(QUEUE, durable=True)  # identical declaration
            messages = []
            while (message := await queue.get(fail=False, timeout=5)) is not None:
                await message.ack()
                messages.append(message)
            return messages

    return drain


@pytest.fixture
async def events() -> AsyncIterator[Callable[[], Awaitable[list[dict]]]]:
    """A queue bound to every job event; returns a function that drains it."""
    connection = await aio_pika.connect(RABBITMQ_URL)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.declare_exchange(
            f"{SERVICE}.events", aio_pika.ExchangeType.TOPIC, durable=True
        )
        queue = await channel.declare_queue(exclusive=True)
        await queue.bind(exchange, routing_key="export.*")

        async def drain() -> list[dict]:
            bodies = []
            while (message := await queue.get(fail=False, timeout=5)) is not None:
                bodies.append({**json.loads(message.body), "key": message.routing_key})
            return bodies

        yield drain


# --------------------------------------------------------------------------- users


@dataclass
class Account:
    id: uuid.UUID
    email: str
    role: str
    password: str = PASSWORD

    @property
    def token(self) -> str:
        return create_access_token(JWT_SECRET, self.id, self.role, 30)[0]

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def add_user(
    pool: asyncpg.Pool,
    email: str,
    role: str = "user",
    password: str = PASSWORD,
    is_active: bool = True,
    full_name: str | None = None,
) -> Account:
    """Insert a user directly (bcrypt with 4 rounds), as the fixtures' shortcut."""
    import bcrypt

    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)).decode()
    user_id = await pool.fetchval(
        "INSERT INTO users (id, email, hashed_password, full_name, role, is_active)"
        " VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        uuid.uuid4(),
        email.lower(),
        hashed,
        full_name,
        role,
        is_active,
    )
    return Account(user_id, email.lower(), role, password)


@pytest.fixture
async def admin(db: asyncpg.Pool) -> Account:
    return await add_user(db, "admin@example.com", "admin", full_name="Ada Admin")


@pytest.fixture
async def user(db: asyncpg.Pool) -> Account:
    return await add_user(db, "user@example.com", "user", full_name="Uma User")


@pytest.fixture
async def other(db: asyncpg.Pool) -> Account:
    return await add_user(db, "other@example.com", "user", full_name="Otto Other")


# --------------------------------------------------------------------------- network helpers


class TcpProxy:
    """A tiny TCP proxy in front of a backing service, to take it away mid-test."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.server: asyncio.Server | None = None
        self.port = 0
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> TcpProxy:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}
        for pipe in (self._pipe(reader, up_writer), self._downstream(up_reader, writer)):
            task = asyncio.create_task(pipe)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _downstream(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        """What the server sends to the app (a subclass may read or change it)."""
        await self._pipe(src, dst)

    @staticmethod
    async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            dst.close()

    async def close(self) -> None:
        """Stop listening and cut every open connection."""
        if self.server is not None:
            self.server.close()
        for writer in list(self._writers):
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.server is not None:
            await self.server.wait_closed()
            self.server = None


def redis_via(proxy: TcpProxy) -> str:
    parts = make_url(REDIS_URL.replace("redis://", "postgresql://", 1))
    database = parts.database or "0"
    auth = ""
    if parts.password is not None:
        auth = f"{parts.username or ''}:{parts.password}@"
    return f"redis://{auth}127.0.0.1:{proxy.port}/{database}"


@pytest.fixture
async def redis_proxy() -> AsyncIterator[TcpProxy]:
    parts = make_url(REDIS_URL.replace("redis://", "postgresql://", 1))
    proxy = await TcpProxy(parts.host or "127.0.0.1", parts.port or 6379).start()
    yield proxy
    await proxy.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.asynccontextmanager
async def served(settings: Settings) -> AsyncIterator[str]:
    """The app behind a real uvicorn on a free port (for streaming); yields its base URL."""
    app = create_app(settings)
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_config=None, timeout_graceful_shutdown=2
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(300):
            if server.started:
                break
            if task.done():
                task.result()
            await asyncio.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)
