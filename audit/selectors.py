from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from django.contrib.auth.models import AbstractUser
from django.db.models import QuerySet

from audit.models import BalanceHistory, Checkpoint, ReconcileRun
from audit.signed import verify_signed
from currencies.money import format_amount
from wallet_project.core import errors


def balance_history_queryset(
    *,
    viewer: AbstractUser,
    user_id: int | None = None,
    wallet_id: int | None = None,
    currency: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
) -> QuerySet[BalanceHistory]:
    """Own entries for users; staff see all and may filter by user. ``viewer`` is authenticated."""
    qs = BalanceHistory.objects.all()
    if viewer.is_staff:
        if user_id is not None:
            qs = qs.filter(user_id=user_id)
    else:
        if user_id is not None and user_id != viewer.pk:
            raise errors.Forbidden("forbidden: you can only read your own balance history")
        qs = qs.filter(user_id=viewer.pk)
    if wallet_id is not None:
        qs = qs.filter(wallet_id=wallet_id)
    if currency and "\x00" in currency:  # PostgreSQL refuses a NUL outright (a 500); no code has one
        qs = qs.none()
    elif currency:
        qs = qs.filter(wallet__currency__code__iexact=currency)
    if created_after:
        qs = qs.filter(created_at__gte=created_after)
    if created_before:
        qs = qs.filter(created_at__lt=created_before)
    qs = qs.select_related("transaction", "wallet__currency")
    # One wallet's entries are numbered (seq) in the order of their ids: the same order, one range of the
    # (wallet, seq) index, where -id would sort the wallet's whole chain.
    return qs.order_by("-seq") if wallet_id is not None else qs.order_by("-id")


def balance_history_document(entry: BalanceHistory) -> dict:
    return {
        "id": entry.pk,
        "wallet_id": entry.wallet_id,
        "user_id": entry.user_id,
        "currency": entry.wallet.currency.code,
        "transaction_id": entry.transaction_id,
        "transaction_hash": entry.transaction.hash if entry.transaction else None,
        # A change of held alone (a hold placed, voided or expired) has no transaction.
        "type": entry.transaction.type if entry.transaction else "hold",
        "delta": format_amount(entry.delta),
        "balance_before": format_amount(entry.balance_before),
        "balance_after": format_amount(entry.balance_after),
        "held_delta": format_amount(entry.held_delta),
        "held_before": format_amount(entry.held_before),
        "held_after": format_amount(entry.held_after),
        "hold_uid": str(entry.hold_uid) if entry.hold_uid else None,
        "prev_hash": entry.prev_hash,
        "entry_hash": entry.entry_hash,
        "created_at": entry.created_at.isoformat().replace("+00:00", "Z"),
    }


def reconcile_run_latest() -> ReconcileRun | None:
    """The most recently finished run (any outcome)."""
    return ReconcileRun.objects.filter(state=ReconcileRun.State.DONE).order_by("-finished_at", "-id").first()


def reconcile_runs_waiting() -> int:
    """Runs queued or running: the console says one is on its way rather than offering another."""
    return ReconcileRun.objects.exclude(state=ReconcileRun.State.DONE).count()


class CheckpointStatus(NamedTuple):
    checkpoint: Checkpoint
    signature_valid: bool


def checkpoint_status(checkpoint: Checkpoint) -> CheckpointStatus:
    """Whether the row's payload verifies under a trusted receipt key (``audit.signed``, as reconcile reads it)."""
    return CheckpointStatus(
        checkpoint, verify_signed(checkpoint.payload, checkpoint.signature, checkpoint.key_id) is not None
    )


def checkpoint_latest() -> CheckpointStatus | None:
    """The newest checkpoint row and its signature status (newest by id: the console shows what was written last)."""
    checkpoint = Checkpoint.objects.order_by("-id").first()
    return None if checkpoint is None else checkpoint_status(checkpoint)
