from __future__ import annotations

from collections.abc import Mapping

from django.db.models import QuerySet

from accounts.models import User
from audit.models import BalanceHistory
from wallet_project.core import errors
from wallet_project.core.money import format_amount
from wallet_project.core.params import datetime_param, int_param


def balance_history_queryset(*, viewer: User, params: Mapping[str, str]) -> QuerySet[BalanceHistory]:
    """Own entries for users; staff see all and may filter by user. ``viewer`` is authenticated."""
    qs = BalanceHistory.objects.all()
    user_id = int_param(params, "user_id")
    if viewer.is_staff:
        if user_id is not None:
            qs = qs.filter(user_id=user_id)
    else:
        if user_id is not None and user_id != viewer.pk:
            raise errors.Forbidden("forbidden: you can only read your own balance history")
        qs = qs.filter(user_id=viewer.pk)
    wallet_id = int_param(params, "wallet_id")
    if wallet_id is not None:
        qs = qs.filter(wallet_id=wallet_id)
    currency = params.get("currency")
    if currency and "\x00" in currency:  # PostgreSQL refuses a NUL outright (a 500); no code has one
        qs = qs.none()
    elif currency:
        qs = qs.filter(wallet__currency__code__iexact=currency)
    after = datetime_param(params, "created_after")
    if after:
        qs = qs.filter(created_at__gte=after)
    before = datetime_param(params, "created_before")
    if before:
        qs = qs.filter(created_at__lt=before)
    return qs.select_related("transaction", "wallet__currency").order_by("-id")


def balance_history_document(entry: BalanceHistory) -> dict:
    return {
        "id": entry.pk,
        "wallet_id": entry.wallet_id,
        "user_id": entry.user_id,
        "currency": entry.wallet.currency.code,
        "transaction_id": entry.transaction_id,
        "transaction_hash": entry.transaction.hash,
        "type": entry.transaction.type,
        "delta": format_amount(entry.delta),
        "balance_before": format_amount(entry.balance_before),
        "balance_after": format_amount(entry.balance_after),
        "prev_hash": entry.prev_hash,
        "entry_hash": entry.entry_hash,
        "created_at": entry.created_at.isoformat().replace("+00:00", "Z"),
    }
