"""Cache hits of GET /api/v1/users and GET /api/v1/users/{id}, served in pure ASGI.

The routes in app/api/routes/users.py are the reference: they authenticate,
validate, read through the cache and document the API. This middleware only
short-cuts the one hot case they would answer with cached bytes anyway: a
well-formed request with a valid bearer token that is allowed to read and still
current (its auth version, read in the same round trip: app/core/authz.py), and
an entry in the cache. It then sends the very bytes the route would have sent,
without FastAPI's routing and dependency solving (a large share of such a
request's CPU time). Anything else (no or bad token, not allowed, unusual
query, cache miss, Redis down) falls through to the route unchanged.

It also counts the general rate limit for the requests it looks at, in the
same Redis round trip as the cache read (GeneralRateLimitMiddleware, inside
it, then skips them).
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Receive, Scope, Send

from app.api.routes.users import NAMESPACE, item_key, list_key
from app.core.ratelimit import COUNTED, general_key, send_429
from app.core.security import InvalidToken, TokenClaims
from app.core.state import AppContext

LIST_PATH = "/api/v1/users"
ITEM_PATH = re.compile(
    r"^/api/v1/users/([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$"
)
_SMALL_INT = re.compile(r"^[0-9]{1,9}$")
_JSON = b"application/json"


def _page(query_string: bytes) -> tuple[int, int] | None:
    """(offset, limit) as the route would validate them, or None to let the route decide."""
    offset, limit = 0, 50
    if not query_string:
        return offset, limit
    seen: set[str] = set()
    for name, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
        if name not in ("offset", "limit"):
            continue  # ignored by the route too
        if name in seen or not _SMALL_INT.match(value):
            return None
        seen.add(name)
        if name == "offset":
            offset = int(value)
        else:
            limit = int(value)
    if not 1 <= limit <= 100:
        return None
    return offset, limit


class CachedReadsMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "GET"
            and (scope["path"] == LIST_PATH or ITEM_PATH.match(scope["path"]))
            and await self._answered(scope, scope["path"], send)
        ):
            return
        await self.app(scope, receive, send)

    async def _answered(self, scope: Scope, path: str, send: Send) -> bool:
        """Send the cached answer (or a 429) and return True, else leave it to the route."""
        ctx = getattr(scope["app"].state, "ctx", None)
        if ctx is None or not ctx.cache.active:
            return False
        allowed = self._cache_key(ctx, scope, path)
        if allowed is None:
            return False
        key, claims = allowed
        # The general rate limit is counted, and the token's auth version read, in the same
        # Redis round trip as the entry.
        limit = ctx.settings.general_limit
        window = ctx.limiter.window(general_key(scope), limit) if limit else None
        read = await ctx.cache.count_and_get(
            NAMESPACE,
            key,
            window.key if window else "",
            window.ttl if window else 0,
            ctx.authz.key(claims.user_id),
        )
        hits, cached = read.hits, read.value
        if hits is None:
            return False  # Redis failed: the route answers, the limiter counts in memory
        if window is not None:
            scope[COUNTED] = True
            retry_after = window.retry_after(hits)
            if retry_after is not None:
                await send_429(send, retry_after)
                return True
        if cached is None or not ctx.authz.matches(claims, read.extra):
            return False  # a miss, or a version to confirm: the route decides
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-length", str(len(cached)).encode()),
                    (b"content-type", _JSON),
                ],
            }
        )
        await send({"type": "http.response.body", "body": cached})
        return True

    @staticmethod
    def _cache_key(ctx: AppContext, scope: Scope, path: str) -> tuple[str, TokenClaims] | None:
        """The route's cache key and the bearer's claims if they may read it, else None."""
        token = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, rest = value.decode("latin-1").partition(" ")
                if scheme.lower() == "bearer":
                    token = rest.strip()
                break
        if not token:
            return None
        try:
            claims = ctx.verify_token(token)
        except InvalidToken:
            return None
        if path == LIST_PATH:
            page = _page(scope["query_string"])
            if page is None or not claims.is_admin:
                return None
            return list_key(*page), claims
        user_id = path.rsplit("/", 1)[1].lower()
        if not claims.is_admin and str(claims.user_id) != user_id:
            return None
        return item_key(user_id), claims
