"""Whether an access token still speaks for its user: the per-user authorisation version.

An access token is valid for ACCESS_TOKEN_MINUTES and says who its bearer is and
their role, so the hot reads need no database. To make a demotion, deactivation,
deletion or new password take effect at once anyway, every token carries the
user's ``auth_version`` (``ver``) from when it was issued, and each change of the
user's rights raises that version. A token whose version is not the current one
is refused (401); the client refreshes and gets one with the user's new rights.

The current version lives in Redis (``<prefix>authv:<user id>``, "-" for a user
that is gone or inactive) so that the check costs no extra round trip on the
cached fast path, and in PostgreSQL, which is the truth: a missing Redis entry,
or Redis being down, means asking PostgreSQL (and filling Redis with SET NX, so a
slow reader can never overwrite what a writer published after it).
"""

from __future__ import annotations

import asyncio
import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.cache import RedisGate
from app.core.security import TokenClaims
from app.models import User

GONE = "-"
# A published version expires after this long, which also bounds how long a write
# that failed to reach Redis (while it blipped) can leave a stale version behind.
TTL_SECONDS = 300


class AuthVersions:
    def __init__(
        self, gate: RedisGate, sessionmaker: async_sessionmaker[AsyncSession], prefix: str
    ) -> None:
        self.gate = gate
        self.sessionmaker = sessionmaker
        self.prefix = f"{prefix}authv:"

    def key(self, user_id: uuid.UUID | str) -> str:
        return f"{self.prefix}{user_id}"

    @staticmethod
    def matches(claims: TokenClaims, published: bytes | str | None) -> bool:
        """Does a version read from Redis (None = not there) confirm *claims*?"""
        if published is None:
            return False
        text = published.decode() if isinstance(published, bytes) else published
        return text == str(claims.version)

    async def is_current(self, claims: TokenClaims) -> bool:
        """True while *claims* carry the user's current version (the user is active)."""
        published = await self._redis_get(claims.user_id)
        if published is not None:
            return self.matches(claims, published)
        return await self._from_postgres(claims.user_id) == str(claims.version)

    async def publish(self, user_id: uuid.UUID, version: int | None) -> None:
        """After a committed change: the new version (None: the user is gone or inactive)."""
        await self._redis_set(user_id, GONE if version is None else str(version), only_new=False)

    async def _from_postgres(self, user_id: uuid.UUID) -> str:
        async with self.sessionmaker() as session:
            row = (
                await session.execute(
                    select(User.auth_version, User.is_active).where(User.id == user_id)
                )
            ).first()
        value = GONE if row is None or not row.is_active else str(row.auth_version)
        await self._redis_set(user_id, value, only_new=True)
        return value

    async def _redis_get(self, user_id: uuid.UUID) -> bytes | None:
        if not self.gate.available or self.gate.client is None:
            return None
        try:
            async with asyncio.timeout(self.gate.timeout):
                return await self.gate.client.get(self.key(user_id))
        except Exception as exc:  # noqa: BLE001 - PostgreSQL answers instead
            self.gate.failed(exc, "auth version read")
            return None

    async def _redis_set(self, user_id: uuid.UUID, value: str, *, only_new: bool) -> None:
        if not self.gate.available or self.gate.client is None:
            return
        try:
            async with asyncio.timeout(self.gate.timeout):
                await self.gate.client.set(self.key(user_id), value, ex=TTL_SECONDS, nx=only_new)
        except Exception as exc:  # noqa: BLE001
            self.gate.failed(exc, "auth version write")
