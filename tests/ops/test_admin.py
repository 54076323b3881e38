import csv
import io
import re
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from audit.models import BalanceHistory
from currencies.models import Currency
from tests.accounts.factories import UserFactory
from tests.ledger import balance, chain_problems
from transactions.models import Transaction
from transactions.services import transfer_create
from wallets.models import Wallet

pytestmark = pytest.mark.django_db

CHANGELISTS = [
    "/admin/accounts/user/",
    "/admin/currencies/currency/",
    "/admin/wallets/wallet/",
    "/admin/transactions/transaction/",
    "/admin/audit/balancehistory/",
]


@pytest.fixture
def staff(db):
    return UserFactory(username="ops", is_staff=True, is_superuser=True)


@pytest.fixture
def console(staff) -> Client:
    client = Client()
    client.force_login(staff)
    return client


@pytest.fixture
def transfer(user_factory, usdt):
    alice, bob = user_factory(balance=100, username="alice"), user_factory(username="bob")
    return transfer_create(sender_id=alice.pk, recipient_id=bob.pk, currency=usdt, amount=Decimal("12.5"), memo="rent")


def export(console: Client, changelist: str, pks: list[int]) -> list[dict]:
    response = console.post(changelist, {"action": "export_csv", "_selected_action": pks})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"].startswith("attachment;")
    return list(csv.DictReader(io.StringIO(response.content.decode())))


def movement(console: Client, wallet: Wallet, action: str, amount: str, token: str = "token-1", memo: str = ""):
    return console.post(
        "/admin/wallets/wallet/",
        {
            "action": action,
            "_selected_action": [wallet.pk],
            "apply": "yes",
            "amount": amount,
            "memo": memo,
            "token": token,
        },
        follow=True,
    )


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


@pytest.mark.parametrize("path", CHANGELISTS)
def test_staff_see_every_changelist(console, transfer, path):
    response = console.get(path)
    assert response.status_code == 200


@pytest.mark.parametrize("path", CHANGELISTS)
def test_a_normal_user_is_sent_to_the_login_page(user_factory, path):
    client = Client()
    client.force_login(user_factory())
    response = client.get(path)
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")


def test_the_user_page_shows_wallets_with_read_only_balances(console, transfer):
    alice = transfer.from_user
    response = console.get(f"/admin/accounts/user/{alice.pk}/change/")
    page = response.content.decode()
    assert response.status_code == 200
    assert "87.50000000" in page  # alice's USDT balance after paying 12.5
    assert not re.search(r'name="wallets-\d+-balance"', page)  # shown, never an input


@pytest.mark.parametrize("model", ["transactions/transaction", "audit/balancehistory"])
def test_the_ledger_cannot_be_added_to_changed_or_deleted_here(console, transfer, model):
    pk = transfer.pk if model.startswith("transactions") else BalanceHistory.objects.filter(transaction=transfer)[0].pk
    assert console.get(f"/admin/{model}/add/").status_code == 403
    assert console.post(f"/admin/{model}/{pk}/delete/", {"post": "yes"}).status_code == 403
    detail = console.get(f"/admin/{model}/{pk}/change/")
    assert detail.status_code == 200 and 'name="_save"' not in detail.content.decode()
    assert console.post(f"/admin/{model}/{pk}/change/", {"amount": "1", "delta": "1"}).status_code == 403
    changelist = console.get(f"/admin/{model}/").content.decode()
    assert "delete_selected" not in changelist
    assert Transaction.objects.get(pk=transfer.pk).amount == Decimal("12.5")


def test_a_wallet_balance_cannot_be_edited(console, transfer):
    wallet = transfer.from_wallet
    assert console.post(f"/admin/wallets/wallet/{wallet.pk}/change/", {"balance": "1000000"}).status_code == 403
    assert console.get("/admin/wallets/wallet/add/").status_code == 403
    assert console.post(f"/admin/wallets/wallet/{wallet.pk}/delete/", {"post": "yes"}).status_code == 403
    assert balance(transfer.from_user) == Decimal("87.5")


