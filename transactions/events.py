"""The transaction document every API response shows, and the tx.created event built around it."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Protocol, cast

from currencies.money import format_amount
from events.schemas import tx_created_v1
from transactions.models import Transaction


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


class ReversalRow(TransactionFields, Protocol):
    """A reversal read without the ORM: it carries the hash of the transaction it takes back."""

    @property
    def reverses_hash(self) -> str: ...


def transaction_document(tx: TransactionFields, *, currency_code: str) -> dict:
    """The transaction as every API response and event shows it; a reversal's also names what it takes back."""
    document = {
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
    if tx.type == Transaction.Type.REVERSAL:  # (the other types never read more than their own row)
        document["reverses"] = reversed_hash(tx)
    return document


def reversed_hash(tx: TransactionFields) -> str:
    """The hash of the transaction a reversal takes back.

    A row read without the ORM carries it; a Transaction has its original with it (the ledger sets it
    on the reversal it posts, readers ``select_related("reverses")``), or loads it here.
    """
    if isinstance(tx, Transaction):
        assert tx.reverses is not None, "a reversal names its original (a CHECK constraint)"
        return tx.reverses.hash
    return cast(ReversalRow, tx).reverses_hash


def tx_created_event(tx: Transaction, *, currency_code: str, event_id: uuid.UUID, trace_id: str) -> dict:
    """The tx.created event of a transaction (the envelope and its version: events.schemas)."""
    return tx_created_v1(transaction_document(tx, currency_code=currency_code), event_id=event_id, trace_id=trace_id)
