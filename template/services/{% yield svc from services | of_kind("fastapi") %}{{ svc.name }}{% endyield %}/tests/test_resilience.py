"""RabbitMQ and Redis going away and coming back: the API recovers by itself.

A TCP proxy stands between the app and the real server. Closing it cuts every
connection and refuses new ones, as a server that stops does (RabbitMQ then drops
the API's exclusive relay queue); opening it again on the same port is the server
coming back with its data (durable queues, Redis's cache entries) as it was.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi import FastAPI

from tests.conftest import (
    RABBITMQ_URL,
    REDIS_URL,
    Account,
    TcpProxy,
    eventually,
    requires_rabbitmq,
    requires_redis,
    running,
    served,
)
from tests.test_events import Stream, publish, worker_event

EVENTS = "/api/v1/events"
EXPORTS = "/api/v1/exports"
USERS = "/api/v1/users"
RECONNECT_SECONDS = 30.0  # aio-pika tries again every 5 s


class Outage(TcpProxy):
    """A proxy that can be closed (the server is away) and opened again on the same port."""

    async def resume(self) -> None:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    def url(self, url: str) -> str:
        """``url`` through this proxy."""
        parts = urlsplit(url)
        credentials = parts.netloc.rpartition("@")[0]
        netloc = f"{credentials}@127.0.0.1:{self.port}" if credentials else f"127.0.0.1:{self.port}"
        return parts._replace(netloc=netloc).geturl()


@pytest.fixture
async def outage(request: pytest.FixtureRequest) -> AsyncIterator[Outage]:
    """An Outage in front of the server at the URL the test passes (indirect parametrisation)."""
    target = urlsplit(request.param)
    proxy = await Outage(target.hostname or "127.0.0.1", target.port).start()
    yield proxy
    await proxy.close()


@requires_rabbitmq
@pytest.mark.parametrize("outage", [RABBITMQ_URL], indirect=True, ids=["rabbitmq"])
async def test_the_api_reconnects_to_rabbitmq_and_relays_events_again(
    make_settings, outage: Outage, admin: Account, user: Account
) -> None:
    async with (
        served(make_settings(RABBITMQ_URL=outage.url(RABBITMQ_URL))) as base_url,
        httpx.AsyncClient(base_url=base_url, timeout=10) as client,
        client.stream("GET", EVENTS, headers=admin.headers) as response,
    ):
        stream = Stream(response)
        await stream.next()  # connected (and subscribed)

        async def export_answers(status: int) -> bool:
            exported = await client.post(EXPORTS, headers=user.headers, json={"format": "csv"})
            return exported.status_code == status

        async def relayed() -> bool:
            """Play the worker once: does its event reach the stream within a second?"""
            job_id = str(uuid.uuid4())
            event = worker_event(job_id, user, "running", datetime.now(UTC))
            await publish(event, "export.running")
            try:
                while json.loads((await stream.next_data(timeout=1.0))["data"])["job_id"] != job_id:
                    pass
            except TimeoutError:
                return False
            return True

        assert await relayed()
        await outage.close()
        await eventually(lambda: export_answers(503), "exports refused while RabbitMQ is away", 10)
        await outage.resume()
        await eventually(lambda: export_answers(202), "exports queued again", RECONNECT_SECONDS)
        await eventually(relayed, "events relayed again", RECONNECT_SECONDS)


def pending(app: FastAPI) -> set[str]:
    """The cache namespaces whose invalidation the app still owes Redis."""
    return app.state.ctx.cache._pending


async def name_read_by(client: httpx.AsyncClient, url: str, admin: Account) -> str:
    response = await client.get(url, headers=admin.headers)
    assert response.status_code == 200, response.text
    return response.json()["full_name"]


@requires_redis
@pytest.mark.parametrize("outage", [REDIS_URL], indirect=True, ids=["redis"])
async def test_a_write_while_redis_is_away_is_read_back_once_it_returns(
    make_settings, outage: Outage, admin: Account, user: Account
) -> None:
    url = f"{USERS}/{user.id}"
    async with running(make_settings(redis_url=outage.url(REDIS_URL))) as (app, client):
        assert await name_read_by(client, url, admin) == "Uma User"  # cached now
        await outage.close()
        patched = await client.patch(url, headers=admin.headers, json={"full_name": "Written"})
        assert patched.status_code == 200 and pending(app) == {"users"}
        await outage.resume()  # with the entry cached before the write

        async def read_fresh_and_redis_current() -> bool:
            assert await name_read_by(client, url, admin) == "Written"  # never the old entry
            return not pending(app) and app.state.ctx.cache.active

        await eventually(read_fresh_and_redis_current, "the invalidation applied", 10)
        assert await name_read_by(client, url, admin) == "Written"  # cached under the new version


@requires_redis
@pytest.mark.parametrize("outage", [REDIS_URL], indirect=True, ids=["redis"])
async def test_a_write_while_redis_is_away_outdates_what_other_processes_cached(
    make_settings, outage: Outage, admin: Account, user: Account
) -> None:
    """Two app processes share Redis; one writes while Redis is away and gets no request after."""
    settings = make_settings(redis_url=outage.url(REDIS_URL))
    url = f"{USERS}/{user.id}"
    async with running(settings) as (writer, writes), running(settings) as (reader, reads):
        assert await name_read_by(reads, url, admin) == "Uma User"  # cached by the reader
        await outage.close()
        patched = await writes.patch(url, headers=admin.headers, json={"full_name": "Written"})
        assert patched.status_code == 200 and pending(writer) == {"users"}
        await outage.resume()  # with the reader's entry, now outdated
        # The writer applies the invalidation it owes by itself, within about a second...
        await eventually(lambda: not pending(writer), "the invalidation applied", 5)
        # ...so the reader, using Redis again, does not serve its outdated entry.
        assert reader.state.ctx.cache.active
        assert await name_read_by(reads, url, admin) == "Written"
