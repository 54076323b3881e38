"""A ledger with a hold in every state, made through the services (for the audit's tests on any backend)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django.contrib.auth.models import Permission
from django.utils import timezone

from currencies.models import Currency
from holds.models import Hold, WithdrawalRequest
from holds.services import (
    hold_capture,
    hold_create,
    hold_void,
    holds_expire_due,
    withdrawal_request_approve,
    withdrawal_request_create,
    withdrawal_request_reject,
)
from tests.conftest import make_cashier, make_user


def approver():
    """Staff who may move money and decide withdrawal requests."""
    staff = make_cashier()
    staff.user_permissions.add(Permission.objects.get(codename="approve_withdrawalrequest"))
    return type(staff).objects.get(pk=staff.pk)  # without the cached permissions


def make_due(hold: Hold) -> None:
    Hold.objects.filter(pk=hold.pk).update(expires_at=timezone.now() - timedelta(seconds=1))


@dataclass
class HoldStates:
    payer: object
    payee: object
    partly_captured: Hold  # active: 30, of which 10 captured
    captured: Hold  # 20, captured in full
    voided: Hold  # 5
    expired: Hold  # 7, released by the sweeper
    active: Hold  # 6, untouched (the payer's newest entry)
    approved: WithdrawalRequest  # 8, captured as a withdrawal
    rejected: WithdrawalRequest  # 4, released

    def refreshed(self) -> HoldStates:
        for name in ("partly_captured", "captured", "voided", "expired", "active"):
            getattr(self, name).refresh_from_db()
        return self


def holds_in_every_state() -> HoldStates:
    """The payer starts with 100 USDT and ends with balance 62 and held 26 (20 + 6)."""
    usdt = Currency.objects.get(code="USDT")
    payer, payee, staff = make_user(balance=100), make_user(), approver()

    def hold(amount: str) -> Hold:
        return hold_create(payer_id=payer.pk, payee_id=payee.pk, currency=usdt, amount=Decimal(amount))

    partly_captured = hold("30")
    hold_capture(hold_id=partly_captured.pk, actor=payee, amount=Decimal("10"))
    captured = hold("20")
    hold_capture(hold_id=captured.pk, actor=payee)
    voided = hold("5")
    hold_void(hold_id=voided.pk, actor=payer)
    expired = hold("7")
    make_due(expired)
    assert holds_expire_due() == 1
    approved = withdrawal_request_create(user_id=payer.pk, currency=usdt, amount=Decimal("8"), address="0xabc")
    withdrawal_request_approve(request_id=approved.pk, actor=staff, network_tx_id="0xfeed")
    rejected = withdrawal_request_create(user_id=payer.pk, currency=usdt, amount=Decimal("4"), address="0xabc")
    withdrawal_request_reject(request_id=rejected.pk, actor=staff, reason="sanctioned")
    active = hold("6")
    return HoldStates(payer, payee, partly_captured, captured, voided, expired, active, approved, rejected).refreshed()
