"""The approval queue in a real headless browser: Debian's chromium driven by Playwright against a live server.

Same browser and set-up as tests/ops/test_browser.py (a missing browser fails: it does not skip).
"""

from decimal import Decimal

import pytest
from playwright.sync_api import Page

from audit.reconcile import reconcile
from holds.models import WithdrawalRequest
from holds.services import withdrawal_request_create
from tests.accounts.factories import PASSWORD, UserFactory
from tests.ops.test_browser import chromium_page
from wallets.models import Wallet


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_staff_approve_a_pending_withdrawal_request_in_a_real_browser(live_server, user_factory, usdt):
    # Data first: no ORM call runs while Playwright's event loop is up in this thread.
    UserFactory(username="ops", is_staff=True, is_superuser=True)
    alice = user_factory(balance=100, username="alice")
    pending = withdrawal_request_create(
        user_id=alice.pk, currency=usdt, amount=Decimal("40"), address="bc1-browser-address"
    )
    with chromium_page() as (page, problems):
        message = approve(live_server.url, page, pending.pk)
        assert problems == []

    done = WithdrawalRequest.objects.select_related("transaction").get(pk=pending.pk)
    assert (done.status, done.network_tx_id) == ("completed", "0xbrowser")
    assert done.transaction is not None and done.transaction.type == "withdrawal"
    assert done.transaction.hash in message and "approved" in message
    wallet = Wallet.objects.get(user=alice, currency=usdt)
    assert (wallet.balance, wallet.held) == (Decimal(60), Decimal(0))
    assert reconcile().ok


def approve(base: str, page: Page, request_id: int) -> str:
    # Log into the admin as staff.
    page.goto(f"{base}/admin/")
    page.fill("#id_username", "ops")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#logout-form")

    # The queue: the pending request, selected, and the approve action.
    page.goto(f"{base}/admin/holds/withdrawalrequest/")
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 1 and "bc1-browser-address" in rows.first.inner_text()
    rows.first.locator("input[name=_selected_action]").check()
    page.select_option("select[name=action]", "approve_selected")
    page.click("button[name=index]")

    # The confirmation page asks for the network transaction id of this one request.
    page.wait_for_selector("body.decision-confirmation")
    assert "bc1-browser-address" in page.locator("#content").inner_text()
    page.fill("#id_network_tx_id", "0xbrowser")
    page.click("input[name=confirm]")

    # Back on the queue, with the outcome.
    page.wait_for_selector("ul.messagelist li.success")
    message = page.locator("ul.messagelist li.success").inner_text()
    assert f"Withdrawal request {request_id}" in message
    row = page.locator("#result_list tbody tr").first.inner_text()
    assert "Completed" in row or "completed" in row
    return message
