"""Idempotency-Key on money-moving POSTs: replay, mismatch, per-user scope, retention."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from tests.conftest import make_cashier
from tests.ledger import balance, ledger_state, ledger_state_with_keys
from transactions.idempotency import request_fingerprint
from transactions.models import IdempotencyKey, Transaction
from transactions.services import deposit_create

pytestmark = pytest.mark.django_db


def transfer(client, key, **body):
    return client.post("/wallet/transfer", body, format="json", HTTP_IDEMPOTENCY_KEY=key)


def test_a_replay_gets_the_identical_body_and_moves_money_once(user_factory, client_for):
    alice, bob = user_factory(balance=100), user_factory()
    client = client_for(alice)

    first = transfer(client, "pay-rent-2024-06", to_user_id=bob.pk, amount="12.5", memo="rent")
    state = ledger_state()
    second = transfer(client, "pay-rent-2024-06", to_user_id=bob.pk, amount="12.5", memo="rent")

    assert first.status_code == second.status_code == 200
    assert "Idempotent-Replayed" not in first
    assert second["Idempotent-Replayed"] == "true"
    assert second.json() == first.json()
    assert ledger_state() == state
    assert balance(alice) == Decimal("87.5") and balance(bob) == Decimal("12.5")


def test_the_same_key_with_a_different_body_is_422_and_writes_nothing(user_factory, client_for):
    alice, bob = user_factory(balance=100), user_factory()
    client = client_for(alice)
    transfer(client, "k-1", to_user_id=bob.pk, amount="1")
    state = ledger_state_with_keys()

    response = transfer(client, "k-1", to_user_id=bob.pk, amount="2")

    assert response.status_code == 422
    assert response.json()["code"] == "IDEMPOTENCY_KEY_MISMATCH"
    assert ledger_state_with_keys() == state


def test_an_insufficient_balance_outcome_is_replayed_even_after_a_top_up(user_factory, client_for, usdt):
    alice, bob = user_factory(balance=5), user_factory()
    client = client_for(alice)

    first = transfer(client, "k-poor", to_user_id=bob.pk, amount="10")
    deposit_create(user_id=alice.pk, currency=usdt, amount=Decimal("100"))
    state = ledger_state()
    second = transfer(client, "k-poor", to_user_id=bob.pk, amount="10")

    assert first.status_code == second.status_code == 400
    assert first.json()["code"] == second.json()["code"] == "INSUFFICIENT_BALANCE"
    assert "insufficient" in second.json()["error"]
    assert second["Idempotent-Replayed"] == "true"
    assert ledger_state() == state
    assert balance(bob) == 0


def test_keys_are_scoped_per_user(user_factory, client_for):
    alice, carol, bob = user_factory(balance=10), user_factory(balance=10), user_factory()

    from_alice = transfer(client_for(alice), "shared-key", to_user_id=bob.pk, amount="1")
    from_carol = transfer(client_for(carol), "shared-key", to_user_id=bob.pk, amount="1")

    assert from_alice.status_code == from_carol.status_code == 200
    assert "Idempotent-Replayed" not in from_carol
    assert from_alice.json()["id"] != from_carol.json()["id"]
    assert balance(bob) == 2


def test_the_same_key_on_another_operation_is_a_mismatch(user_factory, client_for):
    staff, bob = make_cashier(balance=10), user_factory()
    client = client_for(staff)
    assert transfer(client, "k-op", to_user_id=bob.pk, amount="1").status_code == 200

    response = client.post(
        "/deposits", {"user_id": bob.pk, "currency": "USDT", "amount": "1"}, format="json", HTTP_IDEMPOTENCY_KEY="k-op"
    )

    assert response.status_code == 422
    assert response.json()["code"] == "IDEMPOTENCY_KEY_MISMATCH"
    assert balance(bob) == 1


@pytest.mark.parametrize("key", ["k" * 256, "clé-é", "ключ", "tab\tkey", "   ", ""])
def test_malformed_keys_are_400_and_nothing_moves(user_factory, client_for, key):
    alice, bob = user_factory(balance=10), user_factory()
    state = ledger_state_with_keys()

    response = transfer(client_for(alice), key, to_user_id=bob.pk, amount="1")

    assert response.status_code == 400
    assert response.json()["code"] == "INVALID_REQUEST"
    assert ledger_state_with_keys() == state


def test_a_255_character_key_is_fine(user_factory, client_for):
    alice, bob = user_factory(balance=10), user_factory()
    key = "k" * 255
    assert transfer(client_for(alice), key, to_user_id=bob.pk, amount="1").status_code == 200
    assert transfer(client_for(alice), key, to_user_id=bob.pk, amount="1")["Idempotent-Replayed"] == "true"
    assert balance(bob) == 1


def test_an_expired_key_may_be_used_again(user_factory, client_for, settings):
    alice, bob = user_factory(balance=10), user_factory()
    client = client_for(alice)
    transfer(client, "old-key", to_user_id=bob.pk, amount="1")
    IdempotencyKey.objects.filter(key="old-key").update(
        created_at=timezone.now() - timedelta(hours=settings.IDEMPOTENCY_KEY_RETENTION_HOURS, minutes=1)
    )

    response = transfer(client, "old-key", to_user_id=bob.pk, amount="2")

    assert response.status_code == 200, response.content
    assert "Idempotent-Replayed" not in response
    assert balance(bob) == 3


def test_a_failure_before_the_ledger_does_not_burn_the_key(user_factory, client_for):
    """Nothing was attempted, so the client can correct the request and retry with the same key."""
    alice, bob = user_factory(balance=10), user_factory()
    client = client_for(alice)

    invalid = transfer(client, "k-fix", to_user_id=bob.pk, amount="0.1234567")
    fixed = transfer(client, "k-fix", to_user_id=bob.pk, amount="0.123456")

    assert invalid.status_code == 400 and invalid.json()["code"] == "INVALID_DECIMALS"
    assert fixed.status_code == 200
    assert Transaction.objects.filter(type="transfer").count() == 1


def test_deposits_replay_too(user_factory, client_for):
    staff, bob = make_cashier(), user_factory()
    client = client_for(staff)
    body = {"user_id": bob.pk, "currency": "USDT", "amount": "50"}

    first = client.post("/deposits", body, format="json", HTTP_IDEMPOTENCY_KEY="dep-1")
    second = client.post("/deposits", body, format="json", HTTP_IDEMPOTENCY_KEY="dep-1")

    assert first.status_code == second.status_code == 201
    assert second["Idempotent-Replayed"] == "true" and second.json() == first.json()
    assert balance(bob) == 50


def _stored_failure(user, key: str, body: dict, **outcome) -> None:
    IdempotencyKey.objects.create(
        user=user, key=key, scope="transfer", fingerprint=request_fingerprint("transfer", body), **outcome
    )


def test_a_stored_failure_replays_with_its_own_code_and_status(user_factory, client_for):
    # Replays once knew only the ledger's codes: any other stored code came back as 400 INVALID_REQUEST.
    alice, bob = user_factory(balance=100), user_factory()
    body = {"to_user_id": bob.pk, "amount": "1"}
    _stored_failure(alice, "k-forbidden", body, error_code="FORBIDDEN", error_message="forbidden: not yours")
    state = ledger_state()

    response = transfer(client_for(alice), "k-forbidden", **body)

    assert response.status_code == 403 and response.json()["code"] == "FORBIDDEN"
    assert response["Idempotent-Replayed"] == "true"
    assert ledger_state() == state


def test_a_retired_code_replays_with_its_stored_status(user_factory, client_for):
    # A key stored by another version may carry a code this one no longer has: its outcome stays as sent.
    alice, bob = user_factory(balance=100), user_factory()
    body = {"to_user_id": bob.pk, "amount": "1"}
    _stored_failure(
        alice, "k-retired", body, error_code="HOLD_NOT_ACTIVE", error_status=409, error_message="hold is not active"
    )

    response = transfer(client_for(alice), "k-retired", **body)

    assert response.status_code == 409
    assert response.json()["code"] == "HOLD_NOT_ACTIVE" and response.json()["status"] == 409
    assert response["Idempotent-Replayed"] == "true"
