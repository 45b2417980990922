"""Login, refresh-token rotation and logout."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Body, Cookie, HTTPException, Request, Response, status
from sqlalchemy import select

from app.api.deps import Ctx, SessionDep, client_ip, unauthorized
from app.core.security import create_access_token
from app.core.state import AppContext
from app.core.tokens import Rotation, TokenStoreUnavailable
from app.models import User
from app.schemas.auth import LoginRequest, RefreshRequest, TokenResponse
from app.schemas.common import RATE_LIMITED, error

router = APIRouter(prefix="/auth", tags=["auth"])

COOKIE = "refresh_token"
COOKIE_PATH = "/api/v1/auth"
BAD_CREDENTIALS = "Incorrect email or password"


def _set_cookie(ctx: AppContext, response: Response, token: str) -> None:
    response.set_cookie(
        COOKIE,
        token,
        max_age=ctx.tokens.ttl,
        path=COOKIE_PATH,
        secure=ctx.settings.cookie_secure,
        httponly=True,
        samesite="strict",
    )


def _clear_cookie(ctx: AppContext, response: Response) -> None:
    response.delete_cookie(
        COOKIE,
        path=COOKIE_PATH,
        secure=ctx.settings.cookie_secure,
        httponly=True,
        samesite="strict",
    )


def _cleared_cookie_header(ctx: AppContext) -> str:
    scratch = Response()
    _clear_cookie(ctx, scratch)
    return scratch.headers["set-cookie"]


def _tokens(
    ctx: AppContext, user: User, refresh: str, session_id: uuid.UUID, *, in_body: bool
) -> TokenResponse:
    access, expires_in = create_access_token(
        ctx.settings.jwt_secret_key,
        user.id,
        user.role,
        ctx.settings.access_token_minutes,
        version=user.auth_version,
        session_id=session_id,
    )
    return TokenResponse(
        access_token=access,
        expires_in=expires_in,
        refresh_token=refresh if in_body else None,
        refresh_expires_in=ctx.tokens.ttl,
    )


def _store_down() -> HTTPException:
    return HTTPException(
        status.HTTP_503_SERVICE_UNAVAILABLE,
        "The token store is temporarily unavailable; retry shortly",
        headers={"Retry-After": "5"},
    )


async def _login_limits(ctx: AppContext, request: Request, email: str) -> None:
    """LOGIN_IP_RATE_LIMIT per client IP (spraying: a new e-mail per attempt), then
    LOGIN_RATE_LIMIT per IP + e-mail (guessing one account's password)."""
    ip = client_ip(request)
    buckets = ((f"login-ip:{ip}", ctx.settings.login_ip_limit),
               (f"login:{ip}:{email}", ctx.settings.login_limit))  # fmt: skip
    for key, limit in buckets:
        if limit is None:
            continue
        retry_after = await ctx.limiter.hit(key, limit)
        if retry_after is not None:
            raise HTTPException(
                status.HTTP_429_TOO_MANY_REQUESTS,
                f"Too many login attempts; retry in {retry_after} s",
                headers={"Retry-After": str(retry_after)},
            )


@router.post(
    "/login",
    response_model=TokenResponse,
    summary="Exchange e-mail and password for an access and a refresh token",
    responses={
        401: error("Incorrect email or password"),
        **RATE_LIMITED,
        503: error("Too many password checks in progress; see the Retry-After header"),
    },
)
async def login(
    body: LoginRequest, request: Request, response: Response, ctx: Ctx, session: SessionDep
) -> TokenResponse:
    ctx.hasher.ensure_free()  # refused before it costs a Redis or PostgreSQL round trip
    await _login_limits(ctx, request, body.email)
    user = await session.scalar(select(User).where(User.email == body.email))
    # Always run bcrypt (against a dummy hash for unknown e-mails): same timing either way.
    valid = await ctx.hasher.verify(body.password, user.hashed_password if user else None)
    if user is None or not valid or not user.is_active:
        raise unauthorized(BAD_CREDENTIALS)
    await session.close()  # release the connection before talking to the token store
    issued = await ctx.tokens.issue(user.id)
    _set_cookie(ctx, response, issued.token)
    return _tokens(ctx, user, issued.token, issued.family_id, in_body=body.include_refresh_token)


def _presented(body: RefreshRequest | None, cookie: str | None) -> str | None:
    return (body.refresh_token if body else None) or cookie


@router.post(
    "/refresh",
    response_model=TokenResponse,
    summary="Rotate the refresh token (body or cookie) and get a new access token",
    description=(
        "The presented refresh token dies and a new one is issued. Presenting a token "
        "that was already used revokes every token of its login (family): 401."
    ),
    responses={
        401: error("Missing, invalid, expired, revoked or reused refresh token"),
        503: error("The token store is temporarily unavailable"),
    },
)
async def refresh(
    response: Response,
    ctx: Ctx,
    session: SessionDep,
    body: Annotated[RefreshRequest | None, Body()] = None,
    refresh_cookie: Annotated[str | None, Cookie(alias=COOKIE, include_in_schema=False)] = None,
) -> TokenResponse:
    token = _presented(body, refresh_cookie)
    if not token:
        raise unauthorized("No refresh token")
    try:
        result = await ctx.tokens.rotate(token)
    except TokenStoreUnavailable:
        raise _store_down() from None
    user = await session.get(User, result.user_id) if result.user_id else None
    if result.outcome is not Rotation.OK or user is None or not user.is_active:
        if result.outcome is Rotation.OK and result.token:
            await ctx.tokens.revoke(result.token)  # the user is gone or deactivated
        detail = (
            "Refresh token reuse detected; all sessions of this login are revoked"
            if result.outcome is Rotation.REUSED
            else "Invalid or expired refresh token"
        )
        exc = unauthorized(detail, "invalid_token")
        assert exc.headers is not None
        exc.headers["Set-Cookie"] = _cleared_cookie_header(ctx)
        raise exc
    assert result.token is not None and result.family_id is not None
    _set_cookie(ctx, response, result.token)
    # A client that sent the token in the body is no browser: it gets the new one back there.
    in_body = body is not None and body.refresh_token is not None
    return _tokens(ctx, user, result.token, result.family_id, in_body=in_body)


@router.post(
    "/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke the refresh token (body or cookie) and clear the cookie",
    responses={503: error("The token store is temporarily unavailable")},
)
async def logout(
    ctx: Ctx,
    body: Annotated[RefreshRequest | None, Body()] = None,
    refresh_cookie: Annotated[str | None, Cookie(alias=COOKIE, include_in_schema=False)] = None,
) -> Response:
    token = _presented(body, refresh_cookie)
    if token:
        try:
            await ctx.tokens.revoke(token)
        except TokenStoreUnavailable:
            raise _store_down() from None
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    _clear_cookie(ctx, response)
    return response
