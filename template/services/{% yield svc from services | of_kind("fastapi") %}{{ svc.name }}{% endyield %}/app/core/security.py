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
    """What an access token says about its bearer (no database lookup)."""

    user_id: uuid.UUID
    role: str

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
    secret: str, user_id: uuid.UUID, role: str, minutes: int
) -> tuple[str, int]:
    """A signed access token and its lifetime in seconds."""
    now = int(time.time())
    expires_in = minutes * 60
    payload = {"sub": str(user_id), "role": role, "type": "access", "iat": now,
               "exp": now + expires_in}  # fmt: skip
    return jwt.encode(payload, secret, algorithm=ALGORITHM), expires_in


def decode_access_token(secret: str, token: str) -> TokenClaims:
    """Verify signature, expiry and type of an access token (PyJWT, HS256 only)."""
    return _decode(secret, token)[0]


def _decode(secret: str, token: str) -> tuple[TokenClaims, int]:
    try:
        payload = jwt.decode(
            token, secret, algorithms=[ALGORITHM], options={"require": ["exp", "sub"]}
        )
        if payload.get("type") != "access":
            raise InvalidToken("not an access token")
        claims = TokenClaims(uuid.UUID(payload["sub"]), str(payload.get("role", "user")))
        return claims, int(payload["exp"])
    except (jwt.PyJWTError, ValueError, TypeError, KeyError) as exc:
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