def test_transactions_are_found_by_hash_and_by_username(console, transfer, user_factory, usdt):
    other = user_factory(balance=5)
    page = console.get("/admin/transactions/transaction/", {"q": transfer.hash}).content.decode()
    assert transfer.hash[:16] in page and "1 result" in page
    by_name = console.get("/admin/transactions/transaction/", {"q": "bob"}).content.decode()
    assert transfer.hash[:16] in by_name and "1 result" in by_name
    deposit = Transaction.objects.get(to_user=other)
    assert deposit.hash[:16] not in by_name


def test_transactions_filter_by_type_currency_and_date(console, transfer, btc):
    page = console.get("/admin/transactions/transaction/", {"type__exact": "deposit"}).content.decode()
    assert transfer.hash[:16] not in page
    page = console.get("/admin/transactions/transaction/", {"currency__id__exact": btc.pk}).content.decode()
    assert transfer.hash[:16] not in page
    midnight = transfer.created_at.replace(hour=0, minute=0, second=0, microsecond=0).isoformat()
    page = console.get("/admin/transactions/transaction/", {"created_at__gte": midnight}).content.decode()
    assert transfer.hash[:16] in page
    page = console.get("/admin/transactions/transaction/", {"created_at__lt": midnight}).content.decode()
    assert transfer.hash[:16] not in page


def test_the_csv_export_contains_the_transfer(console, transfer):
    (row,) = export(console, "/admin/transactions/transaction/", [transfer.pk])
    assert row["hash"] == transfer.hash and row["signature"] == transfer.signature
    assert (row["type"], row["currency"], row["amount"]) == ("transfer", "USDT", "12.50000000")
    assert (row["from_username"], row["to_username"], row["memo"]) == ("alice", "bob", "rent")


def test_the_csv_export_defuses_spreadsheet_formulas(console, user_factory, usdt):
    alice, bob = user_factory(balance=10), user_factory()
    tx = transfer_create(
        sender_id=alice.pk, recipient_id=bob.pk, currency=usdt, amount=Decimal("1"), memo='=HYPERLINK("http://x")'
    )
    (row,) = export(console, "/admin/transactions/transaction/", [tx.pk])
    assert row["memo"] == '\'=HYPERLINK("http://x")'


def test_the_balance_history_export_carries_the_chain(console, transfer):
    entries = BalanceHistory.objects.filter(transaction=transfer).order_by("delta")
    rows = export(console, "/admin/audit/balancehistory/", [e.pk for e in entries])
    assert [(r["username"], r["delta"], r["balance_after"]) for r in rows] == [
        ("alice", "-12.50000000", "87.50000000"),
        ("bob", "12.50000000", "12.50000000"),
    ]
    assert {r["transaction_hash"] for r in rows} == {transfer.hash}
    assert [r["entry_hash"] for r in rows] == [entries[0].entry_hash, entries[1].entry_hash]


def test_the_deposit_action_asks_for_an_amount_first(console, user_factory):
    wallet = Wallet.objects.get(user=user_factory(), currency__code="USDT")
    response = console.post("/admin/wallets/wallet/", {"action": "deposit", "_selected_action": [wallet.pk]})
    page = response.content.decode()
    assert response.status_code == 200 and 'name="amount"' in page and 'name="token"' in page
    assert not Transaction.objects.filter(to_wallet=wallet).exists()


def test_the_admin_deposit_creates_a_transaction_and_balance_history(console, staff, user_factory):
    user = user_factory()
    wallet = Wallet.objects.get(user=user, currency__code="USDT")
    response = movement(console, wallet, "deposit", "250.5", memo="wire 42")

    tx = Transaction.objects.get(to_wallet=wallet)
    assert (tx.type, tx.amount, tx.memo, tx.created_by) == ("deposit", Decimal("250.5"), "wire 42", staff)
    (entry,) = BalanceHistory.objects.filter(wallet=wallet)
    assert (entry.transaction, entry.balance_before, entry.balance_after) == (tx, 0, Decimal("250.5"))
    assert balance(user) == Decimal("250.5") and chain_problems(wallet) == []
    assert any(tx.hash in m for m in messages_of(response))


