from decimal import Decimal

import pytest

from wallets.models import Wallet

pytestmark = pytest.mark.django_db


def balance(user, code="USDT"):
    return Wallet.objects.get(user=user, currency__code=code).balance


def test_transfer_moves_money_and_answers_with_the_seed_fields(user_factory, client_for):
    alice, bob = user_factory(balance=100), user_factory()
    response = client_for(alice).post(
        "/wallet/transfer", {"to_user_id": bob.pk, "amount": "12.5", "memo": "rent"}, format="json"
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["message"] == "transfer successful"
    assert body["status"] == "completed" and body["type"] == "transfer"
    assert body["amount"] == "12.50000000" and body["currency"] == "USDT"
    assert (body["from_user_id"], body["to_user_id"]) == (alice.pk, bob.pk)
    assert balance(alice) == Decimal("87.5") and balance(bob) == Decimal("12.5")


def test_insufficient_balance_changes_nothing(user_factory, client_for):
    alice, bob = user_factory(balance=10), user_factory()
    response = client_for(alice).post("/wallet/transfer", {"to_user_id": bob.pk, "amount": 999999}, format="json")
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "INSUFFICIENT_BALANCE"
    assert "insufficient" in response.json()["error"]
    assert balance(alice) == 10 and balance(bob) == 0
