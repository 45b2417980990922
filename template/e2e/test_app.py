"""The stack end to end, through the frontend, as its users see it.

One flow in ordered steps sharing a page: the first admin signs in and sees the
users; creates a user; exports CSV and downloads every user's row; that user
cannot see the users page, starts a CSV export, sees it turn done without a
reload and downloads their own data, no one else's; after logging out, a
protected page sends the browser to the login page.
"""

from __future__ import annotations

import csv
import io
import re
import secrets
import uuid
from dataclasses import dataclass, field

import pytest
from playwright.sync_api import Locator, Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from conftest import Settings, Shots

# How long an export may take to turn done (queued -> running -> done).
EXPORT_DONE_TIMEOUT_MS = 30_000


@dataclass
class Flow:
    """What the steps learn and pass on."""

    user_email: str = ""
    user_password: str = ""
    user_full_name: str = ""
    admin_export_job_id: str = ""
    export_job_id: str = ""
    known_emails: set[str] = field(default_factory=set)


@pytest.fixture(scope="module")
def flow(settings: Settings) -> Flow:
    """A new user unique to this run, in the first admin's e-mail domain."""
    run = uuid.uuid4().hex[:12]
    domain = settings.admin_email.rpartition("@")[2] or "example.com"
    return Flow(
        user_email=f"e2e-{run}@{domain}",
        user_password=f"E2e-{secrets.token_urlsafe(18)}",
        user_full_name=f"E2E User {run}",
        known_emails={settings.admin_email.lower()},
    )


# ------------------------------------------------------------------ helpers


def main_nav(page: Page) -> Locator:
    return page.get_by_role("navigation", name="Main")


PAGER = re.compile(r"Page \d+ of \d+")


def settle(page: Page, done: Locator, what: str) -> None:
    """Wait until ``done`` shows, or fail with the text of the alert that showed instead."""
    alert = page.get_by_role("alert")
    expect(done.or_(alert).first).to_be_visible()
    if alert.count() and alert.first.is_visible() and not done.first.is_visible():
        pytest.fail(f"{what} failed: {alert.first.inner_text()!r}")
    expect(done.first).to_be_visible()


def sign_in(page: Page, email: str, password: str) -> None:
    expect(page).to_have_url(re.compile(r"/login(\?|#|$)"))
    expect(page.get_by_role("heading", level=1, name="Sign in")).to_be_visible()
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    settle(page, page.get_by_role("button", name="Log out"), f"signing in as {email}")
    # The signed-in e-mail is shown.
    expect(page.get_by_text(email).first).to_be_visible()


