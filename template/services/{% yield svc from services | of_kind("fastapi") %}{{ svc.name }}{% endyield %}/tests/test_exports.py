"""Export jobs: queueing with publisher confirms, listing, access, download, broker failures."""

import asyncio
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import aio_pika
import asyncpg
import httpx
import pytest

from tests.conftest import (
    QUEUE,
    RABBITMQ_URL,
    SERVICE,
    Account,
    eventually,
    requires_rabbitmq,
    running,
)

EXPORTS = "/api/v1/exports"


async def mark_done(db: asyncpg.Pool, exports_dir: Path, job_id: str, content: bytes) -> None:
    """Play the worker: write the file and update the row."""
    row = await db.fetchrow("SELECT format FROM export_jobs WHERE id = $1", uuid.UUID(job_id))
    name = f"{job_id}.{row['format']}"
    (exports_dir / name).write_bytes(content)
    await db.execute(
        "UPDATE export_jobs SET status = 'done', file_name = $2, file_size = $3, row_count = 2,"
        " attempts = 1, started_at = now(), finished_at = now(), updated_at = now()"
        " WHERE id = $1",
        uuid.UUID(job_id),
        name,
        len(content),
    )


@requires_rabbitmq
async def test_create_export_publishes_a_confirmed_persistent_message(
    client: httpx.AsyncClient, user: Account, db: asyncpg.Pool, queue_messages
) -> None:
    await queue_messages()  # start from an empty queue
    response = await client.post(EXPORTS, headers=user.headers, json={"format": "csv"})
    assert response.status_code == 202, response.text
    job = response.json()
    assert (job["status"], job["format"], job["owner_id"], job["attempts"]) == (
        "queued", "csv", str(user.id), 0,
    )  # fmt: skip
    assert response.headers["location"] == f"{EXPORTS}/{job['id']}"
    row = await db.fetchrow("SELECT * FROM export_jobs WHERE id = $1", uuid.UUID(job["id"]))
    assert row["status"] == "queued" and row["owner_id"] == user.id
    messages = await queue_messages()
    assert len(messages) == 1
    message = messages[0]
    body = json.loads(message.body)
    assert set(body) == {"job_id", "owner_id", "format", "requested_at"}
    assert (body["job_id"], body["owner_id"], body["format"]) == (job["id"], str(user.id), "csv")
    assert datetime.fromisoformat(body["requested_at"]).tzinfo is not None
    assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert message.content_type == "application/json"
    assert message.message_id == job["id"]


