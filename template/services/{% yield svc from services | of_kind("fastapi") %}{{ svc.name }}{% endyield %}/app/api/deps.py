"""Typed dependencies of the routes.

* ``Ctx``: the application's connections (app.state.ctx).
* ``SessionDep``: a database session for the request.
* ``Claims`` / ``AdminClaims``: the bearer's identity from the access token,
  checked to still be current (the user's auth version, from Redis: see
  app/core/authz.py); used by the hot cached reads.
* ``CurrentUser`` / ``AdminUser``: the bearer's row, which must exist and be
  active; used wherever the request writes or needs the user anyway.

Every dependency is ``async def``: FastAPI runs plain ``def`` ones in a thread.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Protocol, TypeVar

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.security import InvalidToken, TokenClaims
from app.core.state import AppContext
from app.models import User

bearer = HTTPBearer(
    auto_error=False,  # we answer 401 with WWW-Authenticate ourselves
    scheme_name="BearerToken",
    description="The access_token from POST /api/v1/auth/login",
)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


async def get_ctx(request: Request) -> AppContext:
    return request.app.state.ctx


Ctx = Annotated[AppContext, Depends(get_ctx)]


async def get_session(ctx: Ctx) -> AsyncIterator[AsyncSession]:
    async with ctx.sessionmaker() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


class BearerRow(Protocol):
    """What check_bearer reads of the bearer's users row (a User, or a selected row)."""

    @property
    def is_active(self) -> bool: ...
    @property
    def auth_version(self) -> int: ...


Bearer = TypeVar("Bearer", bound=BearerRow)


def unauthorized(detail: str, error: str | None = None) -> HTTPException:
    challenge = f'Bearer error="{error}"' if error else "Bearer"
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail, headers={"WWW-Authenticate": challenge}
    )


def forbidden(detail: str = "Not allowed") -> HTTPException:
    return HTTPException(status.HTTP_403_FORBIDDEN, detail)


def _claims(request: Request, token: str | None) -> TokenClaims:
    if not token:
        raise unauthorized("Not authenticated")
    try:
        return request.app.state.ctx.verify_token(token)
    except InvalidToken:
        raise unauthorized("Invalid or expired access token", "invalid_token") from None


def revoked() -> HTTPException:
    return unauthorized("The user's rights changed: refresh the access token", "invalid_token")


async def _current_claims(request: Request, credentials: Credentials) -> TokenClaims:
    claims = _claims(request, credentials.credentials if credentials else None)
    if not await request.app.state.ctx.authz.is_current(claims):
        raise revoked()
    return claims


# The claims dependencies take the Request, not Ctx: one dependency less to
# solve per request. (Cache hits of the hot reads don't even get here: see
# app/api/fastpath.py.)
async def get_claims(request: Request, credentials: Credentials) -> TokenClaims:
    return await _current_claims(request, credentials)


Claims = Annotated[TokenClaims, Depends(get_claims)]


async def get_admin_claims(request: Request, credentials: Credentials) -> TokenClaims:
    claims = await _current_claims(request, credentials)
    if not claims.is_admin:
        raise forbidden("Administrators only")
    return claims


AdminClaims = Annotated[TokenClaims, Depends(get_admin_claims)]


async def get_token_claims(request: Request, credentials: Credentials) -> TokenClaims:
    """The access token's claims, verified but not yet checked against the user's row."""
    return _claims(request, credentials.credentials if credentials else None)


TokenClaimsDep = Annotated[TokenClaims, Depends(get_token_claims)]


def check_bearer(row: Bearer | None, claims: TokenClaims) -> Bearer:
    """The bearer's row; 401 unless it exists, is active and has the token's auth version."""
    if row is None or not row.is_active:
        raise unauthorized("User not found or inactive", "invalid_token")
    if row.auth_version != claims.version:
        raise revoked()
    return row


async def get_current_user(claims: TokenClaimsDep, session: SessionDep) -> User:
    return check_bearer(await session.get(User, claims.user_id), claims)


CurrentUser = Annotated[User, Depends(get_current_user)]


async def get_admin_user(user: CurrentUser) -> User:
    if user.role != "admin":
        raise forbidden("Administrators only")
    return user


AdminUser = Annotated[User, Depends(get_admin_user)]


def client_ip(request: Request) -> str:
    """The client IP: the peer, or what a TRUSTED_PROXIES peer forwarded (app/core/proxies.py)."""
    return request.client.host if request.client else "-"