def log_out(page: Page) -> None:
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/login(\?|#|$)"))
    expect(page.get_by_role("heading", level=1, name="Sign in")).to_be_visible()


def user_row(page: Page, email: str) -> Locator:
    """The row of ``email`` on the users page, paging forward until it shows up."""
    pager = page.get_by_text(PAGER).first
    expect(pager).to_be_visible()
    row = page.get_by_role("row").filter(has=page.get_by_text(email, exact=True)).first
    wait_ms = 5_000  # the first page may still be loading or refreshing
    while True:
        try:
            row.wait_for(state="visible", timeout=wait_ms)
            return row
        except PlaywrightTimeoutError:
            pass
        next_page = page.get_by_role("button", name="Next")
        if not next_page.is_visible() or not next_page.is_enabled():
            alerts = page.get_by_role("alert").all_inner_texts()
            pytest.fail(
                f"{email} is on no page of the users table (up to {pager.inner_text()!r})"
                + (f"; alerts: {alerts}" if alerts else "")
            )
        label = pager.inner_text()
        next_page.click()
        expect(pager).not_to_have_text(label)
        wait_ms = 2_000


def csv_emails(text: str) -> list[str]:
    """The non-empty values of the ``email`` column of an export's CSV.

    A plain user's export is one table of their own data, in which only some
    rows (their user record) have an e-mail; the others leave it empty."""
    reader = csv.DictReader(io.StringIO(text))
    columns = {name.strip().lower(): name for name in reader.fieldnames or []}
    assert "email" in columns, f"the CSV has no email column: {reader.fieldnames}"
    values = ((row[columns["email"]] or "").strip().lower() for row in reader)
    return [value for value in values if value]


def go_to_exports(page: Page) -> None:
    main_nav(page).get_by_role("link", name="My exports").click()
    expect(page).to_have_url(re.compile(r"/exports(\?|#|$)"))
    expect(page.get_by_role("heading", level=1, name="My exports")).to_be_visible()


def start_csv_export(page: Page) -> str:
    """Press "Export CSV"; the new job's id, from the API's answer to the press."""
    with page.expect_response(
        lambda response: (
            response.request.method == "POST"
            and response.url.split("?")[0].endswith("/api/v1/exports")
        )
    ) as answer:
        page.get_by_role("button", name="Export CSV").click()
    response = answer.value
    assert response.status == 202, f"Export CSV answered {response.status}: {response.text()}"
    job_id = str(response.json().get("id") or "")
    assert job_id, f"the export's answer has no id: {response.text()}"
    return job_id


def export_row(page: Page, job_id: str) -> Locator:
    return page.locator(f'[data-testid="export-row"][data-job-id="{job_id}"]')


def download_csv_emails(page: Page, job_id: str) -> list[str]:
    """Download the export ``job_id`` from its row; the e-mails in it."""
    row = export_row(page, job_id)
    download_control = row.get_by_role("button", name="Download").or_(
        row.get_by_role("link", name="Download")
    )
    with page.expect_download() as info:
        download_control.first.click()
    download = info.value
    assert download.failure() is None, f"the download failed: {download.failure()}"
    return csv_emails(download.path().read_text(encoding="utf-8-sig"))


# -------------------------------------------------------------------- steps


def test_admin_signs_in(page: Page, settings: Settings, shot: Shots) -> None:
    page.goto("/")
    # Signed out, / (-> /exports) is protected: the browser lands on the login page.
    expect(page).to_have_url(re.compile(r"/login(\?|#|$)"))
    shot(page, "login")
    sign_in(page, settings.admin_email, settings.admin_password)
    expect(page).to_have_url(re.compile(r"/exports(\?|#|$)"))
    expect(main_nav(page).get_by_role("link", name="Users")).to_be_visible()
    shot(page, "admin signed in")


def test_users_page_lists_the_users(page: Page, settings: Settings, shot: Shots) -> None:
    main_nav(page).get_by_role("link", name="Users").click()
    expect(page).to_have_url(re.compile(r"/users(\?|#|$)"))
    expect(page.get_by_role("heading", level=1, name="Users")).to_be_visible()
    expect(page.get_by_role("table")).to_be_visible()
    row = user_row(page, settings.admin_email)
    expect(row.get_by_label(f"Role for {settings.admin_email}")).to_have_value("admin")
    shot(page, "users")


def test_admin_creates_a_user(page: Page, flow: Flow, shot: Shots) -> None:
    page.goto("/users")
    expect(page.get_by_role("heading", level=1, name="Users")).to_be_visible()
    page.get_by_label("New user email").fill(flow.user_email)
    page.get_by_label("New user full name").fill(flow.user_full_name)
    page.get_by_label("New user password").fill(flow.user_password)
    page.get_by_label("New user role").select_option("user")
    shot(page, "create user form")
    page.get_by_role("button", name="Create user").click()
    row = user_row(page, flow.user_email)
    expect(row).to_contain_text(flow.user_full_name)
    expect(row.get_by_label(f"Role for {flow.user_email}")).to_have_value("user")
    flow.known_emails.add(flow.user_email.lower())
    shot(page, "user created")


def test_admin_csv_export_turns_done(page: Page, flow: Flow, shot: Shots) -> None:
    go_to_exports(page)
    flow.admin_export_job_id = start_csv_export(page)
    row = export_row(page, flow.admin_export_job_id)
    expect(row).to_have_attribute("data-status", "done", timeout=EXPORT_DONE_TIMEOUT_MS)
    shot(page, "admin export done")


def test_admin_download_holds_every_user(page: Page, flow: Flow, shot: Shots) -> None:
    emails = download_csv_emails(page, flow.admin_export_job_id)
    assert emails, "the admin's CSV export has no rows"
    assert len(emails) == len(set(emails)), "the admin's CSV export lists an e-mail twice"
    missing = flow.known_emails - set(emails)
    assert not missing, f"the admin's CSV export lacks users that exist: {sorted(missing)}"
    shot(page, "admin export downloaded")


def test_new_user_cannot_see_the_users_page(page: Page, flow: Flow, shot: Shots) -> None:
    log_out(page)
    sign_in(page, flow.user_email, flow.user_password)
    expect(page).to_have_url(re.compile(r"/exports(\?|#|$)"))
    nav = main_nav(page)
    expect(nav.get_by_role("link", name="My exports")).to_be_visible()
    expect(nav.get_by_role("link", name="Users")).to_have_count(0)
    shot(page, "user signed in")
    page.goto("/users")
    expect(page.get_by_role("alert")).to_contain_text("You do not have access to this page")
    expect(page.get_by_role("table")).to_have_count(0)
    shot(page, "users forbidden")


def test_csv_export_turns_done_live(page: Page, flow: Flow, shot: Shots) -> None:
    go_to_exports(page)
    rows = page.get_by_test_id("export-row")
    expect(rows).to_have_count(0)  # a new user has no exports yet
    # A reload or navigation would drop this flag: its survival proves the
    # status was updated live.
    page.evaluate("window.__e2eNoReload = true")
    page.get_by_role("button", name="Export CSV").click()
    expect(rows).to_have_count(1)
    row = rows.first
    flow.export_job_id = row.get_attribute("data-job-id") or ""
    assert flow.export_job_id, "the new export row has no data-job-id"
    expect(row).to_have_attribute(
        "data-status", re.compile(r"^(queued|running|done)$"), timeout=EXPORT_DONE_TIMEOUT_MS
    )
    shot(page, "export started")
    expect(row).to_have_attribute("data-status", "done", timeout=EXPORT_DONE_TIMEOUT_MS)
    expect(row).to_contain_text("done")
    assert page.evaluate("window.__e2eNoReload === true"), "the page reloaded while waiting"
    shot(page, "export done")


def test_download_holds_only_the_users_own_data(page: Page, flow: Flow, shot: Shots) -> None:
    emails = download_csv_emails(page, flow.export_job_id)
    own = flow.user_email.lower()
    assert own in emails, f"the user's CSV export lacks their own e-mail: {sorted(set(emails))}"
    others = set(emails) - {own}
    assert not others, f"the user's CSV export holds other users' e-mails: {sorted(others)}"
    shot(page, "export downloaded")


def test_logged_out_browser_goes_to_login(page: Page, shot: Shots) -> None:
    log_out(page)
    shot(page, "logged out")
    page.goto("/exports")
    expect(page).to_have_url(re.compile(r"/login(\?|#|$)"))
    expect(page.get_by_role("heading", level=1, name="Sign in")).to_be_visible()
    expect(page.get_by_role("navigation", name="Main")).to_have_count(0)
    shot(page, "protected page sends to login")
