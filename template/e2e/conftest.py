"""Fixtures of the end-to-end suite: where the stack runs, a browser, screenshots.

Configuration comes from the environment (see README.md):

* ``E2E_BASE_URL``: the frontend's URL, e.g. ``http://localhost:3000``; or
  ``E2E_BOOT_FILE``: the ``boot.json`` that ``stackplate boot`` writes, whose
  first ``react-vite`` service is used (``E2E_FRONTEND`` names another one).
* ``E2E_ADMIN_EMAIL`` / ``E2E_ADMIN_PASSWORD``: the first admin (else the boot
  file's ``admin``).
* ``E2E_CHROMIUM``: a Chromium executable to use instead of Playwright's own.
* ``E2E_ARTIFACTS``: where the screenshots go (default ``e2e/artifacts``).

The tests of a module are the steps of one flow and share one page: once a
step fails, the later ones of its module are skipped instead of failing for
the same reason.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, expect, sync_playwright

HERE = Path(__file__).resolve().parent

# Always passed to Chromium: headless, no sandbox (containers, root), and none of
# the background traffic (updates, sync, QUIC) a test run has no use for.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# How long one action or assertion may take; slow CI runners need some room.
DEFAULT_TIMEOUT_MS = 15_000


@dataclass(frozen=True)
class Settings:
    base_url: str
    admin_email: str
    admin_password: str
    chromium: str | None
    artifacts: Path


def _frontend_url(boot: dict[str, Any], boot_file: str) -> str:
    """The URL of the frontend named by ``E2E_FRONTEND``, else of the first one."""
    services: dict[str, dict[str, Any]] = boot.get("services") or {}
    wanted = os.environ.get("E2E_FRONTEND", "").strip()
    if wanted:
        if wanted not in services:
            raise LookupError(
                f"E2E_FRONTEND={wanted!r} is not a service of {boot_file} "
                f"(it has: {', '.join(services) or 'none'})"
            )
        return services[wanted]["url"]
    for service in services.values():
        if service.get("kind") == "react-vite":
            return service["url"]
    raise LookupError(
        f"{boot_file} has no react-vite service: the suite tests the stack through one"
    )


def load_settings() -> Settings:
    """The suite's settings from the environment; raises with what is missing."""
    boot: dict[str, Any] = {}
    boot_file = os.environ.get("E2E_BOOT_FILE", "").strip()
    if boot_file:
        boot = json.loads(Path(boot_file).read_text())
    base_url = os.environ.get("E2E_BASE_URL", "").strip()
    if not base_url:
        if not boot_file:
            raise LookupError(
                "set E2E_BASE_URL (the frontend's URL) or E2E_BOOT_FILE "
                "(the boot.json written by `stackplate boot`)"
            )
        base_url = _frontend_url(boot, boot_file)
    admin = boot.get("admin") or {}
    email = os.environ.get("E2E_ADMIN_EMAIL", "").strip() or admin.get("email", "")
    password = os.environ.get("E2E_ADMIN_PASSWORD", "") or admin.get("password", "")
    if not email or not password:
        raise LookupError(
            "set E2E_ADMIN_EMAIL and E2E_ADMIN_PASSWORD (FIRST_ADMIN_EMAIL and "
            "FIRST_ADMIN_PASSWORD of config/.env), or E2E_BOOT_FILE"
        )
    artifacts = Path(os.environ.get("E2E_ARTIFACTS", "").strip() or HERE / "artifacts")
    return Settings(
        base_url=base_url.rstrip("/"),
        admin_email=email,
        admin_password=password,
        chromium=os.environ.get("E2E_CHROMIUM", "").strip() or None,
        artifacts=artifacts.resolve(),
    )


@pytest.fixture(scope="session")
def settings() -> Settings:
    try:
        return load_settings()
    except (LookupError, OSError, ValueError) as error:
        problem = str(error)
    pytest.fail(f"e2e settings: {problem}", pytrace=False)


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="session")
def browser(playwright: Playwright, settings: Settings) -> Iterator[Browser]:
    # launch() gives every run a fresh, temporary user-data-dir.
    browser = playwright.chromium.launch(
        headless=True,
        executable_path=settings.chromium,
        args=CHROMIUM_ARGS,
    )
    yield browser
    browser.close()


@pytest.fixture(scope="module")
def context(browser: Browser, settings: Settings) -> Iterator[BrowserContext]:
    context = browser.new_context(
        base_url=settings.base_url,
        accept_downloads=True,
        viewport={"width": 1280, "height": 900},
    )
    context.set_default_timeout(DEFAULT_TIMEOUT_MS)
    expect.set_options(timeout=DEFAULT_TIMEOUT_MS)
    yield context
    context.close()


@pytest.fixture(scope="module")
def page(context: BrowserContext) -> Page:
    """The one page every step of a module's flow works in."""
    return context.new_page()


@dataclass
class Shots:
    """Numbered full-page screenshots: ``shot("users")`` -> ``03-users.png``."""

    folder: Path
    taken: list[Path] = field(default_factory=list)

    def __call__(self, page: Page, name: str) -> Path:
        slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
        path = self.folder / f"{len(self.taken) + 1:02d}-{slug}.png"
        page.screenshot(path=str(path), full_page=True)
        self.taken.append(path)
        return path


@pytest.fixture(scope="session")
def shot(settings: Settings) -> Shots:
    """Takes the screenshots into E2E_ARTIFACTS, after removing a previous run's."""
    settings.artifacts.mkdir(parents=True, exist_ok=True)
    for old in settings.artifacts.glob("[0-9][0-9]-*.png"):
        old.unlink()
    return Shots(settings.artifacts)


@pytest.fixture(autouse=True)
def _screenshot_a_failure(request: pytest.FixtureRequest) -> Iterator[None]:
    """After a failed step, a screenshot of the page as it was."""
    yield
    report = getattr(request.node, "rep_call", None)
    if report is None or not report.failed or "page" not in request.fixturenames:
        return
    page: Page = request.getfixturevalue("page")
    shots: Shots = request.getfixturevalue("shot")
    try:
        shots(page, f"FAILED-{request.node.name}")
    except Exception as error:  # a dead page must not hide the real failure
        print(f"could not take the failure screenshot: {error}")


# ------------------------------------------------------------- ordered steps


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.rep_call = report  # type: ignore[attr-defined]
    if report.failed and not hasattr(item.module, "_e2e_failed_step"):
        item.module._e2e_failed_step = item.name  # type: ignore[attr-defined]
    return report


def pytest_runtest_setup(item: pytest.Item) -> None:
    failed = getattr(item.module, "_e2e_failed_step", None)
    if failed:
        pytest.skip(f"an earlier step failed: {failed}")
