"""Server-sent events: live status changes of export jobs.

Each event's id is the job's updated_at in epoch microseconds. A client that
reconnects with ``Last-Event-ID`` first gets the current state of every job it
can see that changed after that instant, then the live feed. A comment line is
sent every SSE_HEARTBEAT_SECONDS to keep proxies from closing an idle stream.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header
from fastapi.responses import StreamingResponse
from sqlalchemy import select

from app.api.deps import Ctx, StreamClaims
from app.api.routes.exports import job_event
from app.core.broker import JobEvent, from_event_id
from app.core.security import TokenClaims
from app.core.state import AppContext
from app.models import ExportJob
from app.schemas.common import UNAUTHORIZED

router = APIRouter(tags=["events"])

REPLAY_LIMIT = 1000


async def _replay(ctx: AppContext, claims: TokenClaims, after: int) -> list[JobEvent]:
    query = (
        select(ExportJob)
        .where(ExportJob.updated_at > from_event_id(after))
        .order_by(ExportJob.updated_at, ExportJob.id)
        .limit(REPLAY_LIMIT)
    )
    if not claims.is_admin:
        query = query.where(ExportJob.owner_id == claims.user_id)
    async with ctx.sessionmaker() as session:
        jobs = (await session.scalars(query)).all()
    return [JobEvent.from_body(job_event(job)) for job in jobs]


async def _stream(
    ctx: AppContext, claims: TokenClaims, last_id: int | None
) -> AsyncIterator[bytes]:
    subscription = ctx.hub.subscribe(None if claims.is_admin else str(claims.user_id))
    try:
        # Subscribed before anything is sent: nothing published from now on is missed.
        yield b"retry: 3000\n: connected\n\n"
        replayed: dict[str, int] = {}
        if last_id is not None:
            for event in await _replay(ctx, claims, last_id):
                replayed[event.job_id] = event.id
                yield event.sse()
        heartbeat = ctx.settings.sse_heartbeat_seconds
        while not subscription.overflowed:
            try:
                event = await asyncio.wait_for(subscription.queue.get(), heartbeat)
            except TimeoutError:
                yield b": heartbeat\n\n"
                continue
            if event is None:  # shutting down
                return
            if replayed.get(event.job_id, -1) >= event.id:
                continue  # already sent by the replay
            yield event.sse()
    finally:
        ctx.hub.unsubscribe(subscription)


@router.get(
    "/events",
    summary="Live export-job status changes (text/event-stream)",
    description=(
        "Authenticate with the Bearer header or, for EventSource, `?access_token=`. "
        "Admins see every job, users their own. Each event: `id: <updated_at in µs>` and "
        "`data: {job_id, owner_id, status, row_count, file_name, file_size, error, "
        "updated_at}`. Reconnect with `Last-Event-ID` to replay what changed meanwhile."
    ),
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "The event stream"},
        **UNAUTHORIZED,
    },
)
async def events(
    ctx: Ctx,
    claims: StreamClaims,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> StreamingResponse:
    last_id = None
    if last_event_id and last_event_id.strip().isdigit():
        try:
            from_event_id(int(last_event_id))  # a representable instant?
            last_id = int(last_event_id)
        except (OverflowError, ValueError, OSError):
            pass  # not one of our ids: no replay
    return StreamingResponse(
        _stream(ctx, claims, last_id),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
