"""Server-sent events: tickets, live relay from the events exchange, Last-Event-ID replay,
heartbeats, and streams that end with their session or the user's rights.

These run the app behind a real uvicorn (streaming needs a real server).
"""

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import aio_pika
import asyncpg
import httpx
import jwt
import pytest

from app.core.broker import to_event_id
from tests.conftest import (
    JWT_SECRET,
    RABBITMQ_URL,
    SERVICE,
    Account,
    add_user,
    requires_rabbitmq,
    served,
)

EVENTS = "/api/v1/events"


@pytest.fixture
async def base_url(make_settings) -> AsyncIterator[str]:
    settings = make_settings(sse_heartbeat_seconds=0.3, sse_auth_check_seconds=0.2)
    async with served(settings) as url:
        yield url


async def ticket_for(client: httpx.AsyncClient, account: Account) -> str:
    response = await client.post(f"{EVENTS}/ticket", headers=account.headers)
    assert response.status_code == 201, response.text
    assert response.json()["expires_in"] == 30
    return response.json()["ticket"]


async def ended(stream: "Stream", deadline: float) -> bool:
    """Read until the server closes the stream; False if it is still open at the deadline."""
    try:
        async with asyncio.timeout(deadline):
            async for _ in stream.lines:
                pass
    except TimeoutError:
        return False
    return True


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
        client.stream("GET", f"{EVENTS}?ticket={await ticket_for(client, user)}") as mine,
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


async def test_a_ticket_opens_one_stream_and_an_access_token_in_the_url_none(
    base_url: str, user: Account
) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        ticket = await ticket_for(client, user)
        assert user.token not in ticket
        async with client.stream("GET", f"{EVENTS}?ticket={ticket}") as first:
            assert first.status_code == 200
            assert "retry" in await Stream(first).next()
        again = await client.get(f"{EVENTS}?ticket={ticket}")
        assert again.status_code == 401, "a ticket is single-use"
        in_url = await client.get(f"{EVENTS}?access_token={user.token}")
        assert in_url.status_code == 401, "an access token in the URL is refused"
        assert (await client.post(f"{EVENTS}/ticket")).status_code == 401


async def test_an_expired_or_forged_ticket_is_refused(base_url: str, user: Account) -> None:
    now = int(time.time())
    claims = {"sub": str(user.id), "role": "user", "type": "ticket", "jti": str(uuid.uuid4()),
              "ver": 0, "sxp": now + 600}  # fmt: skip
    expired = jwt.encode({**claims, "iat": now - 60, "exp": now - 30}, JWT_SECRET, "HS256")
    forged = jwt.encode({**claims, "iat": now, "exp": now + 30}, "y" * 48, "HS256")
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        for ticket in (expired, forged, user.token):  # an access token is no ticket either
            assert (await client.get(f"{EVENTS}?ticket={ticket}")).status_code == 401


async def test_last_event_id_as_a_query_parameter(
    base_url: str, user: Account, db: asyncpg.Pool
) -> None:
    when = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    job_id = uuid.uuid4()
    await db.execute(
        "INSERT INTO export_jobs (id, owner_id, format, status, updated_at)"
        " VALUES ($1, $2, 'csv', 'done', $3)",
        job_id,
        user.id,
        when,
    )
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        ticket = await ticket_for(client, user)
        url = f"{EVENTS}?ticket={ticket}&last_event_id={to_event_id(when - timedelta(seconds=1))}"
        async with client.stream("GET", url) as response:
            event = await Stream(response).next_data()
    assert json.loads(event["data"])["job_id"] == str(job_id)


async def test_a_stream_ends_when_its_session_expires(base_url: str, user: Account) -> None:
    now = int(time.time())
    claims = {"sub": str(user.id), "role": "user", "type": "access", "ver": 0}
    short = jwt.encode({**claims, "iat": now, "exp": now + 2}, JWT_SECRET, "HS256")
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        response = await client.post(
            f"{EVENTS}/ticket", headers={"Authorization": f"Bearer {short}"}
        )
        ticket = response.json()["ticket"]
        async with client.stream("GET", f"{EVENTS}?ticket={ticket}") as stream:
            assert await ended(Stream(stream), deadline=6), "the stream outlived its session"


async def test_a_stream_ends_when_its_admin_is_demoted(
    base_url: str, admin: Account, db: asyncpg.Pool
) -> None:
    boss = await add_user(db, "boss@example.com", "admin")
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        ticket = await ticket_for(client, admin)
        async with client.stream("GET", f"{EVENTS}?ticket={ticket}") as response:
            stream = Stream(response)
            await stream.next()
            assert not await ended(stream, deadline=0.5), "the stream ended by itself"
            demoted = await client.patch(
                f"/api/v1/users/{admin.id}", json={"role": "user"}, headers=boss.headers
            )
            assert demoted.status_code == 200, demoted.text
            assert await ended(stream, deadline=5), "a demoted admin kept the stream of all jobs"
        # The ticket route itself now refuses the old token as well.
        assert (await client.post(f"{EVENTS}/ticket", headers=admin.headers)).status_code == 401
