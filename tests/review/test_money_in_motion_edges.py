"""Review: the edges of holds, withdrawal requests, reversals and batches that a demanding user or an
attacker reaches first, each followed by a full reconcile."""

from decimal import Decimal

import pytest
from django.utils import timezone

from audit.reconcile import reconcile
from currencies.models import Currency
from holds.models import Hold
from tests.conftest import grant_movements
from tests.holds.conftest import grant_approvals
from tests.holds.support import assert_error, post
from tests.holds.test_holds_api import state
from transactions.models import Transaction
from wallets.models import Wallet

pytestmark = pytest.mark.django_db


def assert_reconciles():
    report = reconcile()
    assert report.ok, [(c.name, c.examples) for c in report.checks if not c.ok]


def usdt_wallet(user):
    return Wallet.objects.values_list("balance", "held").get(user=user, currency__code="USDT")


@pytest.fixture
def people(user_factory):
    alice = user_factory(balance=100, username="alice")
    bob = user_factory(username="bob")
    staff = grant_approvals(grant_movements(user_factory(is_staff=True, username="staff")))
    return alice, bob, staff


def test_a_capture_reversed_while_the_payee_holds_the_money_waits_for_the_hold(people, client_for):
    alice, bob, staff = people
    hold = post(client_for(alice), "/holds", {"amount": "30", "to_user_id": bob.pk}).json()
    capture = post(client_for(bob), f"/holds/{hold['id']}/capture", {"amount": "10"})
    assert capture.status_code == 200, capture.content
    capture_hash = capture.json()["transaction"]["hash"]
    bobs = post(client_for(bob), "/holds", {"amount": "10", "to_user_id": alice.pk}).json()
    before = state()

    refused = post(client_for(staff), f"/tx/{capture_hash}/reversals", {"memo": "chargeback"})

    assert_error(refused, 400, "INSUFFICIENT_BALANCE")
    assert state() == before
    Hold.objects.filter(pk=bobs["id"]).update(expires_at=timezone.now())  # expires exactly now
    reversed_ = post(client_for(staff), f"/tx/{capture_hash}/reversals", {"memo": "chargeback"})
    assert reversed_.status_code == 201, reversed_.content
    assert reversed_.json()["reverses"] == capture_hash
    assert usdt_wallet(bob) == (Decimal(0), Decimal(0))
    rest = post(client_for(bob), f"/holds/{hold['id']}/capture", {})
    assert rest.status_code == 200, rest.content
    assert usdt_wallet(alice) == (Decimal(80), Decimal(0))
    assert_reconciles()


def test_a_hold_expiring_exactly_now_is_expired_for_capture_void_and_the_wallet(people, client_for):
    alice, bob, _ = people
    hold = post(client_for(alice), "/holds", {"amount": "30", "to_user_id": bob.pk}).json()
    Hold.objects.filter(pk=hold["id"]).update(expires_at=timezone.now())

    assert_error(post(client_for(bob), f"/holds/{hold['id']}/capture", {}), 409, "HOLD_NOT_ACTIVE")
    assert_error(post(client_for(alice), f"/holds/{hold['id']}/void"), 409, "HOLD_NOT_ACTIVE")
    wallet = client_for(alice).get(f"/wallet/{alice.pk}").json()
    assert (wallet["held"], wallet["available"]) == ("0.00000000", "100.00000000")
    assert client_for(alice).get(f"/holds/{hold['id']}").json()["status"] == "expired"
    assert_reconciles()


def test_a_reversed_withdrawal_request_and_a_deposit_reversal_blocked_by_a_pending_request(people, client_for):
    alice, _, staff = people
    request = post(client_for(alice), "/withdrawal-requests", {"amount": "40", "address": "T9yD14Nj"}).json()
    approved = post(client_for(staff), f"/withdrawal-requests/{request['id']}/approve", {})
    assert approved.status_code == 200, approved.content
    back = post(client_for(staff), f"/tx/{approved.json()['transaction_hash']}/reversals", {"memo": "bounced"})
    assert back.status_code == 201, back.content
    assert usdt_wallet(alice) == (Decimal(100), Decimal(0))
    post(client_for(alice), "/withdrawal-requests", {"amount": "75", "address": "T9yD14Nj"})
    deposit = Transaction.objects.get(type="deposit", to_user_id=alice.pk)
    before = state()

    refused = post(client_for(staff), f"/tx/{deposit.hash}/reversals", {"memo": "fraud"})

    assert_error(refused, 400, "INSUFFICIENT_BALANCE")
    assert state() == before
    assert_reconciles()


