"""Export jobs: queued here, carried out by the worker, downloaded here."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Response, status
from fastapi.responses import FileResponse, JSONResponse
from sqlalchemy import Integer, String, Uuid, bindparam, func, insert, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.api.deps import Ctx, CurrentUser, SessionDep, TokenClaimsDep, check_bearer, unauthorized
from app.core.broker import BrokerUnavailable
from app.core.exports import export_file
from app.core.security import TokenClaims
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


async def _fail_if_still_queued(
    session: AsyncSession, job_id: uuid.UUID, reason: str
) -> tuple[bool, ExportJob]:
    """Mark the job failed, but only while it is still queued; return whether it was, and the row.

    A publish whose confirm timed out may still have reached the queue: by now the
    worker can have marked the job running or done, which must not be overwritten.
    """
    failed = await session.scalar(
        update(ExportJob)
        .where(ExportJob.id == job_id, ExportJob.status == "queued")
        .values(status="failed", error=reason, finished_at=func.now())
        .returning(ExportJob.id)
        .execution_options(synchronize_session=False)
    )
    await session.commit()
    job = await session.get(ExportJob, job_id)  # this session never loaded it: read fresh
    if job is None:  # deleted with its owner meanwhile
        raise unauthorized("User not found or inactive", "invalid_token")
    return failed is not None, job


ACTIVE = ("queued", "running")
JOBS = ExportJob.__table__
# Built once: constructing them took a fifth of the route's database time.
BEARER_LOCKED = select(
    User.is_active,
    User.auth_version,
    func.pg_advisory_xact_lock(func.hashtextextended(bindparam("lock_key", type_=String), 0)),
).where(User.id == bindparam("owner_id"))
ACTIVE_COUNT = (
    select(func.count())
    .select_from(JOBS)
    .where(JOBS.c.owner_id == bindparam("owner_id"), JOBS.c.status.in_(ACTIVE))
    .scalar_subquery()
)
INSERT_BELOW_LIMIT = (
    insert(JOBS)
    .from_select(
        ("id", "owner_id", "format", "status"),
        select(
            bindparam("id", type_=Uuid), bindparam("owner_id", type_=Uuid),
            bindparam("format", type_=String), literal("queued"),
        ).where(bindparam("limit", type_=Integer) > ACTIVE_COUNT),
        include_defaults=False,
    )
    .returning(*JOBS.c)
)  # fmt: skip


async def _insert_queued_job(
    ctx: Ctx, session: AsyncSession, claims: TokenClaims, format: str
) -> ExportJob:
    """Insert the bearer's job as queued, in two statements and a commit: 401 if the bearer's
    row is not current (as for CurrentUser), 429 at EXPORT_MAX_ACTIVE_PER_USER jobs queued or
    running.

    The first statement reads the bearer's row and takes a transaction-level advisory lock
    on the owner: concurrent requests of one user queue up there, other users are not
    blocked. The second counts and inserts in one go (INSERT ... SELECT ... WHERE count <
    limit). It starts after the lock is held, so its snapshot sees every job an earlier
    holder committed; one statement doing all three could not, its snapshot would predate
    the lock. The commit ends the transaction and releases the lock.
    """
    owner = {"owner_id": claims.user_id}
    bearer = await session.execute(
        BEARER_LOCKED, {**owner, "lock_key": f"exports:{claims.user_id}"}
    )
    check_bearer(bearer.first(), claims)
    limit = ctx.settings.export_max_active_per_user
    values = {**owner, "id": uuid.uuid4(), "format": format, "limit": limit}
    row = (await session.execute(INSERT_BELOW_LIMIT, values)).first()
    if row is None:
        await session.rollback()
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            f"You already have {limit} exports queued or running; retry when one is done",
            headers={"Retry-After": "10"},
        )
    await session.commit()
    return ExportJob(**row._mapping)


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
    body: ExportCreate, ctx: Ctx, session: SessionDep, claims: TokenClaimsDep, response: Response
) -> ExportOut | JSONResponse:
    job = await _insert_queued_job(ctx, session, claims, body.format)
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
        failed, job = await _fail_if_still_queued(session, job.id, reason)
        if not failed:
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
