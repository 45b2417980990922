"""Refresh tokens: opaque, stored hashed (sha256), rotated, reuse-detecting.

A login starts a *family*. Every refresh marks the presented token used and
issues a new one in the same family. Presenting a used token again means it
was stolen (or replayed): the whole family is revoked and the refresh fails.

Tokens live in Redis (with their TTL) while Redis is on and reachable, else in
the PostgreSQL table ``refresh_tokens``. A token's first two characters say
where it lives ("r." or "p."), and a family stays in the store it started in,
so reuse detection never depends on which store happened to be up.

A family also has an absolute lifetime (SESSION_MAX_DAYS from the login): after
it, rotation refuses and a new login is needed, however often the token rotated.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from redis.asyncio import Redis
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.cache import RedisGate
from app.core.security import hash_token, new_refresh_token
from app.models import RefreshToken

log = logging.getLogger("app.tokens")

REDIS_MARK = "r."
POSTGRES_MARK = "p."

# KEYS[1] old token key, KEYS[2] new token key; ARGV: ttl, key prefix, new token hash,
# now (epoch seconds), session max seconds. A token hash: u user, f family, s state
# ('a' active, 'u' used), c the family's start.
_ROTATE = """
local d = redis.call('HMGET', KEYS[1], 'u', 'f', 's', 'c')
if not d[1] then return {'invalid'} end
local fam = ARGV[2] .. 'rtf:' .. d[2]
local started = tonumber(d[4]) or 0
local left = started + tonumber(ARGV[5]) - tonumber(ARGV[4])
if d[3] ~= 'a' or left <= 0 then
  for _, h in ipairs(redis.call('SMEMBERS', fam)) do redis.call('DEL', ARGV[2] .. 'rt:' .. h) end
  redis.call('DEL', fam)
  redis.call('SREM', ARGV[2] .. 'rtu:' .. d[1], d[2])
  if d[3] == 'a' then return {'invalid'} end
  return {'reused', d[1], d[2]}
end
local ttl = math.min(tonumber(ARGV[1]), left)
redis.call('HSET', KEYS[1], 's', 'u')
redis.call('HSET', KEYS[2], 'u', d[1], 'f', d[2], 's', 'a', 'c', started)
redis.call('EXPIRE', KEYS[2], ttl)
redis.call('SADD', fam, ARGV[3])
redis.call('EXPIRE', fam, ttl)
redis.call('EXPIRE', ARGV[2] .. 'rtu:' .. d[1], ARGV[1])
return {'ok', d[1], d[2]}
"""

# KEYS[1] token key; ARGV[1] key prefix. Revokes the token's whole family.
_REVOKE = """
local d = redis.call('HMGET', KEYS[1], 'u', 'f')
if not d[1] then return 0 end
local fam = ARGV[1] .. 'rtf:' .. d[2]
for _, h in ipairs(redis.call('SMEMBERS', fam)) do redis.call('DEL', ARGV[1] .. 'rt:' .. h) end
redis.call('DEL', fam, KEYS[1])
redis.call('SREM', ARGV[1] .. 'rtu:' .. d[1], d[2])
return 1
"""

# KEYS[1] the user's family set; ARGV[1] key prefix, ARGV[2] a family to keep ("" = none).
# Revokes every other family of a user.
_REVOKE_USER = """
for _, f in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if f ~= ARGV[2] then
    local fam = ARGV[1] .. 'rtf:' .. f
    for _, h in ipairs(redis.call('SMEMBERS', fam)) do redis.call('DEL', ARGV[1] .. 'rt:' .. h) end
    redis.call('DEL', fam)
    redis.call('SREM', KEYS[1], f)
  end
