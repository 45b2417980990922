"""Which peers may tell us the client's address: TRUSTED_PROXIES and X-Forwarded-For.

Rate limits and logs key on the client's IP. Behind the frontend's nginx the
socket peer is nginx, so nginx passes the real peer in X-Forwarded-For (it
overwrites any header the client sent). That header is believed only from the
peers in TRUSTED_PROXIES: hostnames (the frontend services, which compose
resolves to every replica's address; re-resolved here as replicas come and go),
IP addresses or CIDR networks. From anyone else, the header is ignored: a client
that reaches the API port directly cannot choose its own rate-limit bucket.
Only the last address counts: the one the nearest trusted proxy saw.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket

from starlette.types import ASGIApp, Receive, Scope, Send

log = logging.getLogger("app.proxies")

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
# Re-resolve the hostnames this often, and sooner while one does not resolve yet
# (the frontends start after the API they depend on).
REFRESH_SECONDS = 10.0
RETRY_SECONDS = 1.0


def _network(entry: str) -> IPNetwork | None:
    try:
        return ipaddress.ip_network(entry, strict=False)
    except ValueError:
        return None  # a hostname


class TrustedProxies:
    def __init__(self, entries: list[str]) -> None:
        parsed = [(entry, _network(entry)) for entry in entries]
        self.networks: list[IPNetwork] = [net for _, net in parsed if net is not None]
        self.hosts: list[str] = [entry for entry, net in parsed if net is None]
        self._resolved: frozenset[str] = frozenset()
        self._task: asyncio.Task | None = None

    def trusts(self, peer: str) -> bool:
        if peer in self._resolved:
            return True
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return False
        return any(address in network for network in self.networks)

    def client(self, peer: str, forwarded_for: str) -> str | None:
        """The client address a trusted *peer* forwarded, or None to keep the peer."""
        if not self.trusts(peer):
            return None
        last = forwarded_for.rsplit(",", 1)[-1].strip()
        try:
            return str(ipaddress.ip_address(last))
        except ValueError:
            return None

    async def start(self) -> None:
        if self.hosts:
            complete = await self.resolve()
            self._task = asyncio.create_task(self._keep_resolving(complete))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def resolve(self) -> bool:
        """Look every hostname up again; True when all of them resolved."""
        loop = asyncio.get_running_loop()
        addresses: set[str] = set()
        complete = True
        for host in self.hosts:
            try:
                infos = await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
            except OSError:
                complete = False
                continue
            addresses.update(str(info[4][0]) for info in infos)
        if addresses or complete:
            self._resolved = frozenset(addresses)
        return complete

    async def _keep_resolving(self, complete: bool) -> None:
        while True:
            await asyncio.sleep(REFRESH_SECONDS if complete else RETRY_SECONDS)
            complete = await self.resolve()


class ForwardedForMiddleware:
    """Pure ASGI, outermost: the client address from a trusted proxy's X-Forwarded-For."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and scope.get("client"):
            ctx = getattr(scope["app"].state, "ctx", None)
            if ctx is not None and (ctx.proxies.networks or ctx.proxies.hosts):
                self._rewrite(ctx.proxies, scope)
        await self.app(scope, receive, send)

    @staticmethod
    def _rewrite(proxies: TrustedProxies, scope: Scope) -> None:
        for name, value in scope["headers"]:
            if name == b"x-forwarded-for":
                client = proxies.client(scope["client"][0], value.decode("latin-1"))
                if client is not None:
                    scope["client"] = (client, 0)
                return
