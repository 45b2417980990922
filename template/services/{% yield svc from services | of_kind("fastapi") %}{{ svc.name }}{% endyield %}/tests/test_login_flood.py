"""Password spraying (per-IP login limit) and CPU starvation (bounded bcrypt checks)."""

import asyncio
import threading

import httpx
import pytest
from fastapi import FastAPI

from app.core.security import PasswordChecksBusy
from tests.conftest import REDIS_URL, Account, running

LOGIN = "/api/v1/auth/login"


async def spray(client: httpx.AsyncClient, attempts: int, start: int = 0) -> list[int]:
    """One attempt per new e-mail, like a spraying attacker."""
    codes = []
    for number in range(start, start + attempts):
        body = {"email": f"victim{number}@example.com", "password": "Winter2026!"}
        codes.append((await client.post(LOGIN, json=body)).status_code)
    return codes


def from_ip(app: FastAPI, ip: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(ip, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


def test_the_per_ip_budget_defaults_to_20_a_minute(make_settings) -> None:
    limit = make_settings().login_ip_limit
    assert (limit.hits, limit.seconds) == (20, 60)


async def test_a_new_email_per_attempt_meets_the_per_ip_budget(
    make_settings, user: Account
) -> None:
    async with running(make_settings(login_ip_rate_limit="20/hour")) as (app, _):
        await _spray_from_one_ip(app, user)


async def _spray_from_one_ip(main_app: FastAPI, user: Account) -> None:
    async with from_ip(main_app, "10.20.0.1") as client:
        assert await spray(client, 20) == [401] * 20
        limited = await client.post(LOGIN, json={"email": user.email, "password": user.password})
        assert limited.status_code == 429  # even the right password of another account
        assert limited.headers["retry-after"] == "1770"  # FakeClock: 1830 s into an hour
        assert "Too many login attempts" in limited.json()["detail"]
    async with from_ip(main_app, "10.20.0.2") as other:  # another address has its own budget
        ok = await other.post(LOGIN, json={"email": user.email, "password": user.password})
        assert ok.status_code == 200


@pytest.mark.skipif(not REDIS_URL, reason="Redis is off (the in-memory limit is tested above)")
async def test_the_per_ip_budget_is_shared_through_redis(make_settings) -> None:
    settings = make_settings(login_ip_rate_limit="4/hour")
    async with (
        running(settings, "10.20.0.3") as (_, one),
        running(settings, "10.20.0.3") as (_, two),
    ):
        assert await spray(one, 2) + await spray(two, 2, start=2) == [401] * 4
        assert await spray(one, 1, start=4) == [429]
        assert await spray(two, 1, start=5) == [429]


async def test_login_ip_limit_off(make_settings) -> None:
    settings = make_settings(login_ip_rate_limit="off")
    async with running(settings, "10.20.0.4") as (_, client):
        assert await spray(client, 25) == [401] * 25


class HeldSlots:
    """Fill the bcrypt slots of an app with threads that run until released."""

    def __init__(self, app: FastAPI) -> None:
        self.hasher = app.state.ctx.hasher
        self.release = threading.Event()
        self.tasks: list[asyncio.Task] = []

    async def __aenter__(self) -> "HeldSlots":
        await self.hasher.verify("warm up", None)  # the dummy hash exists before we fill
        for _ in range(self.hasher.max_concurrent):
            self.tasks.append(asyncio.create_task(self.hasher._bounded(self.release.wait, 30)))
        await asyncio.sleep(0)  # let them start
        assert self.hasher.running == self.hasher.max_concurrent
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release.set()
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def test_saturated_password_checks_answer_503_at_once_and_others_are_served(
    make_settings, user: Account, admin: Account
) -> None:
    settings = make_settings(max_concurrent_password_checks=2)
    credentials = {"email": user.email, "password": user.password}
    async with running(settings) as (app, client):
        async with HeldSlots(app):
            async with asyncio.timeout(5):  # answered at once, not queued behind the slots
                busy = await client.post(LOGIN, json=credentials)
            assert busy.status_code == 503
            assert busy.headers["retry-after"] == "1"
            assert "password checks" in busy.json()["detail"]
            async with asyncio.timeout(5):  # the event loop is free while bcrypt threads run
                me = await client.get("/api/v1/users/me", headers=user.headers)
                assert me.status_code == 200
                users = await client.get("/api/v1/users", headers=admin.headers)
                assert users.status_code == 200
                assert (await client.get("/health")).status_code == 200
        assert (await client.post(LOGIN, json=credentials)).status_code == 200  # slots free


async def test_a_slot_stays_taken_until_its_thread_ends(make_settings) -> None:
    async with running(make_settings(max_concurrent_password_checks=1)) as (app, _):
        hasher = app.state.ctx.hasher
        release = threading.Event()
        waiter = asyncio.create_task(hasher._bounded(release.wait, 30))
        await asyncio.sleep(0)
        waiter.cancel()  # the client hung up; its bcrypt thread still runs
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert hasher.running == 1
        with pytest.raises(PasswordChecksBusy):
            await hasher.verify("x", None)
        release.set()
        await asyncio.wait(set(hasher._tasks), timeout=5)  # the thread, not the caller
        assert hasher.running == 0
        assert await hasher.verify("x", None) is False
