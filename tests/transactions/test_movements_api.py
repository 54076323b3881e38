"""POST /deposits and /withdrawals: staff only, the only ways money enters or leaves, always audited."""

from decimal import Decimal

import pytest

from audit.models import BalanceHistory
from tests.conftest import make_cashier
from tests.ledger import balance, chain_problems, ledger_state
from transactions.models import Transaction
from wallets.models import Wallet

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(user_factory):
    return make_cashier()


def deposit(client, **body):
    return client.post("/deposits", {"currency": "USDT", **body}, format="json")


def withdraw(client, **body):
    return client.post("/withdrawals", {"currency": "USDT", **body}, format="json")


def test_a_deposit_credits_the_wallet_with_a_recorded_transaction(staff, user_factory, client_for):
    bob = user_factory()
    before = ledger_state()

    response = deposit(client_for(staff), user_id=bob.pk, amount="250.5", memo="wire 42")

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["type"] == "deposit" and body["from_user_id"] is None and body["to_user_id"] == bob.pk
    assert body["amount"] == "250.50000000" and body["memo"] == "wire 42"
    assert balance(bob) == Decimal("250.5")
    tx = Transaction.objects.get(pk=body["id"])
    assert tx.created_by_id == staff.pk and tx.from_wallet_id is None
    after = ledger_state()
    assert (after["transactions"], after["history"], after["outbox"]) == (
        before["transactions"] + 1,
        before["history"] + 1,
        before["outbox"] + 1,
    )
    assert chain_problems(Wallet.objects.get(user=bob, currency_id=1)) == []


def test_a_withdrawal_debits_the_wallet(staff, user_factory, client_for):
    bob = user_factory(balance=100)

    response = withdraw(client_for(staff), user_id=bob.pk, amount="40")

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["type"] == "withdrawal" and body["from_user_id"] == bob.pk and body["to_user_id"] is None
    assert balance(bob) == 60
    leg = BalanceHistory.objects.get(transaction_id=body["id"])
    assert (leg.delta, leg.balance_before, leg.balance_after) == (Decimal("-40"), 100, 60)
    assert chain_problems(Wallet.objects.get(user=bob, currency_id=1)) == []


def test_a_withdrawal_beyond_the_balance_is_insufficient_balance(staff, user_factory, client_for):
    bob = user_factory(balance=100)
    before = ledger_state()

    response = withdraw(client_for(staff), user_id=bob.pk, amount="100.000001")

    assert response.status_code == 400
    assert response.json()["code"] == "INSUFFICIENT_BALANCE"
    assert ledger_state() == before


@pytest.mark.parametrize("path", ["/deposits", "/withdrawals"])
def test_normal_users_get_403(user_factory, client_for, path):
    alice = user_factory(balance=100)
    before = ledger_state()

    response = client_for(alice).post(path, {"user_id": alice.pk, "currency": "USDT", "amount": "1"}, format="json")

    assert response.status_code == 403
    assert response.json()["code"] == "FORBIDDEN"
    assert ledger_state() == before


@pytest.mark.parametrize("path", ["/deposits", "/withdrawals"])
def test_anonymous_callers_get_401(user_factory, api, path):
    bob = user_factory(balance=10)
    response = api.post(path, {"user_id": bob.pk, "currency": "USDT", "amount": "1"}, format="json")
    assert response.status_code == 401
    assert response.json()["code"] == "UNAUTHORIZED"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"amount": "0"}, 400, "AMOUNT_NOT_POSITIVE"),
        ({"amount": "0.0000001"}, 400, "INVALID_DECIMALS"),
        ({"amount": "NaN"}, 400, "INVALID_REQUEST"),
        ({"amount": "1", "balance": "1"}, 400, "INVALID_REQUEST"),
        ({"amount": "1", "currency": "DOGE"}, 404, "NOT_FOUND"),
        ({"amount": "1", "currency": "USDC"}, 404, "WALLET_NOT_FOUND"),
        ({"amount": "1", "user_id": 999999999}, 404, "WALLET_NOT_FOUND"),
        ({"amount": "1000000000000"}, 400, "AMOUNT_EXCEEDS_LIMIT"),
    ],
)
def test_bad_deposits(staff, user_factory, client_for, body, status, code):
    bob = user_factory()
    before = ledger_state()

    response = deposit(client_for(staff), **{"user_id": bob.pk, **body})

    assert response.status_code == status, response.content
    assert response.json()["code"] == code
    assert ledger_state() == before


def test_deposits_are_not_capped_by_the_transfer_limit(staff, user_factory, client_for):
    bob = user_factory()
    assert deposit(client_for(staff), user_id=bob.pk, amount="5000000").status_code == 201
    assert balance(bob) == 5_000_000


def test_a_deposit_that_would_overflow_the_wallet_is_refused(staff, user_factory, client_for):
    bob = user_factory()
    client = client_for(staff)
    assert deposit(client, user_id=bob.pk, amount="999999999999").status_code == 201
    before = ledger_state()

    response = deposit(client, user_id=bob.pk, amount="1")

    assert response.status_code == 400, response.content
    assert response.json()["code"] == "AMOUNT_EXCEEDS_LIMIT"
    assert ledger_state() == before


def test_a_withdrawal_from_a_missing_wallet_is_404(staff, user_factory, client_for):
    bob = user_factory()
    response = withdraw(client_for(staff), user_id=bob.pk, currency="USDC", amount="1")
    assert response.status_code == 404
    assert response.json()["code"] == "SENDER_WALLET_NOT_FOUND"