async def test_export_format_is_validated(client: httpx.AsyncClient, user: Account) -> None:
    response = await client.post(EXPORTS, headers=user.headers, json={"format": "xml"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "format"]


async def test_exports_need_authentication(client: httpx.AsyncClient) -> None:
    assert (await client.post(EXPORTS, json={"format": "csv"})).status_code == 401


@requires_rabbitmq
async def test_broker_refusing_marks_the_job_failed_and_answers_503(
    client: httpx.AsyncClient, user: Account, db: asyncpg.Pool
) -> None:
    connection = await aio_pika.connect(RABBITMQ_URL)
    async with connection:
        channel = await connection.channel()
        await channel.queue_delete(QUEUE)  # nothing to route to: the broker returns it
        try:
            response = await client.post(EXPORTS, headers=user.headers, json={"format": "json"})
        finally:
            await channel.declare_queue(QUEUE, durable=True)
    assert response.status_code == 503
    body = response.json()
    assert "could not be queued" in body["detail"] and QUEUE in body["detail"]
    assert body["job"]["status"] == "failed" and body["job"]["error"]
    row = await db.fetchrow("SELECT status, error, finished_at FROM export_jobs")
    assert row["status"] == "failed" and "NO_ROUTE" in row["error"] and row["finished_at"]


async def test_broker_off_marks_the_job_failed_and_answers_503(
    make_settings, user: Account, db: asyncpg.Pool
) -> None:
    async with running(make_settings(RABBITMQ_URL="", rabbitmq_host="")) as (_, client):
        response = await client.post(EXPORTS, headers=user.headers, json={"format": "csv"})
        assert response.status_code == 503
        assert response.json()["job"]["status"] == "failed"
        assert (await client.get("/ready")).json()["checks"]["rabbitmq"] == "off"
    assert await db.fetchval("SELECT status FROM export_jobs") == "failed"
    assert "not configured" in await db.fetchval("SELECT error FROM export_jobs")


async def test_broker_unreachable_marks_the_job_failed_and_answers_503(
    make_settings, user: Account
) -> None:
    settings = make_settings(RABBITMQ_URL="amqp://guest:guest@127.0.0.1:9/")
    async with running(settings) as (_, client):
        response = await client.post(EXPORTS, headers=user.headers, json={"format": "csv"})
        assert response.status_code == 503
        assert "unreachable" in response.json()["detail"]
        ready = await client.get("/ready")
        assert ready.status_code == 503 and ready.json()["failed"] == ["rabbitmq"]


async def insert_job(db: asyncpg.Pool, owner: Account, status: str = "queued") -> str:
    job_id = uuid.uuid4()
    await db.execute(
        "INSERT INTO export_jobs (id, owner_id, format, status) VALUES ($1, $2, 'csv', $3)",
        job_id,
        owner.id,
        status,
    )
    return str(job_id)


async def test_list_and_read_jobs_owner_or_admin(
    client: httpx.AsyncClient, admin: Account, user: Account, other: Account, db: asyncpg.Pool
) -> None:
    mine = [await insert_job(db, user) for _ in range(3)]
    theirs = await insert_job(db, other)
    page = (await client.get(f"{EXPORTS}?limit=2", headers=user.headers)).json()
    assert page["total"] == 3 and len(page["items"]) == 2 and page["limit"] == 2
    assert {j["id"] for j in page["items"]} <= set(mine)
    everything = (await client.get(EXPORTS, headers=admin.headers)).json()
    assert everything["total"] == 4
    assert (await client.get(f"{EXPORTS}/{mine[0]}", headers=user.headers)).status_code == 200
    assert (await client.get(f"{EXPORTS}/{theirs}", headers=user.headers)).status_code == 404
    assert (await client.get(f"{EXPORTS}/{theirs}", headers=admin.headers)).status_code == 200
    assert (await client.get(f"{EXPORTS}/{uuid.uuid4()}", headers=admin.headers)).status_code == 404
    assert (await client.get(f"{EXPORTS}?limit=101", headers=user.headers)).status_code == 422


async def test_download_once_done(
    client: httpx.AsyncClient,
    user: Account,
    other: Account,
    admin: Account,
    db: asyncpg.Pool,
    exports_dir: Path,
) -> None:
    job_id = await insert_job(db, user)
    url = f"{EXPORTS}/{job_id}/download"
    not_done = await client.get(url, headers=user.headers)
    assert not_done.status_code == 409 and "queued" in not_done.json()["detail"]
    await mark_done(db, exports_dir, job_id, b"id,email\n1,a@example.com\n")
    response = await client.get(url, headers=user.headers)
    assert response.status_code == 200
    assert response.content == b"id,email\n1,a@example.com\n"
    assert response.headers["content-type"].startswith("text/csv")
    disposition = response.headers["content-disposition"]
    assert disposition.startswith("attachment;") and f"{SERVICE}-export-" in disposition
    assert disposition.rstrip('"').endswith(".csv")
    assert (await client.get(url, headers=other.headers)).status_code == 404
    assert (await client.get(url, headers=admin.headers)).status_code == 200
    # A job whose file went missing (or a name escaping the folder) is 410, not a 500.
    (exports_dir / f"{job_id}.csv").unlink()
    assert (await client.get(url, headers=user.headers)).status_code == 410
    await db.execute(
        "UPDATE export_jobs SET file_name = '../../etc/passwd' WHERE id = $1", uuid.UUID(job_id)
    )
    assert (await client.get(url, headers=user.headers)).status_code == 410


async def test_download_json_export(
    client: httpx.AsyncClient, user: Account, db: asyncpg.Pool, exports_dir: Path
) -> None:
    job_id = uuid.uuid4()
    await db.execute(
        "INSERT INTO export_jobs (id, owner_id, format) VALUES ($1, $2, 'json')", job_id, user.id
    )
    await mark_done(db, exports_dir, str(job_id), b'[{"id": 1}]')
    response = await client.get(f"{EXPORTS}/{job_id}/download", headers=user.headers)
    assert response.status_code == 200 and response.json() == [{"id": 1}]
    assert response.headers["content-type"] == "application/json"


@requires_rabbitmq
async def test_queued_event_is_published_on_the_exchange(
    client: httpx.AsyncClient, user: Account, events
) -> None:
    job = (await client.post(EXPORTS, headers=user.headers, json={"format": "csv"})).json()
    received: list[dict] = []

    async def queued_announced() -> bool:
        received.extend(await events())
        return any(e["key"] == "export.queued" for e in received)

    await eventually(queued_announced, "the export.queued event", 5)
    event = next(e for e in received if e["key"] == "export.queued")
    assert set(event) == {
        "job_id", "owner_id", "status", "row_count", "file_name", "file_size", "error",
        "updated_at", "key",
    }  # fmt: skip
    assert (event["job_id"], event["status"]) == (job["id"], "queued")
    assert datetime.fromisoformat(event["updated_at"]) <= datetime.now(UTC)


def test_an_exports_folder_it_cannot_create_is_not_fatal(
    tmp_path: Path, make_settings, caplog: pytest.LogCaptureFixture
) -> None:
    """The API only reads the folder; a devcontainer's remapped user may not create it."""
    from app.core.state import prepare_exports_dir

    blocker = tmp_path / "a-file"
    blocker.write_text("")  # a file where a parent folder should be: even root cannot mkdir
    with caplog.at_level("WARNING", logger="app"):
        prepare_exports_dir(make_settings(exports_dir=blocker / "exports"))
    assert any("cannot create the exports folder" in r.getMessage() for r in caplog.records)


@requires_rabbitmq
async def test_a_user_may_have_only_so_many_exports_queued_or_running(
    make_settings, user: Account, other: Account, db: asyncpg.Pool, queue_messages
) -> None:
    async with running(make_settings(export_max_active_per_user=2)) as (_, client):
        # Concurrent requests cannot slip past the limit together (the owner's lock).
        answers = await asyncio.gather(
            *(client.post(EXPORTS, headers=user.headers, json={"format": "csv"}) for _ in range(4))
        )
        codes = sorted(response.status_code for response in answers)
        assert codes == [202, 202, 429, 429], codes
        refused = next(r for r in answers if r.status_code == 429)
        assert int(refused.headers["retry-after"]) > 0
        theirs = await client.post(EXPORTS, headers=other.headers, json={"format": "csv"})
        assert theirs.status_code == 202, "one user's limit is not another's"
        # Once one is finished, there is room again.
        await db.execute(
            "UPDATE export_jobs SET status = 'done', finished_at = now() WHERE id = "
            "(SELECT id FROM export_jobs WHERE owner_id = $1 LIMIT 1)",
            user.id,
        )
        again = await client.post(EXPORTS, headers=user.headers, json={"format": "csv"})
        assert again.status_code == 202, again.text
    await queue_messages()
    active = await db.fetchval(
        "SELECT count(*) FROM export_jobs WHERE owner_id = $1 AND status = 'queued'", user.id
    )
    assert active == 2
