"""Export jobs: queued here, carried out by the worker, downloaded here."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Response, status
from fastapi.responses import FileResponse, JSONResponse
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.api.deps import Ctx, CurrentUser, SessionDep
from app.core.broker import BrokerUnavailable
from app.core.exports import export_file
from app.models import ExportJob, User
from app.schemas.common import NOT_FOUND, RATE_LIMITED, UNAUTHORIZED, error
from app.schemas.export import ExportCreate, ExportOut, ExportPage, ExportUnavailable

log = logging.getLogger("app.exports")
router = APIRouter(prefix="/exports", tags=["exports"], responses=UNAUTHORIZED)

MEDIA_TYPES = {"csv": "text/csv; charset=utf-8", "json": "application/json"}
Offset = Annotated[int, Query(ge=0, le=1_000_000_000, description="Items to skip")]
Limit = Annotated[int, Query(ge=1, le=100, description="Items per page (at most 100)")]


def job_event(job: ExportJob) -> dict:
    """The body of an events-exchange message (same shape as the worker's)."""
    return {
        "job_id": str(job.id),
        "owner_id": str(job.owner_id),
        "status": job.status,
        "row_count": job.row_count,
        "file_name": job.file_name,
        "file_size": job.file_size,
        "error": job.error,
        "updated_at": job.updated_at.isoformat(),
    }


async def _visible_job(session: SessionDep, user: User, job_id: uuid.UUID) -> ExportJob:
    job = await session.get(ExportJob, job_id)
    if job is None or (job.owner_id != user.id and user.role != "admin"):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "Export not found")
    return job


async def _fail_if_still_queued(session: AsyncSession, job: ExportJob, reason: str) -> bool:
    """Mark *job* failed, but only while it is still queued; reload it either way.

    A publish whose confirm timed out may still have reached the queue: by now the
    worker can have marked the job running or done, which must not be overwritten.
    """
    failed = await session.scalar(
        update(ExportJob)
        .where(ExportJob.id == job.id, ExportJob.status == "queued")
        .values(status="failed", error=reason, finished_at=func.now())
        .returning(ExportJob.id)
        .execution_options(synchronize_session=False)
    )
    await session.commit()
    await session.refresh(job)
    return failed is not None


ACTIVE = ("queued", "running")


async def _within_active_limit(ctx: Ctx, session: SessionDep, user: User) -> None:
    """429 when the user already has EXPORT_MAX_ACTIVE_PER_USER jobs queued or running.

    A transaction-level advisory lock on the owner makes count-then-insert atomic:
    concurrent requests of one user queue up here, other users are not blocked.
    """
    await session.execute(
        select(func.pg_advisory_xact_lock(func.hashtextextended(f"exports:{user.id}", 0)))
    )
    active = await session.scalar(
        select(func.count())
        .select_from(ExportJob)
        .where(ExportJob.owner_id == user.id, ExportJob.status.in_(ACTIVE))
    )
    limit = ctx.settings.export_max_active_per_user
    if (active or 0) >= limit:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            f"You already have {limit} exports queued or running; retry when one is done",
            headers={"Retry-After": "10"},
        )


@router.post(
    "",
    response_model=ExportOut,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Request an export (queued for the worker, answered at once)",
    responses={
        **RATE_LIMITED,
        503: {
            "model": ExportUnavailable,
            "description": "The broker is off, unreachable or refused the job: it is marked failed",
        },
    },
)
async def create_export(
    body: ExportCreate, ctx: Ctx, session: SessionDep, user: CurrentUser, response: Response
) -> ExportOut | JSONResponse:
    await _within_active_limit(ctx, session, user)
    job = ExportJob(owner_id=user.id, format=body.format, status="queued")
    session.add(job)
    await session.commit()  # also ends the transaction holding the owner's lock
    message = {
        "job_id": str(job.id),
        "owner_id": str(job.owner_id),
        "format": job.format,
        "requested_at": job.created_at.isoformat(),
    }
    try:
        await ctx.broker.queue_export(str(job.id), message, job_event(job))
    except BrokerUnavailable as exc:
        reason = str(exc)
        if not await _fail_if_still_queued(session, job, reason):
            # A late confirm: the message did arrive and the worker already took the job.
            log.warning("export publish unconfirmed, but the worker has the job",
                        extra={"job_id": str(job.id), "status": job.status})  # fmt: skip
            response.headers["Location"] = f"/api/v1/exports/{job.id}"
            return ExportOut.model_validate(job)
        log.error("export job could not be queued", extra={"job_id": str(job.id), "reason": reason})
        await ctx.broker.publish_event(job_event(job))
        payload = ExportUnavailable(
            detail=f"Export could not be queued: {reason}", job=ExportOut.model_validate(job)
        )
        return JSONResponse(
            payload.model_dump(mode="json"),
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": "30"},
        )
    response.headers["Location"] = f"/api/v1/exports/{job.id}"
    return ExportOut.model_validate(job)


@router.get("", response_model=ExportPage, summary="List your export jobs (admins: all)")
async def list_exports(
    session: SessionDep, user: CurrentUser, offset: Offset = 0, limit: Limit = 50
) -> ExportPage:
    query = select(ExportJob)
    count = select(func.count()).select_from(ExportJob)
    if user.role != "admin":
        query = query.where(ExportJob.owner_id == user.id)
        count = count.where(ExportJob.owner_id == user.id)
    total = await session.scalar(count) or 0
    rows = await session.scalars(
        query.order_by(ExportJob.created_at.desc(), ExportJob.id).offset(offset).limit(limit)
    )
    items = [ExportOut.model_validate(job) for job in rows]
    return ExportPage(items=items, total=total, offset=offset, limit=limit)


@router.get(
    "/{job_id}",
    response_model=ExportOut,
    summary="Read an export job (owner or admin)",
    responses=NOT_FOUND,
)
async def read_export(job_id: uuid.UUID, session: SessionDep, user: CurrentUser) -> ExportOut:
    return ExportOut.model_validate(await _visible_job(session, user, job_id))


@router.get(
    "/{job_id}/download",
    response_class=FileResponse,
    summary="Download the file of a finished export (owner or admin)",
    responses={
        200: {
            "description": "The export file",
            "content": {"text/csv": {}, "application/json": {}},
        },
        **NOT_FOUND,
        409: error("The export is not done (yet)"),
        410: error("The export file is gone"),
    },
)
async def download_export(
    job_id: uuid.UUID, ctx: Ctx, session: SessionDep, user: CurrentUser
) -> FileResponse:
    job = await _visible_job(session, user, job_id)
    if job.status != "done" or not job.file_name:
        raise HTTPException(status.HTTP_409_CONFLICT, f"Export is {job.status}, not done")
    path = export_file(ctx.settings.exports_dir, job.file_name)
    if path is None or not path.is_file():
        raise HTTPException(status.HTTP_410_GONE, "The export file is gone")
    stamp = job.created_at.strftime("%Y%m%d-%H%M%S")
    return FileResponse(
        Path(path),
        media_type=MEDIA_TYPES.get(job.format, "application/octet-stream"),
        filename=f"{ctx.settings.service_name}-export-{stamp}.{job.format}",
    )
