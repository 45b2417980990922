"""Everything the service connects to, created by the lifespan and kept on app.state.ctx."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.core.authz import AuthVersions
from app.core.broker import Broker, EventHub
from app.core.cache import Cache, RedisGate
from app.core.config import Settings
from app.core.db import create_engine, create_sessionmaker
from app.core.proxies import TrustedProxies
from app.core.ratelimit import RateLimiter
from app.core.security import AccessTokenVerifier, PasswordHasher
from app.core.tokens import RefreshTokens
from app.models import User

log = logging.getLogger("app")

# Advisory locks are per database, like the users table they guard.
FIRST_ADMIN_LOCK = text("SELECT pg_advisory_xact_lock(hashtext('first-admin'))")


@dataclass
class AppContext:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    hasher: PasswordHasher
    verify_token: AccessTokenVerifier
    redis: RedisGate
    cache: Cache
    limiter: RateLimiter
    tokens: RefreshTokens
    authz: AuthVersions
    proxies: TrustedProxies
    hub: EventHub
    broker: Broker

    @classmethod
    async def start(cls, settings: Settings) -> AppContext:
        prepare_exports_dir(settings)
        engine = create_engine(settings)
        sessionmaker = create_sessionmaker(engine)
        redis = RedisGate(
            settings.redis_url, settings.redis_timeout_seconds, settings.redis_max_connections
        )
        hub = EventHub()
        ctx = cls(
            settings=settings,
            engine=engine,
            sessionmaker=sessionmaker,
            hasher=PasswordHasher(settings.bcrypt_rounds, settings.max_concurrent_password_checks),
            verify_token=AccessTokenVerifier(settings.jwt_secret_key),
            redis=redis,
            cache=Cache(redis, settings.key_prefix, settings.cache_ttl_seconds),
            limiter=RateLimiter(redis, settings.key_prefix),
            tokens=RefreshTokens(
                redis,
                sessionmaker,
                settings.key_prefix,
                settings.refresh_token_days,
                settings.session_max_days,
            ),
            authz=AuthVersions(redis, sessionmaker, settings.key_prefix),
            proxies=TrustedProxies(settings.trusted_proxy_list),
            hub=hub,
            broker=Broker(
                settings.rabbitmq_url,
                settings.export_queue,
                settings.events_exchange,
                hub,
                settings.publish_timeout_seconds,
            ),
        )
        try:
            await ctx.create_first_admin()
            await ctx.proxies.start()
            await ctx.broker.start()
        except BaseException:
            await ctx.stop()
            raise
        if not redis.enabled:
            log.info("Redis is off: no cache; refresh tokens in PostgreSQL; limits per process")
        return ctx

    async def create_first_admin(self) -> None:
        """Create FIRST_ADMIN_EMAIL as an admin, but only while no active admin exists.

        Not "unless that e-mail exists": renaming, demoting or deleting the bootstrap
        account must not bring it back with its original password. With no active
        admin at all (only reachable by editing the database, since nobody can demote,
        deactivate or delete themselves) it is created again: the recovery path.
        A transaction-level advisory lock serialises processes starting together.
        """
        email, password = self.settings.first_admin_email, self.settings.first_admin_password
        if not (email and password):
            return
        async with self.sessionmaker() as session:
            if await _has_admin(session):
                return  # the usual restart: no bcrypt, no lock
        hashed = await self.hasher.hash(password)
        async with self.sessionmaker() as session, session.begin():
            await session.execute(FIRST_ADMIN_LOCK)
            if await _has_admin(session):
                return
            created = await session.scalar(
                insert(User)
                .values(email=email, hashed_password=hashed, role="admin", is_active=True)
                .on_conflict_do_nothing(index_elements=[User.email])
                .returning(User.id)
            )
        if created is None:
            log.warning(
                "no active admin, and FIRST_ADMIN_EMAIL belongs to an existing non-admin or "
                "inactive account: left unchanged; promote a user or set another FIRST_ADMIN_EMAIL",
                extra={"email": email},
            )
            return
        log.info("first admin created", extra={"email": email})
        await self.cache.invalidate("users")

    async def stop(self) -> None:
        await self.proxies.stop()
        self.hub.close()
        await self.broker.close()
        await self.redis.close()
        await self.engine.dispose()


async def _has_admin(session: AsyncSession) -> bool:
    query = select(User.id).where(User.role == "admin", User.is_active.is_(True)).limit(1)
    return await session.scalar(query) is not None


def prepare_exports_dir(settings: Settings) -> None:
    """Create EXPORTS_DIR if this process may; the API only reads it, the worker writes it.

    Not fatal: in a devcontainer the app user takes the developer's uid and may not
    write a volume that another uid created; downloads work once the worker made it.
    """
    try:
        settings.exports_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        log.warning("cannot create the exports folder %s: %s", settings.exports_dir, error)
