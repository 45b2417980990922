"""Liveness (no I/O) and readiness (PostgreSQL, Redis and RabbitMQ when on)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from app.api.deps import Ctx
from app.core.state import AppContext
from app.schemas.common import Liveness, Readiness

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Liveness, summary="Liveness (touches nothing)")
async def health(request: Request) -> Liveness:
    return Liveness(status="ok", service=request.app.title)


async def _postgres(ctx: AppContext) -> None:
    async with ctx.engine.connect() as connection:
        await connection.execute(text("SELECT 1"))


async def _check(name: str, ctx: AppContext) -> tuple[str, str]:
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
        return name, f"timeout after {timeout:g} s"
    except Exception as exc:  # noqa: BLE001 - any failure is "not ready"
        return name, f"{exc.__class__.__name__}: {exc}"[:200]
    return name, "ok"


@router.get(
    "/ready",
    response_model=Readiness,
    summary="Readiness: PostgreSQL, Redis and RabbitMQ (when configured) answer",
    responses={503: {"model": Readiness, "description": "A backing service failed"}},
)
async def ready(ctx: Ctx) -> JSONResponse:
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
