"""Redis access with graceful degradation, and the read-through cache.

`RedisGate` wraps the client for everything that uses Redis (cache, rate
limits, refresh tokens). When a command fails, Redis is considered down for a
second (callers then skip it at once instead of each waiting for a timeout),
and a warning is logged at most every 30 seconds, not once per request.

`Cache` keys every entry of a namespace by the namespace's version: a write
bumps the version (INCR), which invalidates every list page and item of the
namespace at once and cannot race with a reader that fetched old rows before
the write (it stores them under the old version, which nobody reads any more).
A bump that fails while Redis is away is owed: the writing process applies it
before its own next read, and retries it every second in the background, so the
other processes (which know nothing of the write) stop serving the outdated
entries within about a second of Redis answering again.
A hit is one round trip: a Lua script reads the version and the entry (and,
for the ASGI fast path, counts the general rate limit in the same trip).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import MaxConnectionsError

log = logging.getLogger("app.redis")

# KEYS[1] rate-limit counter ("" = none), KEYS[2] namespace version, KEYS[3] another
# key to read along ("" = none: the fast path's auth version); ARGV[1] counter ttl,
# ARGV[2] entry prefix, ARGV[3] entry key.
# Returns {hits in the window (0 without counter), version, entry or false, extra or false}.
_READ = """
local n = 0
if KEYS[1] ~= '' then
  n = redis.call('INCR', KEYS[1])
  if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
end
local v = redis.call('GET', KEYS[2]) or '0'
local extra = false
if KEYS[3] ~= '' then extra = redis.call('GET', KEYS[3]) end
return {n, v, redis.call('GET', ARGV[2] .. v .. ':' .. ARGV[3]), extra}
"""


class RedisGate:
    """The Redis client (None when Redis is off) plus up/down bookkeeping."""

    RETRY_SECONDS = 1.0
    WARN_EVERY_SECONDS = 30.0

    def __init__(self, url: str, timeout: float = 2.0, max_connections: int = 1024) -> None:
        self.client: Redis | None = None
        self.timeout = timeout
        if url.strip():
            # No socket_timeout: redis-py would wrap every write in asyncio.wait_for (a
            # task per command, a large share of a cache hit). Callers bound each
            # operation with `asyncio.timeout(gate.timeout)` instead, which is cheap.
            # A plain pool (the blocking one costs far more per command); size it
            # above the number of concurrent requests.
            pool = ConnectionPool.from_url(
                url.strip(),
                max_connections=max_connections,
                socket_timeout=None,  # see above
                socket_connect_timeout=min(timeout, 1.0),
                retry=Retry(NoBackoff(), 1),  # one quick retry: a stale pooled connection
                health_check_interval=0,
            )
            self.client = Redis.from_pool(pool)  # closing the client closes the pool
        self._down_until = 0.0
        self._down = False
        self._last_warning = 0.0
        self._suppressed = 0
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def enabled(self) -> bool:
        return self.client is not None

    @property
    def available(self) -> bool:
        """Configured and not in its back-off after a failure."""
        return self.client is not None and time.monotonic() >= self._down_until

    def failed(self, exc: BaseException, what: str) -> None:
        if isinstance(exc, MaxConnectionsError):
            # Our own pool is saturated, Redis is fine: don't switch everyone over.
            log.warning("Redis connection pool exhausted (%s); raise REDIS_MAX_CONNECTIONS", what)
            return
        now = time.monotonic()
        self._down_until = now + self.RETRY_SECONDS
        self._down = True
        if now - self._last_warning >= self.WARN_EVERY_SECONDS:
            log.warning(
                "Redis unavailable (%s: %s): falling back to PostgreSQL and in-process state",
                what,
                exc.__class__.__name__ + (f": {exc}" if str(exc) else ""),
                extra={"suppressed_since_last": self._suppressed},
            )
            self._last_warning = now
            self._suppressed = 0
        else:
            self._suppressed += 1

    def succeeded(self) -> None:
        if self._down:
            self._down = False
            log.info("Redis is reachable again")

    async def ping(self) -> None:
        """Raise unless Redis answers (used by /ready; ignores the back-off)."""
        if self.client is None:
            raise RuntimeError("redis is off")
        async with asyncio.timeout(self.timeout):
            await self.client.ping()

    def in_background(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run ``work`` until it ends or the gate closes."""
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.client is not None:
            await self.client.aclose()


