"""Review: a refusal replayed behind its Idempotency-Key keeps its ``errors`` map (it lost it once).

A refused batch names the item that refused it (``errors: {"transfers[1].amount": [...]}``, SPEC
"Batches"); the same key and body must answer the original outcome. ``idempotency_store`` keeps
only the refusal's code, status and message, so the replay answered without ``errors``: a client
that retried a timed-out batch no longer learned which item to fix. It now keeps the field errors,
for any stored refusal that carries them (a capture's ``to_user_id`` on a hold with a payee, too).
"""

import pytest

from tests.holds.support import assert_error, post

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice_and_bob(user_factory):
    return user_factory(balance=100, username="alice"), user_factory(username="bob")


def test_a_refused_batch_names_its_item(alice_and_bob, client_for):
    alice, bob = alice_and_bob
    body = {"transfers": [{"to_user_id": bob.pk, "amount": "60"}, {"to_user_id": bob.pk, "amount": "60"}]}

    first = post(client_for(alice), "/transfers/batch", body, key="too-much")

    assert_error(first, 400, "INSUFFICIENT_BALANCE")
    assert list(first.json()["errors"]) == ["transfers[1].amount"]


def test_the_replayed_refusal_of_a_batch_still_names_its_item(alice_and_bob, client_for):
    alice, bob = alice_and_bob
    body = {"transfers": [{"to_user_id": bob.pk, "amount": "60"}, {"to_user_id": bob.pk, "amount": "60"}]}
    first = post(client_for(alice), "/transfers/batch", body, key="too-much")

    again = post(client_for(alice), "/transfers/batch", body, key="too-much")

    assert_error(again, 400, "INSUFFICIENT_BALANCE")
    assert again["Idempotent-Replayed"] == "true"
    assert again.json().get("errors") == first.json()["errors"]


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
