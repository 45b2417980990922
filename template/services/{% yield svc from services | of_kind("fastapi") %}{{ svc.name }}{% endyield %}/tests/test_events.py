"""Server-sent events: live relay from the events exchange, Last-Event-ID replay, heartbeats.

These run the app behind a real uvicorn (streaming needs a real server).
"""

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import aio_pika
import asyncpg
import httpx
import pytest

from app.core.broker import to_event_id
from tests.conftest import RABBITMQ_URL, SERVICE, Account, requires_rabbitmq, served

EVENTS = "/api/v1/events"


@pytest.fixture
async def base_url(make_settings) -> AsyncIterator[str]:
    async with served(make_settings(sse_heartbeat_seconds=0.3)) as url:
        yield url


class Stream:
    """Reads an SSE response event by event (comments kept, for heartbeats)."""

    def __init__(self, response: httpx.Response) -> None:
        self.lines = response.aiter_lines()

    async def next(self, timeout: float = 5.0) -> dict[str, str]:
        event: dict[str, str] = {}
        async with asyncio.timeout(timeout):
            async for line in self.lines:
                if not line:
                    if event:
                        return event
                    continue
                field, _, value = line.partition(":")
                event[field or "comment"] = value.strip()
        raise AssertionError("stream ended")

    async def next_data(self, timeout: float = 5.0) -> dict[str, str]:
        while True:
            event = await self.next(timeout)
            if "data" in event:
                return event


async def publish(body: dict, routing_key: str) -> None:
    """Play the worker: publish a status change on the events exchange."""
    connection = await aio_pika.connect(RABBITMQ_URL)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.declare_exchange(
            f"{SERVICE}.events", aio_pika.ExchangeType.TOPIC, durable=True
        )
        await exchange.publish(
            aio_pika.Message(json.dumps(body).encode(), content_type="application/json"),
            routing_key=routing_key,
        )


def worker_event(job_id: str, owner: Account, status: str, when: datetime) -> dict:
    return {
        "job_id": job_id,
        "owner_id": str(owner.id),
        "status": status,
        "row_count": 2 if status == "done" else None,
        "file_name": f"{job_id}.csv" if status == "done" else None,
        "file_size": 10 if status == "done" else None,
        "error": None,
        "updated_at": when.isoformat(),
    }


async def test_events_need_a_token(base_url: str) -> None:
    async with httpx.AsyncClient(base_url=base_url) as client:
        response = await client.get(EVENTS)
        assert response.status_code == 401 and response.headers["www-authenticate"]


@requires_rabbitmq
async def test_live_events_are_relayed_to_their_owner_and_admins(
    base_url: str, user: Account, other: Account, admin: Account
) -> None:
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=10) as client,
        client.stream("GET", f"{EVENTS}?access_token={user.token}") as mine,
        client.stream("GET", EVENTS, headers=admin.headers) as admins,
    ):
        assert mine.status_code == 200
        assert mine.headers["content-type"].startswith("text/event-stream")
        user_stream, admin_stream = Stream(mine), Stream(admins)
        assert "retry" in await user_stream.next()  # connected (and subscribed)
        await admin_stream.next()
        when = datetime.now(UTC)
        theirs = worker_event(str(uuid.uuid4()), other, "running", when)
        ours = worker_event(str(uuid.uuid4()), user, "done", when + timedelta(seconds=1))
        await publish(theirs, "export.running")
        await publish(ours, "export.done")
        event = await user_stream.next_data()
        assert json.loads(event["data"]) == ours  # not the other user's job
        assert event["id"] == str(to_event_id(when + timedelta(seconds=1)))
        seen = [json.loads((await admin_stream.next_data())["data"]) for _ in range(2)]
        assert seen == [theirs, ours]


async def test_heartbeats(base_url: str, user: Account) -> None:
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=10) as client,
        client.stream("GET", EVENTS, headers=user.headers) as response,
    ):
        stream = Stream(response)
        await stream.next()
        assert (await stream.next(timeout=3))["comment"] == "heartbeat"


async def test_last_event_id_replays_what_changed_meanwhile(
    base_url: str, user: Account, other: Account, db: asyncpg.Pool
) -> None:
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    jobs = {}
    for minutes, owner, status in [(0, user, "done"), (1, user, "running"), (2, other, "done"),
                                   (3, user, "failed")]:  # fmt: skip
        job_id = uuid.uuid4()
        await db.execute(
            "INSERT INTO export_jobs (id, owner_id, format, status, updated_at)"
            " VALUES ($1, $2, 'csv', $3, $4)",
            job_id,
            owner.id,
            status,
            base + timedelta(minutes=minutes),
        )
        jobs[minutes] = str(job_id)
    last_seen = to_event_id(base)  # the client saw the first job's change already
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        headers = {**user.headers, "Last-Event-ID": str(last_seen)}
        async with client.stream("GET", EVENTS, headers=headers) as response:
            stream = Stream(response)
            first, second = await stream.next_data(), await stream.next_data()
    assert [json.loads(e["data"])["job_id"] for e in (first, second)] == [jobs[1], jobs[3]]
    assert json.loads(second["data"])["status"] == "failed"
    assert first["id"] == str(to_event_id(base + timedelta(minutes=1)))
    assert int(first["id"]) < int(second["id"])
