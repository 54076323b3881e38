"""The wallet admin page's "Statement (CSV)": the API's statement, from the same selectors."""

import csv
import io
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from tests.accounts.factories import UserFactory
from tests.wallets.statements import MICROSECOND, iso
from transactions.services import transfer_create
from wallets.models import Wallet

pytestmark = pytest.mark.django_db


def console(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def wallet(user_factory, usdt):
    alice, bob = user_factory(balance=100), user_factory()
    transfer_create(sender_id=alice.pk, recipient_id=bob.pk, currency=usdt, amount=Decimal("40"), memo="@SUM(A1)")
    return Wallet.objects.get(user=alice, currency=usdt)


def rows(response) -> list[dict]:
    return list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_the_change_page_links_the_statement_and_the_link_serves_it(wallet, client_for):
    ops = console(UserFactory(is_staff=True, is_superuser=True))
    page = ops.get(f"/admin/wallets/wallet/{wallet.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "Statement (CSV), this month" in html and "Statement (CSV), last month" in html
    link = html.split('class="statementlink"')[0].rsplit('href="', 1)[1].split('"')[0].replace("&amp;", "&")
    assert link.startswith(f"/admin/wallets/wallet/{wallet.pk}/statement.csv?from=")

    response = ops.get(link)

    assert response.status_code == 200 and response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith(f'attachment; filename="statement-{wallet.user_id}-USDT-')
    table = rows(response)
    assert [(r["type"], r["delta"], r["balance_after"]) for r in table] == [
        ("opening_balance", "", "0.00000000"),
        ("deposit", "100.00000000", "100.00000000"),
        ("transfer", "-40.00000000", "60.00000000"),
        ("closing_balance", "", "60.00000000"),
    ]
    assert table[2]["memo"] == "'@SUM(A1)"


def test_the_admin_statement_is_the_apis(wallet, client_for):
    window = {"from": iso(wallet.created_at), "to": iso(wallet.updated_at + MICROSECOND)}
    ops = console(UserFactory(is_staff=True, is_superuser=True))
    from_admin = b"".join(ops.get(f"/admin/wallets/wallet/{wallet.pk}/statement.csv", window).streaming_content)
    from_api = client_for(wallet.user).get(f"/wallet/{wallet.user_id}/statement", {**window, "format": "csv"})
    assert from_admin == b"".join(from_api.streaming_content)


def test_a_bad_window_is_a_message_on_the_wallet_page(wallet):
    ops = console(UserFactory(is_staff=True, is_superuser=True))
    response = ops.get(
        f"/admin/wallets/wallet/{wallet.pk}/statement.csv", {"from": "2026-02-01T00:00:00Z", "to": "2026-01-01"}
    )
    assert response.status_code == 302 and response["Location"] == f"/admin/wallets/wallet/{wallet.pk}/change/"
    page = ops.get(response["Location"])
    assert "Statement: from must be earlier than to" in page.content.decode()


def test_staff_without_the_view_permission_get_no_statement(wallet):
    clerk = UserFactory(is_staff=True)
    assert console(clerk).get(f"/admin/wallets/wallet/{wallet.pk}/statement.csv").status_code == 403
    clerk.user_permissions.add(Permission.objects.get(content_type__app_label="wallets", codename="view_wallet"))
    assert console(clerk).get(f"/admin/wallets/wallet/{wallet.pk}/statement.csv").status_code == 200


def test_non_staff_are_sent_to_the_login(wallet):
    response = console(wallet.user).get(f"/admin/wallets/wallet/{wallet.pk}/statement.csv")
    assert response.status_code == 302 and "/login/" in response["Location"]
