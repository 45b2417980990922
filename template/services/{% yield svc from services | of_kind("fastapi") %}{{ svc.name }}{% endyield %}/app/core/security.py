"""Password hashing (bcrypt, off the event loop, bounded) and JWT access tokens (HS256)."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import bcrypt
import jwt

ALGORITHM = "HS256"
BCRYPT_MAX_BYTES = 72  # bcrypt ignores (bcrypt >= 5: rejects) anything longer
T = TypeVar("T")


class PasswordChecksBusy(Exception):
    """Every bcrypt slot of this process is taken: answer 503 now instead of queueing."""


class InvalidToken(Exception):
    """The access token is missing, malformed, expired or not signed by us."""


@dataclass(frozen=True, slots=True)
class TokenClaims:
    """What an access token (or a stream ticket) says about its bearer (no database lookup).

    ``version`` is the user's ``auth_version`` when the token was issued: the token is
    only honoured while it is still current (app/core/authz.py). ``session_id`` is the
    login (refresh family) it belongs to, None for tokens minted outside a login.
    """

    user_id: uuid.UUID
    role: str
    version: int = 0
    session_id: uuid.UUID | None = None
    expires_at: int = 0

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


class PasswordHasher:
    """bcrypt with a configurable cost, in worker threads, at most *max_concurrent* at once.

    bcrypt releases the GIL, so the event loop keeps serving other requests while a
    check runs. Beyond *max_concurrent* a call raises `PasswordChecksBusy` at once:
    a login flood then costs a bounded amount of CPU instead of a queue that grows
    without end (each check is ~0.3 s of CPU at 12 rounds).
    """

    def __init__(self, rounds: int, max_concurrent: int = 2) -> None:
        self.rounds = rounds
        self.max_concurrent = max_concurrent
        self.running = 0  # threads computing bcrypt right now (event-loop thread only)
        self._dummy: bytes | None = None
        self._tasks: set[asyncio.Task] = set()

    def ensure_free(self) -> None:
        """Raise `PasswordChecksBusy` now if a check would be refused: a cheap early 503."""
        if self.running >= self.max_concurrent:
            raise PasswordChecksBusy

    async def _bounded(self, function: Callable[..., T], *args: object) -> T:
        self.ensure_free()
        self.running += 1
        task = asyncio.create_task(self._in_thread(function, *args))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        # Shielded: a client that hangs up cannot free the slot while its thread still runs.
        return await asyncio.shield(task)

    async def _in_thread(self, function: Callable[..., T], *args: object) -> T:
        try:
            return await asyncio.to_thread(function, *args)
        finally:
            self.running -= 1

    def _hash(self, password: str) -> str:
        salt = bcrypt.gensalt(rounds=self.rounds)
        return bcrypt.hashpw(password.encode()[:BCRYPT_MAX_BYTES], salt).decode()

    async def hash(self, password: str) -> str:
        return await self._bounded(self._hash, password)

    async def verify(self, password: str, hashed: str | None) -> bool:
        """Check *password*; with ``hashed=None`` burn the same time and return False.

        Comparing against a dummy hash for unknown e-mails keeps the timing of a
        failed login the same whether or not the account exists.
        """
        if self._dummy is None:
            self._dummy = (await self.hash(secrets.token_urlsafe(16))).encode()
        target = hashed.encode() if hashed else self._dummy
        data = password.encode()
        too_long = len(data) > BCRYPT_MAX_BYTES
        try:
            ok = await self._bounded(bcrypt.checkpw, data[:BCRYPT_MAX_BYTES], target)
        except ValueError:  # a malformed stored hash
            ok = False
        return ok and hashed is not None and not too_long


def create_access_token(
    secret: str,
    user_id: uuid.UUID,
    role: str,
    minutes: int,
    *,
    version: int = 0,
    session_id: uuid.UUID | None = None,
) -> tuple[str, int]:
    """A signed access token and its lifetime in seconds."""
    now = int(time.time())
    expires_in = minutes * 60
    payload = {"sub": str(user_id), "role": role, "type": "access", "iat": now,
               "exp": now + expires_in, "ver": version}  # fmt: skip
    if session_id is not None:
        payload["sid"] = str(session_id)
    return jwt.encode(payload, secret, algorithm=ALGORITHM), expires_in


@dataclass(frozen=True, slots=True)
class StreamTicket:
    """A verified event-stream ticket: whose it is, and its id (redeemable once)."""

    ticket_id: uuid.UUID
    claims: TokenClaims


def create_stream_ticket(secret: str, claims: TokenClaims, seconds: int) -> str:
    """A signed, short-lived ticket for one event-stream connection.

    It carries the access token's identity and its expiry (``sxp``): the stream it
    opens ends when the access token it was bought with would have expired.
    """
    now = int(time.time())
    payload = {"sub": str(claims.user_id), "role": claims.role, "type": "ticket",
               "jti": str(uuid.uuid4()), "iat": now, "exp": now + seconds,
               "ver": claims.version, "sxp": claims.expires_at}  # fmt: skip
    if claims.session_id is not None:
        payload["sid"] = str(claims.session_id)
    return jwt.encode(payload, secret, algorithm=ALGORITHM)


def decode_stream_ticket(secret: str, ticket: str) -> StreamTicket:
    """Verify a stream ticket (signature, 30-second expiry, type); not yet its single use."""
    payload = _payload(secret, ticket, "ticket")
    try:
        claims = _claims(payload, int(payload["sxp"]))
        return StreamTicket(uuid.UUID(payload["jti"]), claims)
    except (ValueError, TypeError, KeyError) as exc:
        raise InvalidToken(str(exc)) from None


def decode_access_token(secret: str, token: str) -> TokenClaims:
    """Verify signature, expiry and type of an access token (PyJWT, HS256 only)."""
    return _decode(secret, token)[0]


def _payload(secret: str, token: str, kind: str) -> dict:
    try:
        payload = jwt.decode(
            token, secret, algorithms=[ALGORITHM], options={"require": ["exp", "sub"]}
        )
    except jwt.PyJWTError as exc:
        raise InvalidToken(str(exc)) from None
    if payload.get("type") != kind:
        raise InvalidToken(f"wrong token type (expected {kind})")
    return payload


def _claims(payload: dict, expires_at: int) -> TokenClaims:
    sid = payload.get("sid")
    return TokenClaims(
        uuid.UUID(payload["sub"]),
        str(payload.get("role", "user")),
        int(payload.get("ver", 0)),
        uuid.UUID(sid) if sid else None,
        expires_at,
    )


def _decode(secret: str, token: str) -> tuple[TokenClaims, int]:
    payload = _payload(secret, token, "access")
    try:
        expires = int(payload["exp"])
        return _claims(payload, expires), expires
    except (ValueError, TypeError, KeyError) as exc:
        raise InvalidToken(str(exc)) from None


class AccessTokenVerifier:
    """decode_access_token with a small memo of tokens already verified.

    A client sends the same access token with every request for up to
    ACCESS_TOKEN_MINUTES; its signature is checked once, and after that only its
    expiry (the memo is keyed by the exact token string, so nothing unverified
    is ever accepted). Bounded: the oldest half is dropped when it fills up.
    """

    def __init__(self, secret: str, size: int = 4096) -> None:
        self.secret = secret
        self.size = size
        self._verified: dict[str, tuple[TokenClaims, int]] = {}

    def __call__(self, token: str) -> TokenClaims:
        hit = self._verified.get(token)
        if hit is not None:
            if hit[1] > time.time():
                return hit[0]
            del self._verified[token]
        claims, expires = _decode(self.secret, token)
        if len(self._verified) >= self.size:
            for old in list(self._verified)[: self.size // 2]:
                del self._verified[old]
        self._verified[token] = (claims, expires)
        return claims


def new_refresh_token() -> str:
    """A random, opaque refresh token (only its hash is ever stored)."""
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
