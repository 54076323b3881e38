"""The ops console in Debian's chromium, on `seed_demo` data, with every host but the server cut off.

The dashboard renders without console errors, its figures equal what the API and ``reconcile``
report for the same database, a chart is drawn, and a withdrawal is approved from the queue end to
end. Screenshots go to ``screenshots/`` (git-ignored); ``docs/img/dashboard.png`` is refreshed from
the dashboard's with ``CONSOLE_SCREENSHOT_DOCS=1``.
"""

import json
import os
import shutil
import urllib.request
from decimal import Decimal
from io import StringIO
from pathlib import Path
from urllib.parse import urlparse

import pytest
from django.core.management import call_command

from accounts.management.commands.seed_demo import DEMO_PASSWORD, DEMO_USERS, STAFF_USERNAME
from audit.models import ReconcileRun
from audit.reconcile import reconcile
from holds.models import WithdrawalRequest
from tests.ops.test_browser import chromium_page
from transactions.models import Transaction

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "screenshots"


def api(base: str, method: str, path: str, body: dict | None = None, token: str | None = None) -> dict | list:
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"{base}{path}", data=data, headers=headers, method=method)  # noqa: S310
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - the live server on loopback
        return json.loads(response.read())


def api_supply(base: str) -> dict[str, dict[str, Decimal]]:
    """Per currency, the sum of every demo user's balance and held as GET /wallets shows them."""
    totals: dict[str, dict[str, Decimal]] = {}
    for username in DEMO_USERS:
        token = api(base, "POST", "/auth/login", {"username": username, "password": DEMO_PASSWORD})["token"]
        for wallet in api(base, "GET", "/wallets", token=token):
            row = totals.setdefault(wallet["currency"], {"balance": Decimal(0), "held": Decimal(0)})
            row["balance"] += Decimal(wallet["balance"])
            row["held"] += Decimal(wallet["held"])
    return totals


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_dashboard_agrees_with_the_api_and_reconcile_and_a_withdrawal_is_approved(live_server, settings):
    settings.LOCAL = True  # seed_demo is for local development
    call_command("seed_demo", stdout=StringIO())
    call_command("reconcile", stdout=StringIO())
    call_command("checkpoint", stdout=StringIO())
    # Data and the reference figures first: no ORM call runs while Playwright's event loop is up.
    report = reconcile()
    from_api = api_supply(live_server.url)
    pending = WithdrawalRequest.objects.get(status="pending")
    SHOTS.mkdir(exist_ok=True)
    server = urlparse(live_server.url).netloc
    left_the_server: list[str] = []

    with chromium_page() as (page, problems):

        def only_the_server(route) -> None:
            if urlparse(route.request.url).netloc != server:
                left_the_server.append(route.request.url)
                route.abort()
            else:
                route.continue_()

        page.context.route("**/*", only_the_server)
        page.goto(f"{live_server.url}/admin/")
        page.fill("#id_username", STAFF_USERNAME)
        page.fill("#id_password", DEMO_PASSWORD)
        page.click("input[type=submit]")
        page.wait_for_selector("#dashboard")
        assert "Wallet ops console" in page.locator("#site-name").inner_text()

        shown = {}
        for row in page.locator("#supply tbody tr").all():
            code = row.get_attribute("data-currency")
            shown[code] = {name: row.locator(f'[data-figure="{name}"]').inner_text() for name in ("supply", "held")}
        for code, totals in report.supply.items():
            assert shown[code] == {"supply": totals["balances"], "held": totals["held"]}, code
            if code in from_api:
                assert Decimal(shown[code]["supply"]) == from_api[code]["balance"]
                assert Decimal(shown[code]["held"]) == from_api[code]["held"]
        assert page.locator('[data-figure="withdrawals-pending"]').inner_text() == "1"
        assert page.locator('[data-figure="reconcile-outcome"]').inner_text() == "pass"

        # A chart is drawn: an SVG with bars of real size.
        bars = page.locator('.chart[data-currency="USDT"] svg rect')
        assert bars.count() >= 1
        box = bars.first.bounding_box()
        assert box is not None and box["width"] > 0 and box["height"] > 0
        page.screenshot(path=str(SHOTS / "dashboard.png"), full_page=True)

        # The queue: from the dashboard's figure, approve carol's request with the confirmation page.
        page.click('[data-figure="withdrawals-pending"]')
        page.wait_for_selector("#result_list")
        page.screenshot(path=str(SHOTS / "queue.png"), full_page=True)
        page.locator(f'#result_list input[name=_selected_action][value="{pending.pk}"]').check()
        page.select_option("select[name=action]", "approve_selected")
        page.click("button[name=index]")
        page.wait_for_selector(".decision-confirmation")
        assert "TDemoWithdrawalAddressForCarol0001" in page.content()
        page.screenshot(path=str(SHOTS / "approve-confirmation.png"), full_page=True)
        page.fill("#id_network_tx_id", "demo-network-tx-1")
        page.click("input[name=confirm]")
        page.wait_for_selector(".messagelist .success")
        assert "approved; withdrawal transaction" in page.locator(".messagelist").inner_text()

        # Queue a reconcile run from the dashboard.
        page.goto(f"{live_server.url}/admin/")
        page.wait_for_selector("#dashboard")
        assert page.locator('[data-figure="withdrawals-pending"]').inner_text() == "0"
        page.click("#queue-reconcile")
        page.wait_for_selector(".messagelist .success")
        assert problems == []

    assert left_the_server == []
    approved = WithdrawalRequest.objects.get(pk=pending.pk)
    assert approved.status == "completed" and approved.network_tx_id == "demo-network-tx-1"
    assert Transaction.objects.filter(type="withdrawal", pk=approved.transaction_id).exists()
    assert ReconcileRun.objects.filter(state="queued", trigger="console").count() == 1
    assert reconcile().ok
    if os.environ.get("CONSOLE_SCREENSHOT_DOCS"):
        shutil.copy(SHOTS / "dashboard.png", ROOT / "docs" / "img" / "dashboard.png")
