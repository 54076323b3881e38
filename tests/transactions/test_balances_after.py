"""Transfer and capture replies carry the spending wallet's resulting balance, taken from the write itself."""

from decimal import Decimal

import pytest

from tests.holds.support import post, wallet_of
from transactions.selectors import sender_balances_after
from transactions.services import deposit_create, transfer_create

pytestmark = pytest.mark.django_db


def test_a_transfer_reply_says_what_the_senders_wallet_holds_after_it(user_factory, client_for):
    alice, bob = user_factory(balance=100), user_factory()
    payer = client_for(alice)
    assert post(payer, "/holds", {"amount": "30"}).status_code == 201  # 30 of the 100 held: 70 available

    response = post(payer, "/wallet/transfer", {"to_user_id": bob.pk, "amount": "12.5"})

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["balance_after"], body["available_after"]) == ("87.50000000", "57.50000000")
    assert wallet_of(payer, alice) == ("87.50000000", "30.00000000", "57.50000000")
    assert body["message"] == "transfer successful" and body["amount"] == "12.50000000"


def test_the_ledger_hands_the_figures_over_without_a_query(user_factory, usdt, django_assert_num_queries):
    alice, bob = user_factory(balance=10), user_factory()
    tx = transfer_create(sender_id=alice.pk, recipient_id=bob.pk, currency=usdt, amount=Decimal(3))
    with django_assert_num_queries(0):
        balances = sender_balances_after(tx)
    assert balances == (Decimal(7), Decimal(7))


def test_a_replayed_transfer_answers_with_the_balances_the_original_left(user_factory, client_for, usdt):
    alice, bob = user_factory(balance=100), user_factory()
    client = client_for(alice)
    body = {"to_user_id": bob.pk, "amount": "40"}
    first = post(client, "/wallet/transfer", body, key="t-1")
    deposit_create(user_id=alice.pk, currency=usdt, amount=Decimal(5))  # the wallet moves on

    again = post(client, "/wallet/transfer", body, key="t-1")

    assert first.status_code == again.status_code == 200, again.content
    assert again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert (again.json()["balance_after"], again.json()["available_after"]) == ("60.00000000", "60.00000000")
    assert wallet_of(client, alice)[0] == "65.00000000"


def test_a_capture_shows_the_payers_wallet_to_staff_and_nulls_to_the_payee(user_factory, client_for, cashier_factory):
    alice, bob = user_factory(balance=100), user_factory()
    payer, payee, cashier = client_for(alice), client_for(bob), client_for(cashier_factory())
    hold = post(payer, "/holds", {"amount": "30", "to_user_id": bob.pk}).json()
    post(payer, "/holds", {"amount": "20"})  # another hold on the payer's wallet: 50 held in all

    by_payee = post(payee, f"/holds/{hold['id']}/capture", {"amount": "10"})
    by_staff = post(cashier, f"/holds/{hold['id']}/capture", {"amount": "5"}, key="c-1")
    replayed = post(cashier, f"/holds/{hold['id']}/capture", {"amount": "5"}, key="c-1")

    assert by_payee.status_code == by_staff.status_code == replayed.status_code == 200, by_staff.content
    # The payee may not read the payer's wallet.
    assert (by_payee.json()["balance_after"], by_payee.json()["available_after"]) == (None, None)
    # After both captures: 85 posted, 35 held (15 of the first hold, 20 of the other), 50 available.
    assert (by_staff.json()["balance_after"], by_staff.json()["available_after"]) == ("85.00000000", "50.00000000")
    assert wallet_of(payer, alice) == ("85.00000000", "35.00000000", "50.00000000")
    assert replayed["Idempotent-Replayed"] == "true" and replayed.json() == by_staff.json()
    assert set(by_staff.json()) == {"hold", "transaction", "balance_after", "available_after"}
