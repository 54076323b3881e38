"""The hold and withdrawal-request services on PostgreSQL: balances, chain entries, events, refusals."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from audit.models import BalanceHistory
from audit.reconcile import reconcile
from events.models import OutboxEvent
from holds.models import Hold, WithdrawalRequest
from holds.services import (
    hold_capture,
    hold_create,
    hold_void,
    holds_expire_due,
    withdrawal_request_approve,
    withdrawal_request_cancel,
    withdrawal_request_create,
    withdrawal_request_reject,
)
from tests.conftest import grant_movements
from tests.ledger import chain_problems
from transactions.models import Transaction
from transactions.services import transfer_create
from wallet_project.core import errors
from wallets.models import Wallet

pytestmark = pytest.mark.django_db


def wallet(user, code="USDT") -> Wallet:
    return Wallet.objects.get(user=user, currency__code=code)


def test_a_hold_reserves_then_a_partial_capture_and_a_void_release_it(user_factory, usdt):
    alice, bob = user_factory(balance=100), user_factory()
    hold = hold_create(payer_id=alice.pk, payee_id=bob.pk, currency=usdt, amount=Decimal("30"))
    w = wallet(alice)
    assert (w.balance, w.held, w.available) == (Decimal(100), Decimal(30), Decimal(70))

    with pytest.raises(errors.InsufficientBalance):
        transfer_create(sender_id=alice.pk, recipient_id=bob.pk, currency=usdt, amount=Decimal("70.000001"))

    hold, tx = hold_capture(hold_id=hold.pk, actor=bob, amount=Decimal("10"))
    assert tx.type == "transfer" and tx.amount == Decimal(10)
    assert (hold.status, hold.captured, hold.remaining) == ("active", Decimal(10), Decimal(20))
    w = wallet(alice)
    assert (w.balance, w.held) == (Decimal(90), Decimal(20))
    assert wallet(bob).balance == Decimal(10)

    hold = hold_void(hold_id=hold.pk, actor=alice)
    assert hold.status == "voided"
    w = wallet(alice)
    assert (w.balance, w.held) == (Decimal(90), Decimal(0))
    with pytest.raises(errors.HoldNotActive):
        hold_capture(hold_id=hold.pk, actor=bob, amount=Decimal("1"))

    held_entries = BalanceHistory.objects.filter(wallet=w).order_by("seq")
    assert [(e.delta, e.held_delta) for e in held_entries] == [
        (Decimal(100), 0), (0, Decimal(30)), (Decimal(-10), Decimal(-10)), (0, Decimal(-20))
    ]  # fmt: skip
    assert [e.posting for e in held_entries] == [1, None, 2, None]
    assert chain_problems(w) == [] and chain_problems(wallet(bob)) == []
    events = OutboxEvent.objects.filter(topic="wallet.events").order_by("id")
    assert list(events.values_list("payload__event_type", flat=True)) == [
        "hold.created", "hold.captured", "hold.voided"
    ]  # fmt: skip
    assert reconcile().ok


def test_an_expired_hold_cannot_be_captured_and_a_spend_releases_it_without_a_sweeper(user_factory, usdt):
    alice, bob = user_factory(balance=100), user_factory()
    hold = hold_create(payer_id=alice.pk, payee_id=bob.pk, currency=usdt, amount=Decimal("100"), expires_in=60)
    Hold.objects.filter(pk=hold.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    with pytest.raises(errors.HoldNotActive):
        hold_capture(hold_id=hold.pk, actor=bob)
    tx = transfer_create(sender_id=alice.pk, recipient_id=bob.pk, currency=usdt, amount=Decimal("100"))
    assert tx.amount == Decimal(100)
    hold.refresh_from_db()
    assert hold.status == "expired"
    assert wallet(alice).held == 0
    assert chain_problems(wallet(alice)) == []
    assert holds_expire_due() == 0
    assert reconcile().ok


def test_expire_holds_releases_what_is_due(user_factory, usdt):
    alice, bob = user_factory(balance=100), user_factory()
    due = hold_create(payer_id=alice.pk, payee_id=bob.pk, currency=usdt, amount=Decimal("40"))
    later = hold_create(payer_id=alice.pk, currency=usdt, amount=Decimal("20"))
    Hold.objects.filter(pk=due.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert holds_expire_due() == 1
    assert wallet(alice).held == Decimal(20)
    assert Hold.objects.get(pk=due.pk).status == "expired"
    assert Hold.objects.get(pk=later.pk).status == "active"
    assert reconcile().ok


def test_a_withdrawal_request_is_held_then_approved_once(user_factory, usdt):
    alice = user_factory(balance=100)
    staff = user_factory(is_staff=True)
    grant_movements(staff)
    from django.contrib.auth.models import Permission

    staff.user_permissions.add(Permission.objects.get(codename="approve_withdrawalrequest"))
    staff = type(staff).objects.get(pk=staff.pk)
    request = withdrawal_request_create(user_id=alice.pk, currency=usdt, amount=Decimal("60"), address="0xabc")
    assert request.status == "pending" and wallet(alice).held == Decimal(60)
    request = withdrawal_request_approve(request_id=request.pk, actor=staff, network_tx_id="0xfeed")
    assert request.status == "completed" and request.transaction.type == "withdrawal"
    w = wallet(alice)
    assert (w.balance, w.held) == (Decimal(40), Decimal(0))
    with pytest.raises(errors.WithdrawalRequestNotPending):
        withdrawal_request_approve(request_id=request.pk, actor=staff)
    other = withdrawal_request_create(user_id=alice.pk, currency=usdt, amount=Decimal("10"), address="0xabc")
    assert withdrawal_request_reject(request_id=other.pk, actor=staff, reason="sanctioned").status == "rejected"
    third = withdrawal_request_create(user_id=alice.pk, currency=usdt, amount=Decimal("10"), address="0xabc")
    assert withdrawal_request_cancel(request_id=third.pk, actor=alice).status == "cancelled"
    assert wallet(alice).held == 0 and wallet(alice).balance == Decimal(40)
    assert WithdrawalRequest.objects.count() == 3
    assert Transaction.objects.filter(type="withdrawal").count() == 1
    assert chain_problems(wallet(alice)) == []
    assert reconcile().ok
