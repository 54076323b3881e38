"""The hold and withdrawal-request documents every response shows, and the events built around them."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.utils import timezone

from currencies.money import format_amount
from events.outbox import outbox_insert, publish_on_commit
from events.schemas import wallet_event_v1
from holds.models import Hold, WithdrawalRequest
from transactions.events import transaction_document
from transactions.models import Transaction
from wallet_project.core.tracing import current_trace_id


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def hold_document(hold: Hold, *, now: datetime | None = None) -> dict[str, Any]:
    """The hold as the API and its events show it; ``status`` is ``expired`` past ``expires_at``, and
    ``remaining`` (what can still be captured) is zero once it is not active: what was released is
    in the wallet's ``available`` again."""
    status = hold.effective_status(now or timezone.now())
    return {
        "id": hold.pk,
        "uid": str(hold.uid),
        "status": status,
        "payer_user_id": hold.payer_id,
        "payee_user_id": hold.payee_id,
        "currency_id": hold.currency_id,
        "currency": hold.currency.code,
        "amount": format_amount(hold.amount),
        "captured": format_amount(hold.captured),
        "remaining": format_amount(hold.remaining if status == Hold.Status.ACTIVE else Decimal(0)),
        "memo": hold.memo,
        "expires_at": _iso(hold.expires_at),
        "created_at": _iso(hold.created_at),
        "updated_at": _iso(hold.updated_at),
    }


def withdrawal_request_document(request: WithdrawalRequest) -> dict[str, Any]:
    """The withdrawal request as the API and its events show it."""
    tx = request.transaction
    return {
        "id": request.pk,
        "uid": str(request.uid),
        "status": request.status,
        "user_id": request.user_id,
        "currency_id": request.currency_id,
        "currency": request.currency.code,
        "amount": format_amount(request.amount),
        "address": request.address,
        "network": request.network,
        "memo": request.memo,
        "hold_id": request.hold_id,
        "transaction_hash": tx.hash if tx is not None else None,
        "network_tx_id": request.network_tx_id,
        "reason": request.reason,
        "decided_by": request.decided_by_id,
        "decided_at": _iso(request.decided_at),
        "created_at": _iso(request.created_at),
        "updated_at": _iso(request.updated_at),
    }


def _enqueue(event_type: str, *, key: str, subject: str, document: dict, occurred_at: datetime,
             transaction: Transaction | None = None) -> None:  # fmt: skip
    event_id = uuid.uuid4()
    trace_id = current_trace_id()
    payload = wallet_event_v1(
        event_type,
        subject=subject,
        document=document,
        event_id=event_id,
        trace_id=trace_id,
        occurred_at=_iso(occurred_at) or "",
        transaction=None
        if transaction is None
        else transaction_document(transaction, currency_code=transaction.currency.code),
    )
    row = outbox_insert(
        key=key,
        event_id=event_id,
        payload=payload,
        headers={"event_id": str(event_id), "trace_id": trace_id},
        topic=settings.KAFKA_WALLET_EVENTS_TOPIC,
    )
    publish_on_commit(row)


def hold_event(event_type: str, hold: Hold, *, transaction: Transaction | None = None) -> None:
    """Enqueue ``hold.<...>`` in the caller's transaction (published after commit), keyed by the hold id."""
    _enqueue(event_type, key=str(hold.pk), subject="hold", document=hold_document(hold, now=hold.updated_at),
             occurred_at=hold.updated_at, transaction=transaction)  # fmt: skip


def withdrawal_event(event_type: str, request: WithdrawalRequest) -> None:
    """Enqueue ``withdrawal.<...>`` in the caller's transaction, keyed by the request id."""
    _enqueue(event_type, key=str(request.pk), subject="withdrawal_request",
             document=withdrawal_request_document(request), occurred_at=request.updated_at,
             transaction=request.transaction)  # fmt: skip
