"""Refresh tokens: opaque, stored hashed (sha256), rotated, reuse-detecting.

A login starts a *family*. Every refresh marks the presented token used and
issues a new one in the same family. Presenting a used token again means it
was stolen (or replayed): the whole family is revoked and the refresh fails.

Tokens live in Redis (with their TTL) while Redis is on and reachable, else in
the PostgreSQL table ``refresh_tokens``. A token's first two characters say
where it lives ("r." or "p."), and a family stays in the store it started in,
so reuse detection never depends on which store happened to be up.
"""

from __future__ import annotations

import asyncio
import enum
import logging
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

# KEYS[1] old token key, KEYS[2] new token key; ARGV: ttl, key prefix, new token hash.
_ROTATE = """
local d = redis.call('HMGET', KEYS[1], 'u', 'f', 's')
if not d[1] then return {'invalid'} end
local fam = ARGV[2] .. 'rtf:' .. d[2]
if d[3] ~= 'a' then
  for _, h in ipairs(redis.call('SMEMBERS', fam)) do redis.call('DEL', ARGV[2] .. 'rt:' .. h) end
  redis.call('DEL', fam)
  redis.call('SREM', ARGV[2] .. 'rtu:' .. d[1], d[2])
  return {'reused', d[1], d[2]}
end
redis.call('HSET', KEYS[1], 's', 'u')
redis.call('HSET', KEYS[2], 'u', d[1], 'f', d[2], 's', 'a')
redis.call('EXPIRE', KEYS[2], ARGV[1])
redis.call('SADD', fam, ARGV[3])
redis.call('EXPIRE', fam, ARGV[1])
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

# KEYS[1] the user's family set; ARGV[1] key prefix. Revokes every family of a user.
_REVOKE_USER = """
for _, f in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local fam = ARGV[1] .. 'rtf:' .. f
  for _, h in ipairs(redis.call('SMEMBERS', fam)) do redis.call('DEL', ARGV[1] .. 'rt:' .. h) end
  redis.call('DEL', fam)
end
redis.call('DEL', KEYS[1])
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


class TokenStoreUnavailable(Exception):
    """The store holding this token (Redis) is down: retry later (503)."""


class RefreshTokens:
    def __init__(
        self,
        gate: RedisGate,
        sessionmaker: async_sessionmaker[AsyncSession],
        prefix: str,
        days: int,
    ) -> None:
        self.gate = gate
        self.sessionmaker = sessionmaker
        self.prefix = prefix
        self.lifetime = timedelta(days=days)
        self.ttl = int(self.lifetime.total_seconds())
        client = gate.client
        self._rotate = client.register_script(_ROTATE) if client else None
        self._revoke = client.register_script(_REVOKE) if client else None
        self._revoke_user = client.register_script(_REVOKE_USER) if client else None

    # ------------------------------------------------------------------ public

    async def issue(self, user_id: uuid.UUID) -> str:
        """Start a new family for *user_id* and return its first token."""
        family = uuid.uuid4()
        if self.gate.available:
            token = REDIS_MARK + new_refresh_token()
            try:
                await self._redis_store(token, user_id, family)
                self.gate.succeeded()
                return token
            except Exception as exc:  # noqa: BLE001 - fall back to PostgreSQL
                self.gate.failed(exc, "refresh token store")
        token = POSTGRES_MARK + new_refresh_token()
        async with self.sessionmaker() as session, session.begin():
            now = datetime.now(UTC)
            await session.execute(delete(RefreshToken).where(RefreshToken.expires_at < now))
            session.add(self._row(token, user_id, family, now))
        return token

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

    async def revoke_user(self, user_id: uuid.UUID) -> None:
        """Revoke every refresh token of a user (deactivation, deletion, new password)."""
        async with self.sessionmaker() as session, session.begin():
            await session.execute(delete(RefreshToken).where(RefreshToken.user_id == user_id))
        if self._revoke_user is not None:
            try:
                async with asyncio.timeout(self.gate.timeout):
                    await self._revoke_user(
                        keys=[f"{self.prefix}rtu:{user_id}"], args=[self.prefix]
                    )
            except Exception as exc:  # noqa: BLE001
                # Refresh also checks that the user still exists and is active.
                self.gate.failed(exc, "refresh token revoke")

    # ------------------------------------------------------------------ Redis

    def _client(self) -> Redis:
        assert self.gate.client is not None, "only called while Redis is configured"
        return self.gate.client

    async def _redis_store(self, token: str, user_id: uuid.UUID, family: uuid.UUID) -> None:
        digest = hash_token(token)
        p = self.prefix
        async with self._client().pipeline(transaction=True) as pipe:
            pipe.hset(f"{p}rt:{digest}", mapping={"u": str(user_id), "f": str(family), "s": "a"})
            pipe.expire(f"{p}rt:{digest}", self.ttl)
            pipe.sadd(f"{p}rtf:{family}", digest)
            pipe.expire(f"{p}rtf:{family}", self.ttl)
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
                    args=[self.ttl, self.prefix, new_digest],
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
        return RotationResult(outcome, user_id, new)

    # ------------------------------------------------------------------ PostgreSQL

    def _row(
        self, token: str, user_id: uuid.UUID, family: uuid.UUID, now: datetime
    ) -> RefreshToken:
        return RefreshToken(
            token_hash=hash_token(token),
            user_id=user_id,
            family_id=family,
            expires_at=now + self.lifetime,
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
            session.add(self._row(new, row.user_id, row.family_id, now))
            return RotationResult(Rotation.OK, row.user_id, new)
