"""Review: a refusal replayed behind its Idempotency-Key loses its ``errors`` map.

A refused batch names the item that refused it (``errors: {"transfers[1].amount": [...]}``, SPEC
"Batches"); the same key and body must answer the original outcome. ``idempotency_store`` keeps
only the refusal's code, status and message, so the replay answers without ``errors``: a client
that retries a timed-out batch no longer learns which item to fix. The same holds for any stored
refusal that carried field errors (a capture's ``to_user_id`` on a hold with a payee).
"""

import pytest

from tests.holds.support import assert_error, post

pytestmark = pytest.mark.django_db

BATCH_REPLAY_REASON = (
    "transactions.idempotency.idempotency_store records only error_code/error_status/error_message and "
    "replayed_error rebuilds the ApiError without errors=: the replay drops the field map. Fix: a JSON "
    "column error_fields on IdempotencyKey (migration), stored from error.errors and passed back by "
    "replayed_error (and StoredError)."
)


@pytest.fixture
def alice_and_bob(user_factory):
    return user_factory(balance=100, username="alice"), user_factory(username="bob")


def test_a_refused_batch_names_its_item(alice_and_bob, client_for):
    alice, bob = alice_and_bob
    body = {"transfers": [{"to_user_id": bob.pk, "amount": "60"}, {"to_user_id": bob.pk, "amount": "60"}]}

    first = post(client_for(alice), "/transfers/batch", body, key="too-much")

    assert_error(first, 400, "INSUFFICIENT_BALANCE")
    assert list(first.json()["errors"]) == ["transfers[1].amount"]


@pytest.mark.xfail(strict=True, reason=BATCH_REPLAY_REASON)
def test_the_replayed_refusal_of_a_batch_still_names_its_item(alice_and_bob, client_for):
    alice, bob = alice_and_bob
    body = {"transfers": [{"to_user_id": bob.pk, "amount": "60"}, {"to_user_id": bob.pk, "amount": "60"}]}
    first = post(client_for(alice), "/transfers/batch", body, key="too-much")

    again = post(client_for(alice), "/transfers/batch", body, key="too-much")

    assert_error(again, 400, "INSUFFICIENT_BALANCE")
    assert again["Idempotent-Replayed"] == "true"
    assert again.json().get("errors") == first.json()["errors"]


@pytest.mark.xfail(strict=True, reason=BATCH_REPLAY_REASON)
def test_the_replayed_refusal_of_a_capture_keeps_its_field(alice_and_bob, client_for, cashier_factory):
    alice, bob = alice_and_bob
    staff = cashier_factory()
    hold = post(client_for(alice), "/holds", {"amount": "30", "to_user_id": bob.pk}).json()
    body = {"to_user_id": staff.pk}
    first = post(client_for(staff), f"/holds/{hold['id']}/capture", body, key="cap")
    assert_error(first, 400, "INVALID_REQUEST")
    assert "to_user_id" in first.json()["errors"]

    again = post(client_for(staff), f"/holds/{hold['id']}/capture", body, key="cap")

    assert_error(again, 400, "INVALID_REQUEST")
    assert again.json().get("errors") == first.json()["errors"]