def test_submitting_the_same_deposit_page_twice_pays_once(console, user_factory):
    user = user_factory()
    wallet = Wallet.objects.get(user=user, currency__code="USDT")
    movement(console, wallet, "deposit", "10", token="same-page")
    again = movement(console, wallet, "deposit", "10", token="same-page")
    assert balance(user) == Decimal("10") and Transaction.objects.filter(to_wallet=wallet).count() == 1
    assert any("already applied" in m for m in messages_of(again))


def test_the_admin_withdrawal_debits_and_refuses_an_overdraft(console, user_factory):
    user = user_factory(balance=30)
    wallet = Wallet.objects.get(user=user, currency__code="USDT")
    movement(console, wallet, "withdraw", "20", token="w1")
    assert balance(user) == Decimal("10")
    assert Transaction.objects.get(from_wallet=wallet, type="withdrawal").amount == Decimal("20")

    refused = movement(console, wallet, "withdraw", "11", token="w2")
    assert any("insufficient" in m for m in messages_of(refused))
    assert balance(user) == Decimal("10") and BalanceHistory.objects.filter(wallet=wallet).count() == 2


def test_an_amount_the_currency_cannot_hold_is_refused(console, user_factory):
    user = user_factory()
    wallet = Wallet.objects.get(user=user, currency__code="USDT")  # 6 decimal places
    response = movement(console, wallet, "deposit", "1.1234567")
    assert any("decimal places" in m for m in messages_of(response))
    bad = movement(console, wallet, "deposit", "1e3")
    assert 'name="amount"' in bad.content.decode() and "plain decimal" in bad.content.decode()
    assert balance(user) == 0 and not Transaction.objects.filter(to_wallet=wallet).exists()


def test_staff_without_the_movement_permission_cannot_move_money(user_factory):
    clerk = UserFactory(is_staff=True)
    clerk.user_permissions.add(Permission.objects.get(codename="view_wallet"))
    client = Client()
    client.force_login(clerk)
    wallet = Wallet.objects.get(user=user_factory(), currency__code="USDT")
    assert client.get("/admin/wallets/wallet/").status_code == 200
    movement(client, wallet, "deposit", "100")
    assert wallet.history.count() == 0 and Transaction.objects.count() == 0


def test_currencies_are_editable_but_their_code_is_fixed(console, usdt):
    response = console.post(
        f"/admin/currencies/currency/{usdt.pk}/change/",
        {
            "code": "XXX",
            "name": "Tether",
            "symbol": "₮",
            "decimals": usdt.decimals,
            "is_active": "on",
            "is_default": "on",
            "max_transfer_amount": "5000",
        },
    )
    assert response.status_code == 302
    usdt.refresh_from_db()
    assert (usdt.code, usdt.name, usdt.max_transfer_amount) == ("USDT", "Tether", Decimal("5000"))


def test_a_currency_in_use_cannot_lose_decimal_places(console, usdt, user_factory):
    user_factory()  # holds a USDT wallet
    response = console.post(
        f"/admin/currencies/currency/{usdt.pk}/change/",
        {"name": usdt.name, "symbol": usdt.symbol, "decimals": 2, "is_active": "on", "is_default": "on"},
    )
    assert response.status_code == 200 and "cannot be lowered" in response.content.decode()
    assert Currency.objects.get(pk=usdt.pk).decimals == 6


def test_changing_a_password_in_the_admin_revokes_the_users_tokens(console, user_factory, client_for):
    user = user_factory()
    api = client_for(user)
    assert api.get("/users/me").status_code == 200
    response = console.post(
        f"/admin/accounts/user/{user.pk}/password/",
        {"password1": "a brand new secret 9", "password2": "a brand new secret 9", "set_usable_password": "true"},
    )
    assert response.status_code == 302
    assert api.get("/users/me").status_code == 401