end
return 1
"""


class Rotation(enum.Enum):
    OK = "ok"
    INVALID = "invalid"  # unknown, expired or revoked
    REUSED = "reused"  # a used token again: its family is now revoked


@dataclass(frozen=True, slots=True)
class RotationResult:
    outcome: Rotation
    user_id: uuid.UUID | None = None
    token: str | None = None  # the new refresh token when outcome is OK
    family_id: uuid.UUID | None = None  # the session (login) it belongs to


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    family_id: uuid.UUID


class TokenStoreUnavailable(Exception):
    """The store holding this token (Redis) is down: retry later (503)."""


class RefreshTokens:
    def __init__(
        self,
        gate: RedisGate,
        sessionmaker: async_sessionmaker[AsyncSession],
        prefix: str,
        days: int,
        session_max_days: int,
    ) -> None:
        self.gate = gate
        self.sessionmaker = sessionmaker
        self.prefix = prefix
        self.lifetime = timedelta(days=days)
        self.ttl = int(self.lifetime.total_seconds())
        self.session_max = timedelta(days=session_max_days)
        client = gate.client
        self._rotate = client.register_script(_ROTATE) if client else None
        self._revoke = client.register_script(_REVOKE) if client else None
        self._revoke_user = client.register_script(_REVOKE_USER) if client else None

    # ------------------------------------------------------------------ public

    async def issue(self, user_id: uuid.UUID) -> IssuedToken:
        """Start a new family (session) for *user_id* and return its first token."""
        family = uuid.uuid4()
        now = datetime.now(UTC)
        if self.gate.available:
            token = REDIS_MARK + new_refresh_token()
            try:
                await self._redis_store(token, user_id, family, now)
                self.gate.succeeded()
                return IssuedToken(token, family)
            except Exception as exc:  # noqa: BLE001 - fall back to PostgreSQL
                self.gate.failed(exc, "refresh token store")
        token = POSTGRES_MARK + new_refresh_token()
        async with self.sessionmaker() as session, session.begin():
            await session.execute(delete(RefreshToken).where(RefreshToken.expires_at < now))
            session.add(self._row(token, user_id, family, now, now))
        return IssuedToken(token, family)

    async def rotate(self, token: str) -> RotationResult:
        if token.startswith(REDIS_MARK) and self.gate.client is not None:
            return await self._rotate_redis(token)
        if token.startswith(POSTGRES_MARK):
            return await self._rotate_postgres(token)
        return RotationResult(Rotation.INVALID)

    async def revoke(self, token: str) -> None:
        """Revoke the family of *token* (logout); unknown tokens are ignored."""
        digest = hash_token(token)
        if token.startswith(REDIS_MARK) and self._revoke is not None:
            try:
                async with asyncio.timeout(self.gate.timeout):
                    await self._revoke(keys=[f"{self.prefix}rt:{digest}"], args=[self.prefix])
            except Exception as exc:
                self.gate.failed(exc, "refresh token revoke")
                raise TokenStoreUnavailable from exc
        elif token.startswith(POSTGRES_MARK):
            async with self.sessionmaker() as session, session.begin():
                family = await session.scalar(
                    select(RefreshToken.family_id).where(RefreshToken.token_hash == digest)
                )
                if family is not None:
                    await session.execute(
                        delete(RefreshToken).where(RefreshToken.family_id == family)
                    )

    async def revoke_user(self, user_id: uuid.UUID, keep: uuid.UUID | None = None) -> None:
        """Revoke every refresh token of a user (deactivation, deletion, new password).

        *keep*: a family (session) to spare, the one that changed its own password.
        """
        doomed = delete(RefreshToken).where(RefreshToken.user_id == user_id)
        if keep is not None:
            doomed = doomed.where(RefreshToken.family_id != keep)
        async with self.sessionmaker() as session, session.begin():
            await session.execute(doomed)
        if self._revoke_user is not None:
            try:
                async with asyncio.timeout(self.gate.timeout):
                    await self._revoke_user(
                        keys=[f"{self.prefix}rtu:{user_id}"],
                        args=[self.prefix, str(keep) if keep else ""],
                    )
            except Exception as exc:  # noqa: BLE001
                # Refresh also checks that the user still exists and is active.
                self.gate.failed(exc, "refresh token revoke")

    # ------------------------------------------------------------------ Redis

    def _client(self) -> Redis:
        assert self.gate.client is not None, "only called while Redis is configured"
        return self.gate.client

    async def _redis_store(
        self, token: str, user_id: uuid.UUID, family: uuid.UUID, now: datetime
    ) -> None:
        digest = hash_token(token)
        p = self.prefix
        ttl = min(self.ttl, int(self.session_max.total_seconds()))
        fields = {"u": str(user_id), "f": str(family), "s": "a", "c": int(now.timestamp())}
        async with self._client().pipeline(transaction=True) as pipe:
            pipe.hset(f"{p}rt:{digest}", mapping=fields)
            pipe.expire(f"{p}rt:{digest}", ttl)
            pipe.sadd(f"{p}rtf:{family}", digest)
            pipe.expire(f"{p}rtf:{family}", ttl)
            pipe.sadd(f"{p}rtu:{user_id}", str(family))
            pipe.expire(f"{p}rtu:{user_id}", self.ttl)
            async with asyncio.timeout(self.gate.timeout):
                await pipe.execute()

    async def _rotate_redis(self, token: str) -> RotationResult:
        assert self._rotate is not None
        new = REDIS_MARK + new_refresh_token()
        old_digest, new_digest = hash_token(token), hash_token(new)
        try:
            async with asyncio.timeout(self.gate.timeout):
                result = await self._rotate(
                    keys=[f"{self.prefix}rt:{old_digest}", f"{self.prefix}rt:{new_digest}"],
                    args=[
                        self.ttl,
                        self.prefix,
                        new_digest,
                        int(time.time()),
                        int(self.session_max.total_seconds()),
                    ],
                )
        except Exception as exc:
            self.gate.failed(exc, "refresh token rotation")
            raise TokenStoreUnavailable from exc
        self.gate.succeeded()
        outcome = Rotation(result[0].decode())
        if outcome is Rotation.INVALID:
            return RotationResult(outcome)
        user_id = uuid.UUID(result[1].decode())
        if outcome is Rotation.REUSED:
            log.warning("refresh token reused: family revoked", extra={"user_id": str(user_id)})
            return RotationResult(outcome, user_id)
        return RotationResult(outcome, user_id, new, uuid.UUID(result[2].decode()))

    # ------------------------------------------------------------------ PostgreSQL

    def _row(
        self, token: str, user_id: uuid.UUID, family: uuid.UUID, started: datetime, now: datetime
    ) -> RefreshToken:
        return RefreshToken(
            token_hash=hash_token(token),
            user_id=user_id,
            family_id=family,
            family_started_at=started,
            expires_at=min(now + self.lifetime, started + self.session_max),
        )

    async def _rotate_postgres(self, token: str) -> RotationResult:
        now = datetime.now(UTC)
        async with self.sessionmaker() as session, session.begin():
            row = await session.scalar(
                select(RefreshToken)
                .where(RefreshToken.token_hash == hash_token(token))
                .with_for_update()
            )
            if row is None or row.expires_at <= now:
                return RotationResult(Rotation.INVALID)
            if now >= row.family_started_at + self.session_max:
                await session.execute(
                    delete(RefreshToken).where(RefreshToken.family_id == row.family_id)
                )
                return RotationResult(Rotation.INVALID)  # the session is over: log in again
            if row.used_at is not None:
                await session.execute(
                    delete(RefreshToken).where(RefreshToken.family_id == row.family_id)
                )
                log.warning(
                    "refresh token reused: family revoked", extra={"user_id": str(row.user_id)}
                )
                return RotationResult(Rotation.REUSED, row.user_id)
            await session.execute(
                update(RefreshToken)
                .where(RefreshToken.token_hash == row.token_hash)
                .values(used_at=now)
            )
            new = POSTGRES_MARK + new_refresh_token()
            session.add(self._row(new, row.user_id, row.family_id, row.family_started_at, now))
            return RotationResult(Rotation.OK, row.user_id, new, row.family_id)
