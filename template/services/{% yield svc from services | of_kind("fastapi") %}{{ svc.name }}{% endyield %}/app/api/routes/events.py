"""Server-sent events: live status changes of export jobs.

Each event's id is the job's updated_at in epoch microseconds. A client that
reconnects with ``Last-Event-ID`` first gets the current state of every job it
can see that changed after that instant, then the live feed. A comment line is
sent every SSE_HEARTBEAT_SECONDS to keep proxies from closing an idle stream.

EventSource cannot send an Authorization header, and an access token in a URL
ends up in logs. So a browser first buys a ticket (``POST /events/ticket``, with
its Bearer header): signed, valid for 30 seconds and for one connection only
(``stream_tickets`` records redeemed ones), it then goes in the URL. A stream
ends when the access token its ticket was bought with expires, and as soon as the
user's rights change (demoted, deactivated, deleted: app/core/authz.py); the
client buys a new ticket and reconnects with ``last_event_id``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, status
from fastapi.responses import StreamingResponse
from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert

from app.api.deps import Claims, Credentials, Ctx, get_claims, unauthorized
from app.api.routes.exports import job_event
from app.core.broker import JobEvent, from_event_id
from app.core.security import (
    InvalidToken,
    StreamTicket,
    TokenClaims,
    create_stream_ticket,
    decode_stream_ticket,
)
from app.core.state import AppContext
from app.models import ExportJob
from app.models import StreamTicket as RedeemedTicket
from app.schemas.common import UNAUTHORIZED
from app.schemas.event import StreamTicketOut

router = APIRouter(tags=["events"])

REPLAY_LIMIT = 1000
TICKET_SECONDS = 30


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


class _Watch:
    """When a stream must end: its session's expiry, or a change of the user's rights."""

    def __init__(self, ctx: AppContext, claims: TokenClaims) -> None:
        self.ctx = ctx
        self.claims = claims
        self.every = ctx.settings.sse_auth_check_seconds
        self.next_check = time.monotonic() + self.every

    def wait(self) -> float:
        """How long to wait for the next event before looking again."""
        left = self.claims.expires_at - time.time()
        return max(0.0, min(self.ctx.settings.sse_heartbeat_seconds, self.every, left))

    async def over(self) -> bool:
        if time.time() >= self.claims.expires_at:
            return True
        if time.monotonic() < self.next_check:
            return False
        self.next_check = time.monotonic() + self.every
        return not await self.ctx.authz.is_current(self.claims)


async def _stream(
    ctx: AppContext, claims: TokenClaims, last_id: int | None
) -> AsyncIterator[bytes]:
    subscription = ctx.hub.subscribe(None if claims.is_admin else str(claims.user_id))
    watch = _Watch(ctx, claims)
    try:
        # Subscribed before anything is sent: nothing published from now on is missed.
        yield b"retry: 3000\n: connected\n\n"
        replayed: dict[str, int] = {}
        if last_id is not None:
            for event in await _replay(ctx, claims, last_id):
                replayed[event.job_id] = event.id
                yield event.sse()
        last_beat = time.monotonic()
        while not subscription.overflowed:
            if await watch.over():
                yield b": session over\n\n"
                return
            try:
                event = await asyncio.wait_for(subscription.queue.get(), watch.wait())
            except TimeoutError:
                if time.monotonic() - last_beat >= ctx.settings.sse_heartbeat_seconds:
                    last_beat = time.monotonic()
                    yield b": heartbeat\n\n"
                continue
            if event is None:  # shutting down
                return
            if replayed.get(event.job_id, -1) >= event.id:
                continue  # already sent by the replay
            yield event.sse()
    finally:
        ctx.hub.unsubscribe(subscription)


@router.post(
    "/events/ticket",
    response_model=StreamTicketOut,
    status_code=status.HTTP_201_CREATED,
    summary="A single-use, 30-second ticket that opens one event stream",
    responses=UNAUTHORIZED,
)
async def stream_ticket(ctx: Ctx, claims: Claims) -> StreamTicketOut:
    ticket = create_stream_ticket(ctx.settings.jwt_secret_key, claims, TICKET_SECONDS)
    return StreamTicketOut(ticket=ticket, expires_in=TICKET_SECONDS)


async def _redeem(ctx: AppContext, text: str) -> TokenClaims:
    """The claims of a valid ticket never used before (it is used up now)."""
    try:
        ticket: StreamTicket = decode_stream_ticket(ctx.settings.jwt_secret_key, text)
    except InvalidToken:
        raise unauthorized("Invalid or expired stream ticket", "invalid_token") from None
    now = datetime.now(UTC)
    async with ctx.sessionmaker() as session, session.begin():
        await session.execute(delete(RedeemedTicket).where(RedeemedTicket.expires_at < now))
        fresh = await session.scalar(
            insert(RedeemedTicket)
            .values(ticket_id=ticket.ticket_id, expires_at=datetime.fromtimestamp(
                time.time() + TICKET_SECONDS, UTC))
            .on_conflict_do_nothing()
            .returning(RedeemedTicket.ticket_id)
        )  # fmt: skip
    if fresh is None:
        raise unauthorized("This stream ticket was already used", "invalid_token")
    if not await ctx.authz.is_current(ticket.claims):
        raise unauthorized("The user's rights changed: get a new ticket", "invalid_token")
    return ticket.claims


def _event_id(*candidates: str | None) -> int | None:
    """The first candidate that is one of our event ids (a representable instant)."""
    for value in candidates:
        if value and value.strip().isdigit():
            try:
                from_event_id(int(value))
                return int(value)
            except (OverflowError, ValueError, OSError):
                continue  # not one of our ids: no replay
    return None


@router.get(
    "/events",
    summary="Live export-job status changes (text/event-stream)",
    description=(
        "Authenticate with the Bearer header or, for EventSource, `?ticket=` from "
        "`POST /events/ticket` (single use, 30 s). Admins see every job, users their own. "
        "Each event: `id: <updated_at in µs>` and `data: {job_id, owner_id, status, "
        "row_count, file_name, file_size, error, updated_at}`. Reconnect with "
        "`Last-Event-ID` (or `?last_event_id=`) to replay what changed meanwhile. The "
        "stream ends when the session behind it expires or the user's rights change."
    ),
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "The event stream"},
        **UNAUTHORIZED,
    },
)
async def events(
    ctx: Ctx,
    request: Request,
    credentials: Credentials,
    ticket: Annotated[
        str | None,
        Query(max_length=2048, description="From POST /events/ticket (for EventSource)"),
    ] = None,
    last_event_id_query: Annotated[
        str | None, Query(alias="last_event_id", max_length=32, description="= Last-Event-ID")
    ] = None,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> StreamingResponse:
    if credentials is None and ticket:
        claims = await _redeem(ctx, ticket)
    else:
        claims = await get_claims(request, credentials)
    return StreamingResponse(
        _stream(ctx, claims, _event_id(last_event_id, last_event_id_query)),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
