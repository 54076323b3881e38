"""End to end in a real headless browser: Debian's chromium driven by Playwright against a live server.

The browser is the system's /usr/bin/chromium (``make test`` installs it; ``CHROMIUM`` names another);
Playwright never downloads one. A missing browser fails this test: it does not skip.
"""

import contextlib
import csv
import io
import os
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from playwright.sync_api import Page, sync_playwright

from tests.accounts.factories import PASSWORD, UserFactory
from transactions.services import transfer_create

# scripts/test-setup.sh reads the same variable, so set-up and test agree on the browser.
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
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
TIMEOUT_MS = 20_000


@contextlib.contextmanager
def chromium_page() -> Iterator[tuple[Page, list[str]]]:
    """A page in Debian's chromium, and the console errors and uncaught exceptions seen on it."""
    assert os.path.exists(CHROMIUM), f"{CHROMIUM} is missing: apt-get install -y chromium (make test does)"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(accept_downloads=True)
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        problems: list[str] = []

        def on_console(message) -> None:
            if message.type == "error":
                problems.append(f"console error at {message.location.get('url')}: {message.text}")

        page.on("console", on_console)
        page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
        try:
            yield page, problems
        finally:
            context.close()
            browser.close()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_ops_console_docs_and_browsable_api_work_in_a_real_browser(live_server, user_factory, usdt):
    # Data first: no ORM call runs while Playwright's event loop is up in this thread.
    UserFactory(username="ops", is_staff=True, is_superuser=True)
    alice, bob = user_factory(balance=100, username="alice"), user_factory(username="bob")
    tx = transfer_create(sender_id=alice.pk, recipient_id=bob.pk, currency=usdt, amount=Decimal("12.5"), memo="rent")
    with chromium_page() as (page, problems):
        browse(live_server.url, page, tx)
        assert problems == []


def browse(base: str, page: Page, tx) -> None:
    # Log into the admin as staff.
    page.goto(f"{base}/admin/")
    page.fill("#id_username", "ops")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#logout-form")

    # Find the transfer by its hash with the search box.
    page.goto(f"{base}/admin/transactions/transaction/")
    page.fill("#searchbar", tx.hash)
    page.press("#searchbar", "Enter")
    page.wait_for_url("**/admin/transactions/transaction/?q=*")
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 1
    assert tx.hash[:16] in rows.first.inner_text() and "Transfer" in rows.first.inner_text()

    # Export it as CSV through the admin action.
    rows.first.locator("input[name=_selected_action]").check()
    page.select_option("select[name=action]", "export_csv")
    with page.expect_download() as download_info:
        page.click("button[name=index]")
    exported = Path(download_info.value.path()).read_text()
    (row,) = csv.DictReader(io.StringIO(exported))
    assert row["hash"] == tx.hash and row["amount"] == "12.50000000" and row["memo"] == "rent"

    # Swagger UI renders the schema from local assets (no CDN is reachable here).
    page.goto(f"{base}/swagger/")
    page.wait_for_selector(".swagger-ui .opblock")
    assert page.locator(".swagger-ui .opblock").count() >= 15
    assert "Wallet API" in page.locator(".swagger-ui .info .title").inner_text()

    # The browsable API answers a browser with HTML...
    page.goto(f"{base}/currencies")
    page.wait_for_selector(".response-info")
    assert '"code": "USDT"' in page.locator(".response-info").inner_text()
    # ...and the admin's session signs the staff member in there too.
    page.goto(f"{base}/users/me")
    page.wait_for_selector(".response-info")
    assert '"username": "ops"' in page.locator(".response-info").inner_text()
    assert "ops" in page.locator(".navbar").inner_text()
