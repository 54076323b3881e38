"""The tx.created event: the seed's flat fields for old consumers plus the full transaction."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from transactions.models import Transaction
from wallet_project.core.money import format_amount

EVENT_TYPE = "tx.created"
SCHEMA_VERSION = 1


class TransactionFields(Protocol):
    """What ``transaction_document`` reads: a Transaction, or a row read without the ORM."""

    @property
    def pk(self) -> int | None: ...
    @property
    def hash(self) -> str: ...
    @property
    def signature(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def from_user_id(self) -> int | None: ...
    @property
    def to_user_id(self) -> int | None: ...
    @property
    def currency_id(self) -> int: ...
    @property
    def amount(self) -> Decimal: ...
    @property
    def memo(self) -> str: ...
    @property
    def created_at(self) -> datetime: ...


def transaction_document(tx: TransactionFields, *, currency_code: str) -> dict:
    """The transaction as every API response and event shows it."""
    return {
        "id": tx.pk,
        "hash": tx.hash,
        "signature": tx.signature,
        "status": tx.status,
        "type": tx.type,
        "from_user_id": tx.from_user_id,
        "to_user_id": tx.to_user_id,
        "currency_id": tx.currency_id,
        "currency": currency_code,
        "amount": format_amount(tx.amount),
        "memo": tx.memo,
        "created_at": tx.created_at.isoformat().replace("+00:00", "Z"),
    }


def tx_created_event(tx: Transaction, *, currency_code: str, event_id: uuid.UUID, trace_id: str) -> dict:
    document = transaction_document(tx, currency_code=currency_code)
    return {
        "event_id": str(event_id),
        "event_type": EVENT_TYPE,
        "schema_version": SCHEMA_VERSION,
        "occurred_at": document["created_at"],
        "trace_id": trace_id,
        "hash": tx.hash,
        "from_user_id": tx.from_user_id,
        "to_user_id": tx.to_user_id,
        "amount": document["amount"],
        "timestamp": document["created_at"],
        "transaction": document,
    }