def test_a_batch_of_100_to_one_recipient_drains_the_wallet_exactly_and_replays(people, client_for):
    alice, bob, _ = people
    body = {"transfers": [{"to_user_id": bob.pk, "amount": "1"}] * 100}

    first = post(client_for(alice), "/transfers/batch", body, key="b-100")
    again = post(client_for(alice), "/transfers/batch", body, key="b-100")

    assert first.status_code == again.status_code == 201, first.content
    assert first.json() == again.json()
    assert again["Idempotent-Replayed"] == "true"
    assert first.json()["balances"][0]["balance_after"] == "0.00000000"
    assert usdt_wallet(bob) == (Decimal(100), Decimal(0))
    assert_reconciles()


def test_a_batch_with_one_inactive_currency_names_the_item_and_moves_nothing(people, client_for):
    alice, bob, _ = people
    Currency.objects.filter(code="ETH").update(is_active=False)
    before = state()
    body = {
        "transfers": [
            {"to_user_id": bob.pk, "amount": "1"},
            {"to_user_id": bob.pk, "amount": "1", "currency": "BTC"},
            {"to_user_id": bob.pk, "amount": "1", "currency": "ETH"},
        ]
    }

    response = post(client_for(alice), "/transfers/batch", body)

    assert_error(response, 404, "NOT_FOUND")
    assert list(response.json()["errors"]) == ["transfers[2].currency"]
    assert state() == before
    request = post(client_for(alice), "/withdrawal-requests", {"amount": "1", "currency": "ETH", "address": "abc"})
    assert_error(request, 404, "NOT_FOUND")
    assert state() == before


def test_staff_without_the_permissions_and_strangers_cannot_touch_holds_or_requests(people, client_for, user_factory):
    alice, bob, staff = people
    plain_staff = user_factory(is_staff=True, username="plain")
    hold = post(client_for(alice), "/holds", {"amount": "30"}).json()
    request = post(client_for(alice), "/withdrawal-requests", {"amount": "40", "address": "abc"}).json()
    before = state()

    assert_error(post(client_for(plain_staff), f"/holds/{hold['id']}/capture", {}), 403, "FORBIDDEN")
    assert_error(post(client_for(plain_staff), f"/holds/{hold['id']}/void"), 403, "FORBIDDEN")
    assert_error(post(client_for(bob), f"/holds/{hold['id']}/capture", {}), 404, "HOLD_NOT_FOUND")
    assert_error(post(client_for(bob), f"/holds/{hold['id']}/void"), 404, "HOLD_NOT_FOUND")
    for action, body in (("approve", {}), ("reject", {"reason": "no"})):
        assert_error(
            post(client_for(plain_staff), f"/withdrawal-requests/{request['id']}/{action}", body), 403, "FORBIDDEN"
        )
    assert_error(post(client_for(staff), f"/withdrawal-requests/{request['id']}/cancel"), 403, "FORBIDDEN")
    assert_error(
        post(client_for(bob), f"/withdrawal-requests/{request['id']}/cancel"), 404, "WITHDRAWAL_REQUEST_NOT_FOUND"
    )
    # A withdrawal request's hold is reached only through the request, even by staff who move money.
    assert_error(post(client_for(staff), f"/holds/{request['hold_id']}/capture", {}), 404, "HOLD_NOT_FOUND")
    assert_error(post(client_for(staff), f"/holds/{request['hold_id']}/void"), 404, "HOLD_NOT_FOUND")
    tx = Transaction.objects.get(type="deposit", to_user_id=alice.pk)
    assert_error(post(client_for(plain_staff), f"/tx/{tx.hash}/reversals", {"memo": "x"}), 403, "FORBIDDEN")
    assert_error(post(client_for(alice), f"/tx/{tx.hash}/reversals", {"memo": "x"}), 403, "FORBIDDEN")
    assert state() == before


def test_one_key_across_endpoints_is_a_mismatch_and_moves_nothing_more(people, client_for):
    alice, bob, staff = people
    hold = post(client_for(alice), "/holds", {"amount": "30", "to_user_id": bob.pk}, key="same").json()
    before = state()

    for path, body in (
        ("/withdrawal-requests", {"amount": "30", "address": "abc"}),
        (f"/holds/{hold['id']}/void", None),
        ("/transfers/batch", {"transfers": [{"to_user_id": bob.pk, "amount": "1"}]}),
        ("/wallet/transfer", {"to_user_id": bob.pk, "amount": "1"}),
    ):
        assert_error(post(client_for(alice), path, body, key="same"), 422, "IDEMPOTENCY_KEY_MISMATCH")
    other = post(client_for(alice), "/holds", {"amount": "5", "to_user_id": bob.pk}, key="void-key").json()
    assert post(client_for(alice), f"/holds/{other['id']}/void", None, key="void-key2").status_code == 200
    # The same void key and body against another hold is another request.
    assert_error(
        post(client_for(alice), f"/holds/{hold['id']}/void", None, key="void-key2"), 422, "IDEMPOTENCY_KEY_MISMATCH"
    )
    assert Hold.objects.get(pk=hold["id"]).status == "active"
    assert state()["transactions"] == before["transactions"]
    assert_reconciles()