@dataclass(frozen=True, slots=True)
class CacheRead:
    """One round trip's results; all None when Redis is off, down or failed."""

    hits: int | None = None  # in the rate-limit window
    value: bytes | None = None  # the cached entry
    version: str | None = None  # the namespace version to store a miss under
    extra: bytes | None = None  # the extra key's value


class Cache:
    """Versioned read-through cache of JSON bytes; a no-op while Redis is off or down."""

    def __init__(self, gate: RedisGate, prefix: str, ttl: int) -> None:
        self.gate = gate
        self.prefix = f"{prefix}cache:"
        self.ttl = ttl
        self._pending: set[str] = set()  # namespaces whose bump failed while Redis was down
        self._retrying: asyncio.Task[None] | None = None
        self._script = gate.client.register_script(_READ) if gate.client else None

    @property
    def active(self) -> bool:
        return self.ttl > 0 and self.gate.available

    async def get(self, namespace: str, key: str) -> tuple[bytes | None, str | None]:
        """(cached bytes or None, the namespace version to store a miss under or None)."""
        read = await self.count_and_get(namespace, key, "", 0)
        return read.value, read.version

    async def count_and_get(
        self, namespace: str, key: str, counter: str, counter_ttl: int, extra_key: str = ""
    ) -> CacheRead:
        """Like get(), and first INCR the rate-limit *counter* (unless "") in the same trip,
        and read *extra_key* (unless "") along."""
        if not self.active or self._script is None:
            return CacheRead()
        try:
            async with asyncio.timeout(self.gate.timeout):
                if self._pending:
                    await self._flush_pending()
                hits, version, value, extra = await self._script(
                    keys=[counter, f"{self.prefix}{namespace}:v", extra_key],
                    args=[counter_ttl, f"{self.prefix}{namespace}:", key],
                )
        except Exception as exc:  # noqa: BLE001 - any Redis failure degrades, never a 500
            self.gate.failed(exc, "cache read")
            return CacheRead()
        self.gate.succeeded()
        return CacheRead(int(hits), value or None, version.decode(), extra or None)

    async def set(self, namespace: str, version: str | None, key: str, value: bytes) -> None:
        if version is None or not self.active or self.gate.client is None:
            return
        try:
            async with asyncio.timeout(self.gate.timeout):
                await self.gate.client.set(
                    f"{self.prefix}{namespace}:{version}:{key}", value, ex=self.ttl
                )
        except Exception as exc:  # noqa: BLE001
            self.gate.failed(exc, "cache write")

    async def invalidate(self, namespace: str) -> None:
        """Bump the namespace version after a write; retried later if Redis is down."""
        if self.gate.client is None:
            return
        self._pending.add(namespace)
        if self.gate.available:
            try:
                async with asyncio.timeout(self.gate.timeout):
                    await self._flush_pending()
            except Exception as exc:  # noqa: BLE001
                self.gate.failed(exc, "cache invalidation")
        if self._pending and self._retrying is None:
            self._retrying = self.gate.in_background(self._retry_pending())

    async def _retry_pending(self) -> None:
        """Apply the owed bumps as soon as Redis answers, whether or not requests come.

        Other processes read the entries these writes outdated: only we can bump them.
        """
        try:
            while self._pending:
                await asyncio.sleep(self.gate.RETRY_SECONDS)
                if not self.gate.available:
                    continue
                try:
                    async with asyncio.timeout(self.gate.timeout):
                        await self._flush_pending()
                except Exception as exc:  # noqa: BLE001
                    self.gate.failed(exc, "cache invalidation")
                else:
                    self.gate.succeeded()
        finally:
            self._retrying = None

    async def _flush_pending(self) -> None:
        assert self.gate.client is not None
        for namespace in list(self._pending):
            await self.gate.client.incr(f"{self.prefix}{namespace}:v")
            self._pending.discard(namespace)
