"""Users: admins manage everyone; a user may read and edit themself.

``GET /users`` and ``GET /users/{id}`` read through the cache: a hit is served
as the stored JSON bytes, with no database session and no re-serialisation
(and usually before reaching FastAPI at all: see app/api/fastpath.py).
Every write bumps the cache version of the "users" namespace after committing.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

import orjson
from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from sqlalchemy import Integer, bindparam, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.api.deps import (
    AdminClaims,
    AdminUser,
    Claims,
    Ctx,
    CurrentUser,
    SessionDep,
    TokenClaimsDep,
    forbidden,
)
from app.core.exports import delete_export_files
from app.core.state import AppContext
from app.models import ExportJob, User
from app.schemas.common import FORBIDDEN, NOT_FOUND, UNAUTHORIZED, error
from app.schemas.user import UserCreate, UserOut, UserPage, UserUpdate

router = APIRouter(prefix="/users", tags=["users"], responses=UNAUTHORIZED)

NAMESPACE = "users"
CONFLICT = {409: error("A user with this e-mail already exists")}
Offset = Annotated[int, Query(ge=0, le=1_000_000_000, description="Items to skip")]
Limit = Annotated[int, Query(ge=1, le=100, description="Items per page (at most 100)")]


def list_key(offset: int, limit: int) -> str:
    return f"list:{offset}:{limit}"


def item_key(user_id: uuid.UUID | str) -> str:
    return f"item:{user_id}"


def _json(body: bytes, status_code: int = 200) -> Response:
    return Response(body, status_code=status_code, media_type="application/json")


# The columns of UserOut, in its order: cache misses read plain rows (no ORM objects,
# no pydantic round trip) and serialise them with orjson into the same JSON.
USER_COLUMNS = (
    User.id, User.email, User.full_name, User.role, User.is_active, User.created_at,
    User.updated_at,
)  # fmt: skip


# Built once: executing the same statement objects skips SQLAlchemy's per-call cache-key
# generation and result adaptation, a large share of a cache miss.
COUNT_USERS = select(func.count()).select_from(User)
PAGE_OF_USERS = (
    select(*USER_COLUMNS)
    .order_by(User.created_at, User.id)
    .offset(bindparam("offset", type_=Integer))
    .limit(bindparam("limit", type_=Integer))
)
ONE_USER = select(*USER_COLUMNS).where(User.id == bindparam("user_id"))


def _to_json(data: object) -> bytes:
    # default=str: asyncpg's UUID type is not uuid.UUID; str() gives the canonical form.
    return orjson.dumps(data, default=str, option=orjson.OPT_UTC_Z)


@asynccontextmanager
async def _reading(ctx: AppContext) -> AsyncIterator[AsyncConnection]:
    """A pooled connection in autocommit: plain reads skip BEGIN/ROLLBACK round trips."""
    async with ctx.engine.connect() as connection:
        yield await connection.execution_options(isolation_level="AUTOCOMMIT")


def _email_taken() -> HTTPException:
    return HTTPException(status.HTTP_409_CONFLICT, "A user with this e-mail already exists")


def _not_found() -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, "User not found")


async def _written(ctx: AppContext) -> None:
    await ctx.cache.invalidate(NAMESPACE)


async def _commit_write(session: AsyncSession, ctx: AppContext) -> None:
    """Commit a user write (409 if the e-mail is taken), then drop what the cache holds of users."""
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()
        raise _email_taken() from None
    await _written(ctx)


@router.get(
    "",
    response_model=UserPage,
    summary="List users (admin; cached)",
    responses=FORBIDDEN,
)
async def list_users(
    request: Request, _: AdminClaims, offset: Offset = 0, limit: Limit = 50
) -> Response:
    ctx: AppContext = request.app.state.ctx  # not Ctx: one dependency less on the hot path
    key = list_key(offset, limit)
    cached, version = await ctx.cache.get(NAMESPACE, key)
    if cached is not None:
        return _json(cached)
    async with _reading(ctx) as connection:
        total = await connection.scalar(COUNT_USERS)
        result = await connection.execute(PAGE_OF_USERS, {"offset": offset, "limit": limit})
        items = [dict(row) for row in result.mappings()]
    body = _to_json({"items": items, "total": total, "offset": offset, "limit": limit})
    await ctx.cache.set(NAMESPACE, version, key, body)
    return _json(body)


@router.get("/me", response_model=UserOut, summary="The signed-in user")
async def read_me(user: CurrentUser) -> UserOut:
    return UserOut.model_validate(user)


@router.post(
    "",
    response_model=UserOut,
    status_code=status.HTTP_201_CREATED,
    summary="Create a user (admin)",
    responses={**FORBIDDEN, **CONFLICT},
)
async def create_user(
    body: UserCreate, ctx: Ctx, session: SessionDep, _: AdminUser, response: Response
) -> UserOut:
    user = User(
        email=body.email,
        hashed_password=await ctx.hasher.hash(body.password),
        full_name=body.full_name,
        role=body.role,
        is_active=body.is_active,
    )
    session.add(user)
    await _commit_write(session, ctx)
    response.headers["Location"] = f"/api/v1/users/{user.id}"
    return UserOut.model_validate(user)


@router.get(
    "/{user_id}",
    response_model=UserOut,
    summary="Read a user (admin, or the user themself; cached)",
    responses={**FORBIDDEN, **NOT_FOUND},
)
async def read_user(user_id: uuid.UUID, request: Request, claims: Claims) -> Response:
    ctx: AppContext = request.app.state.ctx
    if not claims.is_admin and claims.user_id != user_id:
        raise forbidden("You may only read your own account")
    key = item_key(user_id)
    cached, version = await ctx.cache.get(NAMESPACE, key)
    if cached is not None:
        return _json(cached)
    async with _reading(ctx) as connection:
        row = (await connection.execute(ONE_USER, {"user_id": user_id})).first()
    if row is None:
        raise _not_found()
    body = _to_json(dict(row._mapping))
    await ctx.cache.set(NAMESPACE, version, key, body)
    return _json(body)


@router.patch(
    "/{user_id}",
    response_model=UserOut,
    summary="Update a user (admin, or the user themself except role and is_active)",
    responses={**FORBIDDEN, **NOT_FOUND, **CONFLICT},
)
async def update_user(
    user_id: uuid.UUID,
    body: UserUpdate,
    ctx: Ctx,
    session: SessionDep,
    me: CurrentUser,
    claims: TokenClaimsDep,
) -> UserOut:
    changes = body.model_dump(exclude_unset=True)
    current_password = changes.pop("current_password", None)
    is_self = me.id == user_id
    if not is_self and me.role != "admin":
        raise forbidden("You may only change your own account")
    user = me if is_self else await session.get(User, user_id)
    if user is None:
        raise _not_found()
    for field in ("email", "password", "role", "is_active"):  # null: leave unchanged
        if changes.get(field) is None:
            changes.pop(field, None)
    if is_self and "role" in changes and changes["role"] != user.role:
        raise forbidden("You cannot change your own role")
    if is_self and "is_active" in changes and changes["is_active"] != user.is_active:
        raise forbidden("You cannot activate or deactivate yourself")
    password = changes.pop("password", None)
    new_email = "email" in changes and changes["email"] != user.email
    if is_self and (password is not None or new_email):
        await _check_current_password(ctx, user, current_password)
    rights_change = password is not None or any(
        field in changes and changes[field] != getattr(user, field)
        for field in ("role", "is_active")
    )
    if password is not None:
        user.hashed_password = await ctx.hasher.hash(password)
    for field, value in changes.items():
        setattr(user, field, value)
    if rights_change:
        user.auth_version += 1  # every access token issued before is refused from now on
    await _commit_write(session, ctx)
    if rights_change:
        await ctx.authz.publish(user.id, user.auth_version if user.is_active else None)
    if password is not None or user.is_active is False:
        # A new password ends every other session; your own (this one) stays signed in.
        await ctx.tokens.revoke_user(user.id, keep=claims.session_id if is_self else None)
    return UserOut.model_validate(user)


async def _check_current_password(ctx: AppContext, user: User, current: str | None) -> None:
    if current is None:
        raise forbidden("current_password is required to change your password or e-mail")
    if not await ctx.hasher.verify(current, user.hashed_password):
        raise forbidden("current_password is wrong")


@router.delete(
    "/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a user, their export jobs and files (admin; not yourself)",
    responses={**FORBIDDEN, **NOT_FOUND},
)
async def delete_user(user_id: uuid.UUID, ctx: Ctx, session: SessionDep, me: AdminUser) -> Response:
    if me.id == user_id:
        raise forbidden("You cannot delete yourself")
    user = await session.get(User, user_id)
    if user is None:
        raise _not_found()
    files = await session.scalars(
        select(ExportJob.file_name).where(
            ExportJob.owner_id == user_id, ExportJob.file_name.is_not(None)
        )
    )
    doomed = [name for name in files if name]
    await session.delete(user)  # their export jobs go with them (ON DELETE CASCADE)
    await session.commit()
    await _written(ctx)
    await ctx.authz.publish(user_id, None)
    await ctx.tokens.revoke_user(user_id)
    delete_export_files(ctx.settings.exports_dir, doomed)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
