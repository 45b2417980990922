"""Liveness (no I/O) and readiness (PostgreSQL, Redis and RabbitMQ when on)."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import JSONResponse
from sqlalchemy import text

from app.api.deps import Ctx, client_ip
from app.core.state import AppContext
from app.schemas.common import RATE_LIMITED, Liveness, Readiness

log = logging.getLogger("app.health")
router = APIRouter(tags=["health"])


@router.get("/health", response_model=Liveness, summary="Liveness (touches nothing)")
async def health(request: Request) -> Liveness:
    return Liveness(status="ok", service=request.app.title)


async def _postgres(ctx: AppContext) -> None:
    async with ctx.engine.connect() as connection:
        await connection.execute(text("SELECT 1"))


async def _check(name: str, ctx: AppContext) -> tuple[str, str]:
    """``(name, "ok" | "down")``; why it is down goes to the log, never to the client."""
    timeout = ctx.settings.readiness_timeout_seconds
    try:
        async with asyncio.timeout(timeout):
            if name == "postgres":
                await _postgres(ctx)
            elif name == "redis":
                await ctx.redis.ping()
            else:
                await ctx.broker.check(timeout)
    except TimeoutError:
        log.warning("readiness: %s did not answer within %g s", name, timeout)
        return name, "down"
    except Exception as exc:  # noqa: BLE001 - any failure is "not ready"
        log.warning("readiness: %s failed: %s: %s", name, exc.__class__.__name__, exc)
        return name, "down"
    return name, "ok"


async def _limit(ctx: AppContext, request: Request) -> None:
    """READY_RATE_LIMIT per client IP: each call costs a round trip to every backing service."""
    limit = ctx.settings.ready_limit
    if limit is None:
        return
    retry_after = await ctx.limiter.hit(f"ready:{client_ip(request)}", limit)
    if retry_after is not None:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            f"Too many requests; retry in {retry_after} s",
            headers={"Retry-After": str(retry_after)},
        )


@router.get(
    "/ready",
    response_model=Readiness,
    summary="Readiness: PostgreSQL, Redis and RabbitMQ (when configured) answer",
    responses={
        503: {"model": Readiness, "description": "A backing service is down"},
        **RATE_LIMITED,
    },
)
async def ready(ctx: Ctx, request: Request) -> JSONResponse:
    await _limit(ctx, request)
    names = ["postgres"]
    checks = {"redis": "off", "rabbitmq": "off"}
    if ctx.redis.enabled:
        names.append("redis")
    if ctx.broker.enabled:
        names.append("rabbitmq")
    results = await asyncio.gather(*(_check(name, ctx) for name in names))
    checks = {"postgres": "ok", **checks, **dict(results)}
    failed = [name for name, result in checks.items() if result not in ("ok", "off")]
    body = Readiness(status="unavailable" if failed else "ready", checks=checks, failed=failed)
    return JSONResponse(body.model_dump(), status_code=503 if failed else 200)
