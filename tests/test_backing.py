"""Tests for stackplate.backing: real PostgreSQL, Redis and RabbitMQ servers, started and stopped.

RabbitMQ is started once (it is the slow one); PostgreSQL and Redis are cheap
and are shared by a module-scoped fixture.
"""

from __future__ import annotations

import os
import socket
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pika
import psycopg
import pytest
import redis

from stackplate import backing
from stackplate.backing import BackingServiceError, BackingServices, create_database

pytestmark = pytest.mark.backing


# --------------------------------------------------------------------------- helpers


def _processes() -> dict[tuple[int, int], tuple[int, int, int, str, str]]:
    """Live processes as {(pid, start time): (ppid, pgrp, session, name, command line)}."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        name = text[text.index("(") + 1 : text.rindex(")")]
        fields = text[text.rindex(")") + 2 :].split()
        if fields[0] == "Z":
            continue  # zombies run nothing; our init may reap them late
        pid, ppid, pgrp, session = int(entry.name), int(fields[1]), int(fields[2]), int(fields[3])
        found[(pid, int(fields[19]))] = (ppid, pgrp, session, name, cmdline)
    return found


def _related(pids: tuple[int, ...], markers: list[str]) -> dict[tuple[int, int], str]:
    """Processes started by us: the given pids, their groups, sessions and descendants,
    and anything mentioning one of *markers* on its command line. Values are names."""
    table = _processes()
    related = {
        key: info
        for key, info in table.items()
        if key[0] in pids
        or info[1] in pids
        or info[2] in pids
        or any(marker and marker in info[4] for marker in markers)
    }
    while children := {
        key: info
        for key, info in table.items()
        if info[0] in {pid for pid, _ in related} and key not in related
    }:
        related.update(children)
    return {key: f"{info[3]}: {info[4]}" for key, info in related.items()}


def _assert_nothing_left(services: BackingServices, snapshot: dict[tuple[int, int], str]) -> None:
    markers = [str(services.root) if services.root else ""]
    left = {key: name for key, name in snapshot.items() if key in _processes()}
    left.update(_related(services.pids, markers))
    assert not left, f"processes left behind: {sorted(left.values())}"
    if services.root is not None:
        assert not services.root.exists(), "temporary folder not removed"


def _refuses(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except OSError:
        return True


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def pg_redis() -> Iterator[BackingServices]:
    """A PostgreSQL and a Redis server shared by the cheap tests."""
    with BackingServices(rabbitmq=False) as services:
        yield services


# --------------------------------------------------------------------------- tests


def test_all_three_do_real_work_and_stop_leaving_nothing() -> None:
    started = time.monotonic()
    services = BackingServices()
    snapshot: dict[tuple[int, int], str] = {}
    try:
        urls = services.start()
        print(f"all three started in {time.monotonic() - started:.1f} s")
        assert urls.postgres and urls.redis and urls.rabbitmq
        for url in (urls.postgres, urls.redis, urls.rabbitmq):
            assert urlsplit(url).hostname == "127.0.0.1"

        with psycopg.connect(urls.postgres) as conn:
            conn.execute("CREATE TABLE greeting (id serial PRIMARY KEY, text text NOT NULL)")
            conn.execute("INSERT INTO greeting (text) VALUES (%s)", ("hello",))
            assert conn.execute("SELECT text FROM greeting").fetchall() == [("hello",)]

        client = redis.Redis.from_url(urls.redis)
        try:
            assert client.set("greeting", "hello")
            assert client.get("greeting") == b"hello"
        finally:
            client.close()

        connection = pika.BlockingConnection(pika.URLParameters(urls.rabbitmq))
        try:
            channel = connection.channel()
            channel.confirm_delivery()  # the publish is on the broker before we get
            channel.queue_declare("stackplate-test")
            channel.basic_publish(exchange="", routing_key="stackplate-test", body=b"hello")
            _method, _properties, body = channel.basic_get("stackplate-test", auto_ack=True)
            assert body == b"hello"
        finally:
            connection.close()

        snapshot = _related(services.pids, [str(services.root)])
        names = " ".join(snapshot.values())
        for expected in ("postgres", "checkpointer", "redis-server", "epmd", "beam.smp"):
            assert expected in names, f"{expected} not among the started processes: {names}"
    finally:
        services.stop()
    _assert_nothing_left(services, snapshot)
    services.stop()  # idempotent


def test_env_urls_are_used_instead_of_starting_servers(
    pg_redis: BackingServices, monkeypatch: pytest.MonkeyPatch
) -> None:
    external_amqp = "amqp://someone:secret@127.0.0.1:1/%2F"  # handed out, never contacted
    monkeypatch.setenv("STACKPLATE_POSTGRES_URL", pg_redis.urls.postgres or "")
    monkeypatch.setenv("STACKPLATE_REDIS_URL", pg_redis.urls.redis or "")
    monkeypatch.setenv("STACKPLATE_RABBITMQ_URL", external_amqp)

    with BackingServices() as second:
        assert second.urls == backing.BackingUrls(pg_redis.urls.postgres, pg_redis.urls.redis, external_amqp)
        assert second.pids == ()
        assert second.root is None
        with pytest.raises(BackingServiceError, match="STACKPLATE_REDIS_URL"):
            second.stop_service("redis")

    # Leaving the second one must not have stopped the servers it borrowed.
    client = redis.Redis.from_url(pg_redis.urls.redis or "")
    try:
        assert client.ping()
    finally:
        client.close()


def test_redis_has_a_password_and_refuses_a_client_without_it(pg_redis: BackingServices) -> None:
    url = urlsplit(pg_redis.urls.redis or "")
    assert url.password and len(url.password) >= 20
    anonymous = redis.Redis(host="127.0.0.1", port=url.port or 0)
    try:
        with pytest.raises(redis.AuthenticationError):
            anonymous.ping()
    finally:
        anonymous.close()
    with redis.Redis.from_url(pg_redis.urls.redis or "") as client:
        assert client.ping()


def test_unrequested_servers_get_no_url(pg_redis: BackingServices) -> None:
    assert pg_redis.urls.rabbitmq is None


def test_create_database(pg_redis: BackingServices) -> None:
    server_url = pg_redis.urls.postgres or ""
    url = create_database(server_url, "orders")

    assert urlsplit(url)._replace(path="") == urlsplit(server_url)._replace(path="")
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == ("orders",)

    with pytest.raises(BackingServiceError, match="already exists"):
        create_database(server_url, "orders")
    assert create_database(server_url, "orders", exist_ok=True) == url
    with pytest.raises(ValueError, match="invalid database name"):
        create_database(server_url, 'x"; DROP DATABASE postgres; --')

    wrong = urlsplit(server_url)
    wrong = wrong._replace(netloc=f"{wrong.username}:wrong@{wrong.hostname}:{wrong.port}")
    with pytest.raises(BackingServiceError, match="password authentication failed"):
        create_database(wrong.geturl(), "never")


def test_stop_service_stops_only_that_server(pg_redis: BackingServices) -> None:
    services = BackingServices(postgres=False, rabbitmq=False)
    with services:
        port = urlsplit(services.urls.redis or "").port or 0
        services.stop_service("redis")
        assert _refuses(port)
        with pytest.raises(BackingServiceError, match="not started"):
            services.stop_service("postgres")
    _assert_nothing_left(services, {})
    with psycopg.connect(pg_redis.urls.postgres or "") as conn:  # unaffected
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_missing_binary_names_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    services = BackingServices(postgres=False, rabbitmq=False)

    with pytest.raises(BackingServiceError, match=r"redis-server.*apt-get install redis-server"):
        services.start()
    assert services.pids == ()
    assert services.root is None


def _fake_binary(directory: Path, name: str, script: str) -> None:
    directory.mkdir(exist_ok=True)
    path = directory / name
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def test_timeout_is_reported_and_stops_what_was_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_bin = tmp_path / "bin"
    # exec, so the stuck "server" is the process we started (no orphaned sleep child).
    _fake_binary(fake_bin, "redis-server", "echo 'fake redis is stuck' >&2\nexec sleep 300")
    monkeypatch.setenv("PATH", f"{fake_bin}{os.pathsep}{os.environ['PATH']}")
    # Long enough for PostgreSQL to be running when Redis gives up.
    monkeypatch.setitem(backing.READY_TIMEOUTS, "redis", 5.0)
    services = BackingServices(rabbitmq=False)

    with pytest.raises(BackingServiceError) as caught:
        services.start()

    message = str(caught.value)
    assert message.startswith("redis: did not become ready within 5 s")
    assert "fake redis is stuck" in message  # the log tail
    assert len(services.pids) >= 3  # initdb, postgres and the fake redis were started
    _assert_nothing_left(services, {})


def test_crash_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_bin = tmp_path / "bin"
    _fake_binary(fake_bin, "redis-server", "echo 'fake redis: bad config' >&2\nexit 3")
    monkeypatch.setenv("PATH", f"{fake_bin}{os.pathsep}{os.environ['PATH']}")
    services = BackingServices(postgres=False, rabbitmq=False)

    with pytest.raises(BackingServiceError, match="redis-server exited with code 3") as caught:
        services.start()
    assert "fake redis: bad config" in str(caught.value)
    _assert_nothing_left(services, {})
