"""Fixed-window rate limits: shared through Redis, in process memory without it.

A window is ``floor(now / period)``; the counter ``<prefix>rl:<key>:<window>``
is incremented and expires with its window. ``now`` comes from the limiter's
clock, ``time.time`` unless a test gives it another (windows are aligned to the
clock, so a test on the wall clock could straddle two of them). When Redis is off or down the
same counting happens in a dict of this process (so limits are then per
process, not per deployment).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from app.core.cache import RedisGate
from app.core.config import RateLimit

_HIT = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return n
"""

#: Seconds since the epoch, as time.time() gives them.
Clock = Callable[[], float]

#: Set in the ASGI scope by whoever already counted the general limit for a request.
COUNTED = "app.general_limit_counted"


class Window:
    """Where one hit of *key* under *limit* is counted right now."""

    __slots__ = ("key", "limit", "now", "reset_at", "ttl")

    def __init__(self, prefix: str, key: str, limit: RateLimit, now: float) -> None:
        self.now = now
        index = int(self.now // limit.seconds)
        self.key = f"{prefix}{key}:{index}"
        self.limit = limit
        self.reset_at = (index + 1) * limit.seconds
        self.ttl = limit.seconds + 1

    def retry_after(self, count: int) -> int | None:
        """None if *count* hits are within the limit, else seconds until the window resets."""
        if count <= self.limit.hits:
            return None
        return max(1, math.ceil(self.reset_at - self.now))


class RateLimiter:
    def __init__(self, gate: RedisGate, prefix: str, clock: Clock = time.time) -> None:
        self.gate = gate
        self.clock = clock
        self.prefix = f"{prefix}rl:"
        self._script = gate.client.register_script(_HIT) if gate.client else None
        self._memory: dict[str, tuple[int, float]] = {}  # key -> (count, expires at)
        self._next_purge = 0.0

    def window(self, key: str, limit: RateLimit) -> Window:
        return Window(self.prefix, key, limit, self.clock())

    async def hit(self, key: str, limit: RateLimit) -> int | None:
        """Count one hit; return None if allowed, else the seconds until the window resets."""
        window = self.window(key, limit)
        count = None
        if self._script is not None and self.gate.available:
            try:
                async with asyncio.timeout(self.gate.timeout):
                    count = int(await self._script(keys=[window.key], args=[window.ttl]))
                self.gate.succeeded()
            except Exception as exc:  # noqa: BLE001 - degrade to memory, never a 500
                self.gate.failed(exc, "rate limit")
        if count is None:
            count = self.hit_memory(window)
        return window.retry_after(count)

    def hit_memory(self, window: Window) -> int:
        now = window.now
        if now >= self._next_purge:
            self._memory = {k: v for k, v in self._memory.items() if v[1] > now}
            self._next_purge = now + 10
        count = self._memory.get(window.key, (0, window.reset_at))[0] + 1
        self._memory[window.key] = (count, window.reset_at)
        return count


def general_key(scope: Scope) -> str:
    """The general limit is per client IP (the peer, or what TRUSTED_PROXIES forwarded)."""
    client = scope.get("client")
    return f"g:{client[0] if client else '-'}"


async def send_429(send: Send, retry_after: int) -> None:
    body = orjson.dumps({"detail": f"Too many requests; retry in {retry_after} s"})
    await send(
        {
            "type": "http.response.start",
            "status": 429,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", str(retry_after).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class GeneralRateLimitMiddleware:
    """Pure ASGI: GENERAL_RATE_LIMIT per client IP on every request but health probes."""

    EXEMPT = frozenset({"/health", "/ready", "/api/v1/health", "/api/v1/ready"})

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.EXEMPT or COUNTED in scope:
            await self.app(scope, receive, send)
            return
        ctx = getattr(scope["app"].state, "ctx", None)
        limit = ctx.settings.general_limit if ctx is not None else None
        if limit is None or scope["method"] == "OPTIONS":
            await self.app(scope, receive, send)
            return
        retry_after = await ctx.limiter.hit(general_key(scope), limit)
        if retry_after is None:
            await self.app(scope, receive, send)
        else:
            await send_429(send, retry_after)
