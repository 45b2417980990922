"""The export publish path under concurrency and broker faults.

Many requests' publishes are in flight on one confirm channel at once. Every job
must still reach the queue exactly once, and a fault must fail exactly the requests
it hit: a refused publish (Basic.Nack) or a connection lost while confirms are
outstanding answers 503 with the job marked failed, never 202 for a job the broker
did not confirm, and never a second copy of a message.

A real RabbitMQ stands behind a proxy that reads the broker's side of the wire
frame by frame (AMQP 0-9-1 framing): it can turn the broker's confirms into
refusals, or hold everything the broker sends, and then cut the connection.
"""

from __future__ import annotations

import asyncio
import json
import struct
import time
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import aio_pika
import asyncpg
import httpx
import pytest
from aio_pika.abc import AbstractIncomingMessage

from tests.conftest import QUEUE, RABBITMQ_URL, Account, requires_rabbitmq, running
from tests.test_resilience import Outage

pytestmark = requires_rabbitmq

EXPORTS = "/api/v1/exports"
JOBS = 24  # requests in flight together
FRAME_HEADER = struct.Struct("!BHI")  # type, channel, payload size; then payload and 0xCE
METHOD_FRAME = 1
BASIC_ACK = struct.pack("!HH", 60, 80)  # class Basic, method Ack: delivery-tag, multiple bit
BASIC_NACK = struct.pack("!HH", 60, 120)  # Nack: delivery-tag, then multiple and requeue bits


class ConfirmTamperer(Outage):
    """An Outage that can refuse (nack) the broker's confirms or hold all it sends."""

    def __init__(self, host: str, port: int) -> None:
        super().__init__(host, port)
        self.nack = False
        self.flowing = asyncio.Event()
        self.flowing.set()

    async def _downstream(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        pending = b""
        try:
            while data := await src.read(65536):
                frames, pending = self._whole_frames(pending + data)
                await self.flowing.wait()
                dst.write(frames)
                await dst.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            dst.close()

    def _whole_frames(self, data: bytes) -> tuple[bytes, bytes]:
        """The complete frames in ``data`` (acks turned into nacks if asked), and the rest."""
        out = bytearray()
        offset = 0
        while len(data) - offset >= FRAME_HEADER.size:
            kind, _channel, size = FRAME_HEADER.unpack_from(data, offset)
            end = offset + FRAME_HEADER.size + size + 1
            if len(data) < end:
                break
            frame = bytearray(data[offset:end])
            method = slice(FRAME_HEADER.size, FRAME_HEADER.size + 4)
            if self.nack and kind == METHOD_FRAME and frame[method] == BASIC_ACK:
                frame[method] = BASIC_NACK  # same arguments; the requeue bit stays 0
            out += frame
            offset = end
        return bytes(out), data[offset:]


@pytest.fixture
async def tamperer() -> AsyncIterator[ConfirmTamperer]:
    target = urlsplit(RABBITMQ_URL)
    proxy = await ConfirmTamperer(target.hostname or "127.0.0.1", target.port or 5672).start()
    yield proxy
    await proxy.close()


async def post_all(client: httpx.AsyncClient, user: Account) -> list[httpx.Response]:
    return await asyncio.gather(
        *(client.post(EXPORTS, headers=user.headers, json={"format": "csv"}) for _ in range(JOBS))
    )


def job_ids(messages: list[AbstractIncomingMessage]) -> list[str]:
    return sorted(json.loads(message.body)["job_id"] for message in messages)


async def queued_in_broker() -> int:
    connection = await aio_pika.connect(RABBITMQ_URL)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(QUEUE, durable=True)
        return queue.declaration_result.message_count or 0


async def assert_failed_cleanly(
    answers: list[httpx.Response], db: asyncpg.Pool, why: str
) -> list[str]:
    """Every request answered 503 with its job failed (row and answer agree); the ids."""
    assert [a.status_code for a in answers] == [503] * JOBS, [a.text for a in answers]
    ids = sorted(a.json()["job"]["id"] for a in answers)
    rows = await db.fetch(
        "SELECT id::text, status, error FROM export_jobs WHERE id::text = ANY($1) ORDER BY id", ids
    )
    assert [r["id"] for r in rows] == ids
    assert all(r["status"] == "failed" and why in (r["error"] or "") for r in rows), rows
    assert all(r["error"] for r in rows), rows
    return ids


async def test_concurrent_exports_are_each_queued_and_announced_exactly_once(
    make_settings, user: Account, db: asyncpg.Pool, queue_messages, events
) -> None:
    await queue_messages()
    async with running(make_settings(export_max_active_per_user=JOBS)) as (_, client):
        answers = await post_all(client, user)
    assert [a.status_code for a in answers] == [202] * JOBS, [a.text for a in answers]
    ids = sorted(a.json()["id"] for a in answers)
    assert len(set(ids)) == JOBS
    assert job_ids(await queue_messages()) == ids  # each job once, none twice
    announced = [e for e in await events() if e["key"] == "export.queued"]
    assert sorted(e["job_id"] for e in announced) == ids
    assert await db.fetchval("SELECT count(*) FROM export_jobs WHERE status = 'queued'") == JOBS


async def test_refused_confirms_fail_exactly_the_requests_they_hit(
    make_settings, user: Account, db: asyncpg.Pool, queue_messages, tamperer: ConfirmTamperer
) -> None:
    await queue_messages()
    settings = make_settings(
        RABBITMQ_URL=tamperer.url(RABBITMQ_URL), export_max_active_per_user=JOBS + 1
    )
    async with running(settings) as (_, client):
        tamperer.nack = True
        answers = await post_all(client, user)
        tamperer.nack = False
        again = await client.post(EXPORTS, headers=user.headers, json={"format": "csv"})
    ids = await assert_failed_cleanly(answers, db, "nack")
    assert again.status_code == 202, again.text  # the channel is fine: only those were refused
    assert await db.fetchval("SELECT count(*) FROM export_jobs WHERE status = 'queued'") == 1
    # The broker did store the refused ones (our proxy lied): one copy each, which the
    # worker will not run (the job is failed), beside the one accepted afterwards.
    assert job_ids(await queue_messages()) == sorted([*ids, again.json()["id"]])


async def test_a_connection_lost_with_confirms_outstanding_fails_those_requests(
    make_settings, user: Account, db: asyncpg.Pool, queue_messages, tamperer: ConfirmTamperer
) -> None:
    await queue_messages()
    settings = make_settings(
        RABBITMQ_URL=tamperer.url(RABBITMQ_URL), export_max_active_per_user=JOBS
    )
    async with running(settings) as (_, client):
        tamperer.flowing.clear()  # the broker's confirms stay on the wire
        requests = asyncio.ensure_future(post_all(client, user))
        deadline = time.monotonic() + 10
        while await queued_in_broker() < JOBS:  # all published, none confirmed
            assert time.monotonic() < deadline, "the publishes did not reach the broker"
            await asyncio.sleep(0.05)
        assert not requests.done()
        await tamperer.close()  # the connection drops mid-batch
        answers = await asyncio.wait_for(requests, 30)
    ids = await assert_failed_cleanly(answers, db, "")  # "publishing failed" or "did not confirm"
    assert job_ids(await queue_messages()) == ids  # stored once each, never re-sent
