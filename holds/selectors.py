"""Reads of holds and withdrawal requests, scoped to who may see them.

Status filters read the effective status (``Hold.effective_status``): an ``active`` hold past its
``expires_at`` is ``expired`` whether or not ``expire_holds`` has recorded its release.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import NamedTuple

from django.contrib.auth.models import AbstractUser
from django.db.models import DecimalField, Q, QuerySet, Value
from django.utils import timezone

from holds.models import Hold, WithdrawalRequest
from wallet_project.core import errors

Viewer = AbstractUser  # authenticated: the views ask for a token first


def _effective_status(status: str, now: datetime) -> Q:
    past_expiry = Q(status=Hold.Status.ACTIVE, expires_at__lte=now)
    if status == Hold.Status.ACTIVE:
        return Q(status=Hold.Status.ACTIVE) & ~past_expiry  # expires_at null (never) or still ahead
    if status == Hold.Status.EXPIRED:
        return Q(status=Hold.Status.EXPIRED) | past_expiry
    return Q(status=status)


def _holds() -> QuerySet[Hold]:
    # A withdrawal request's hold is reached through the request, never as a hold of its own.
    return Hold.objects.filter(withdrawal_request__isnull=True).select_related("currency")


def hold_get_for(*, user: Viewer, hold_id: int) -> Hold:
    """The hold, for its payer, its payee or staff; for anyone else, as for an unknown id: HOLD_NOT_FOUND."""
    hold = _holds().filter(pk=hold_id).first()
    if hold is None or not (user.is_staff or user.pk in (hold.payer_id, hold.payee_id)):
        raise errors.HoldNotFound()
    return hold


def hold_list(*, user: Viewer, status: str | None = None, role: str | None = None) -> QuerySet[Hold]:
    """Holds the user pays (``role="payer"``), is paid by (``"payee"``) or either, newest first."""
    if role == "payer":
        qs = _holds().filter(payer_id=user.pk)
    elif role == "payee":
        qs = _holds().filter(payee_id=user.pk)
    else:
        qs = _holds().filter(Q(payer_id=user.pk) | Q(payee_id=user.pk))
    if status is not None:
        qs = qs.filter(_effective_status(status, timezone.now()))
    return qs.order_by("-id")


def hold_list_parts(*, user: Viewer, status: str | None = None, role: str | None = None) -> list[QuerySet[Hold]]:
    """``hold_list`` as disjoint lists that are each one range of an index, newest first: the holds the user
    pays and those they are paid by (never both: a payee is not the payer, ``hold_payee_not_payer``)."""
    return [hold_list(user=user, status=status, role=part) for part in ([role] if role else ["payer", "payee"])]


def expired_held_by_wallet(wallet_ids: list[int], now: datetime) -> dict[int, Decimal]:
    """What holds past their expiry, not yet released, still reserve in each wallet's ``held``."""
    # Added up here, not in SQL: money arithmetic stays exact on SQLite too (currencies.money_field).
    totals: dict[int, Decimal] = {}
    rows = Hold.objects.filter(wallet_id__in=wallet_ids, status=Hold.Status.ACTIVE, expires_at__lte=now)
    for wallet_id, amount, captured in rows.values_list("wallet_id", "amount", "captured"):
        totals[wallet_id] = totals.get(wallet_id, Decimal(0)) + amount - captured
    return totals


def _requests() -> QuerySet[WithdrawalRequest]:
    return WithdrawalRequest.objects.select_related("currency", "transaction")


def withdrawal_request_get_for(*, user: Viewer, request_id: int) -> WithdrawalRequest:
    """The request, for its owner or staff; for anyone else, as for an unknown id: WITHDRAWAL_REQUEST_NOT_FOUND."""
    request = _requests().filter(pk=request_id).first()
    if request is None or not (user.is_staff or user.pk == request.user_id):
        raise errors.WithdrawalRequestNotFound()
    return request


def withdrawal_request_list(
    *, user: Viewer, status: str | None = None, user_id: int | None = None
) -> QuerySet[WithdrawalRequest]:
    """The user's own requests, newest first; staff see everyone's and may pick one user's."""
    qs = _requests()
    if user.is_staff:
        if user_id is not None:
            qs = qs.filter(user_id=user_id)
    else:
        if user_id is not None and user_id != user.pk:
            raise errors.Forbidden("forbidden: you can only list your own withdrawal requests")
        qs = qs.filter(user_id=user.pk)
    if status is not None:
        qs = qs.filter(status=status)
    return qs.order_by("-id")


class CurrencyHolds(NamedTuple):
    """Per currency: how many holds (or requests), what they reserve, and the earliest time that matters."""

    currency_id: int
    item_count: int
    amount: Decimal
    first_at: datetime | None


def _by_currency(rows: QuerySet, *, at: str) -> list[CurrencyHolds]:
    # Added up here, not in SQL: money arithmetic stays exact on SQLite too (currencies.money_field).
    totals: dict[int, CurrencyHolds] = {}
    for currency_id, amount, captured, when in rows.values_list("currency_id", "amount", "captured", at):
        seen = totals.get(currency_id, CurrencyHolds(currency_id, 0, Decimal(0), None))
        first = when if seen.first_at is None or when < seen.first_at else seen.first_at
        totals[currency_id] = CurrencyHolds(currency_id, seen.item_count + 1, seen.amount + amount - captured, first)
    return sorted(totals.values())


def held_expired_by_currency(*, now: datetime) -> list[CurrencyHolds]:
    """Holds past their expiry whose release is not recorded yet: still in ``held``, no longer spendable-off."""
    rows = Hold.objects.filter(status=Hold.Status.ACTIVE, expires_at__lte=now)
    return _by_currency(rows, at="expires_at")


def holds_expiring_by_currency(*, now: datetime, within: timedelta) -> list[CurrencyHolds]:
    """Active holds that expire in ``(now, now + within]`` (the partial index on active holds' expiry)."""
    rows = Hold.objects.filter(status=Hold.Status.ACTIVE, expires_at__gt=now, expires_at__lte=now + within)
    return _by_currency(rows, at="expires_at")


def withdrawal_requests_pending_by_currency() -> list[CurrencyHolds]:
    """The approval queue per currency: pending requests, the amount they hold, the oldest's time."""
    rows = WithdrawalRequest.objects.filter(status=WithdrawalRequest.Status.PENDING).annotate(
        captured=Value(Decimal(0), output_field=DecimalField())
    )
    return _by_currency(rows, at="created_at")
