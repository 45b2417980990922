"""An unconfirmed publish marks the job failed only while it is still queued."""

import uuid
from collections.abc import Mapping
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from app.core.broker import BrokerUnavailable
from tests.conftest import Account

EXPORTS = "/api/v1/exports"


def late_confirm(db: asyncpg.Pool, worker_status: str):
    """A publish that reached the worker, who set *worker_status*, before the confirm timed out."""

    async def publish_export(job_id: str, body: Mapping[str, Any]) -> None:
        await db.execute(
            "UPDATE export_jobs SET status = $2, row_count = 2, file_name = $3, file_size = 10,"
            " attempts = 1, started_at = now(), finished_at = now(), updated_at = now()"
            " WHERE id = $1",
            uuid.UUID(job_id),
            worker_status,
            f"{job_id}.csv",
        )
        raise BrokerUnavailable("the message broker did not confirm the message")

    return publish_export


@pytest.mark.parametrize("worker_status", ["done", "running"])
async def test_a_timeout_after_the_worker_took_the_job_keeps_its_status(
    client: httpx.AsyncClient,
    main_app: FastAPI,
    user: Account,
    db: asyncpg.Pool,
    monkeypatch: pytest.MonkeyPatch,
    worker_status: str,
) -> None:
    monkeypatch.setattr(
        main_app.state.ctx.broker, "publish_export", late_confirm(db, worker_status)
    )
    response = await client.post(EXPORTS, headers=user.headers, json={"format": "csv"})
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["status"] == worker_status and job["error"] is None
    assert response.headers["location"] == f"{EXPORTS}/{job['id']}"
    row = await db.fetchrow(
        "SELECT status, error FROM export_jobs WHERE id = $1", uuid.UUID(job["id"])
    )
    assert (row["status"], row["error"]) == (worker_status, None)


async def test_a_timeout_while_still_queued_marks_the_job_failed(
    client: httpx.AsyncClient, main_app: FastAPI, user: Account, db: asyncpg.Pool, monkeypatch
) -> None:
    async def unconfirmed(job_id: str, body: Mapping[str, Any]) -> None:
        raise BrokerUnavailable("the message broker did not confirm the message")

    monkeypatch.setattr(main_app.state.ctx.broker, "publish_export", unconfirmed)
    response = await client.post(EXPORTS, headers=user.headers, json={"format": "csv"})
    assert response.status_code == 503
    assert response.json()["job"]["status"] == "failed"
    row = await db.fetchrow("SELECT status, error, finished_at FROM export_jobs")
    assert row["status"] == "failed" and "did not confirm" in row["error"] and row["finished_at"]
