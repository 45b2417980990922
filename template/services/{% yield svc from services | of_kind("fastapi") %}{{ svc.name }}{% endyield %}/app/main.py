"""The FastAPI application: ``create_app()`` and its lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse

from app.api.fastpath import CachedReadsMiddleware
from app.api.router import API_PREFIX, routers
from app.api.routes import health
from app.core.config import Settings, get_settings
from app.core.logging import RequestLogMiddleware, configure_logging
from app.core.proxies import ForwardedForMiddleware
from app.core.ratelimit import GeneralRateLimitMiddleware
from app.core.security import PasswordChecksBusy
from app.core.state import AppContext


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the application; connections are opened by its lifespan, not here."""
    settings = settings or get_settings()
    configure_logging(settings.service_name, settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.ctx = await AppContext.start(settings)
        try:
            yield
        finally:
            await app.state.ctx.stop()

    app = FastAPI(
        title=settings.service_name,
        version="0.1.0",
        description="Users, roles, JWT auth with rotating refresh tokens, cached reads, "
        "export jobs handed to a worker over RabbitMQ and their live status over SSE.",
        lifespan=lifespan,
        **_docs_urls(settings),
    )
    app.state.settings = settings
    for router in routers:
        app.include_router(router, prefix=API_PREFIX)
    app.include_router(health.router)  # /health and /ready, for probes
    app.add_exception_handler(PasswordChecksBusy, _password_checks_busy)

    # Added innermost first: forwarded-for (outermost: every later step sees the real
    # client) -> request log -> CORS -> cached reads -> rate limit -> routes, so even a
    # 429 carries CORS headers and is logged with its id.
    app.add_middleware(GeneralRateLimitMiddleware)
    app.add_middleware(CachedReadsMiddleware)
    if settings.cors_origin_list:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origin_list,
            allow_credentials=True,
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=["X-Request-ID", "Retry-After", "Location"],
            max_age=600,
        )
    app.add_middleware(RequestLogMiddleware)
    app.add_middleware(ForwardedForMiddleware)
    return app


async def _password_checks_busy(request: Request, exc: Exception) -> JSONResponse:
    """Every bcrypt slot is taken (MAX_CONCURRENT_PASSWORD_CHECKS): retry, don't queue."""
    return JSONResponse(
        {"detail": "Too many password checks in progress; retry shortly"},
        status_code=503,
        headers={"Retry-After": "1"},
    )


def _docs_urls(settings: Settings) -> dict[str, str | None]:
    """FastAPI's defaults, or None each (404) when API_DOCS_ENABLED is false."""
    if settings.api_docs_enabled:
        return {"docs_url": "/docs", "redoc_url": "/redoc", "openapi_url": "/openapi.json"}
    return {"docs_url": None, "redoc_url": None, "openapi_url": None}


def __getattr__(name: str) -> FastAPI:
    """``app.main:app`` (for ``uvicorn app.main:app`` and friends) builds the app on demand."""
    if name == "app":
        return create_app()
    raise AttributeError(name)
