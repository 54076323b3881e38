"""Review: a hold whose payer is deactivated after placing it.

The money was reserved for the payee when the hold was placed. The capture took the transfer path,
whose wallet lock joins active users only, and answered 404 SENDER_WALLET_NOT_FOUND ("sender has no
USDT wallet"), which was false: the money was stranded until the hold expired or was voided. A
capture now takes reserved money from its payer whatever their state (as an approved withdrawal
request already did); the recipient must be active.
"""

import pytest

from audit.reconcile import reconcile
from tests.conftest import grant_movements
from tests.holds.support import post
from tests.holds.test_holds_api import state

pytestmark = pytest.mark.django_db


@pytest.fixture
def deactivated_payer_hold(user_factory, client_for):
    alice = user_factory(balance=100, username="alice")
    bob = user_factory(username="bob")
    response = post(client_for(alice), "/holds", {"amount": "30", "to_user_id": bob.pk})
    assert response.status_code == 201, response.content
    alice.is_active = False
    alice.save(update_fields=["is_active"])
    return alice, bob, response.json()


def test_staff_capturing_into_a_deactivated_payee_is_refused_and_writes_nothing(
    user_factory, client_for, cashier_factory
):
    alice, bob = user_factory(balance=100, username="alice"), user_factory(username="bob")
    hold = post(client_for(alice), "/holds", {"amount": "30", "to_user_id": bob.pk}).json()
    bob.is_active = False
    bob.save(update_fields=["is_active"])
    staff = client_for(grant_movements(cashier_factory()))
    before = state()

    response = post(staff, f"/holds/{hold['id']}/capture", {})

    assert response.status_code == 404 and response.json()["code"] == "RECIPIENT_NOT_FOUND", response.content
    assert state() == before
    assert reconcile().ok


def test_the_payee_captures_a_hold_whose_payer_was_deactivated(deactivated_payer_hold, client_for, cashier_factory):
    alice, bob, hold = deactivated_payer_hold

    by_payee = post(client_for(bob), f"/holds/{hold['id']}/capture", {"amount": "10"})
    by_staff = post(client_for(grant_movements(cashier_factory())), f"/holds/{hold['id']}/capture", {})

    assert (by_payee.status_code, by_staff.status_code) == (200, 200), (by_payee.content, by_staff.content)
    assert reconcile().ok
