"""The versioned event schemas: what producers build and what ``consume_events --check`` accepts.

Every event carries ``event_type`` and ``schema_version``. A change a consumer could notice (a
field removed, renamed or retyped) is a new version with its own builder and validator here, both
published side by side until the old one is retired; adding a field is not (consumers ignore
unknown fields). docs/events.md documents each version.

- ``tx.created`` v1 (``tx_created_v1``): one per transaction, keyed by the transaction hash.
- ``ledger.checkpoint`` v1 (``checkpoint_v1``): one per signed checkpoint (audit.checkpoint).
- ``hold.*`` and ``withdrawal.*`` v1 (``wallet_event_v1``), topic ``wallet.events``: one per change of
  a hold or a withdrawal request, keyed by its id, carrying the object as the API shows it.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

TX_CREATED = "tx.created"
TX_CREATED_VERSION = 1
CHECKPOINT = "ledger.checkpoint"
CHECKPOINT_VERSION = 1
WALLET_EVENT_VERSION = 1
HOLD_EVENTS = ("hold.created", "hold.captured", "hold.voided", "hold.expired")
WITHDRAWAL_EVENTS = ("withdrawal.requested", "withdrawal.approved", "withdrawal.rejected", "withdrawal.cancelled")


def tx_created_v1(document: Mapping[str, Any], *, event_id: uuid.UUID, trace_id: str) -> dict[str, Any]:
    """The tx.created v1 envelope around a transaction document (transactions.events): the seed's
    flat fields for old consumers plus the full transaction."""
    return {
        "event_id": str(event_id),
        "event_type": TX_CREATED,
        "schema_version": TX_CREATED_VERSION,
        "occurred_at": document["created_at"],
        "trace_id": trace_id,
        "hash": document["hash"],
        "from_user_id": document["from_user_id"],
        "to_user_id": document["to_user_id"],
        "amount": document["amount"],
        "timestamp": document["created_at"],
        "transaction": dict(document),
    }


def wallet_event_v1(
    event_type: str,
    *,
    subject: str,
    document: Mapping[str, Any],
    event_id: uuid.UUID,
    trace_id: str,
    occurred_at: str,
    transaction: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A ``hold.*`` / ``withdrawal.*`` v1 event: the same envelope as tx.created, the object under
    ``subject`` (``hold`` or ``withdrawal_request``) and, for a capture or an approval, the transaction."""
    assert event_type in HOLD_EVENTS + WITHDRAWAL_EVENTS, event_type
    event: dict[str, Any] = {
        "event_id": str(event_id),
        "event_type": event_type,
        "schema_version": WALLET_EVENT_VERSION,
        "occurred_at": occurred_at,
        "trace_id": trace_id,
        subject: dict(document),
    }
    if transaction is not None:
        event["transaction"] = dict(transaction)
    return event


def checkpoint_v1(
    *, event_id: uuid.UUID, occurred_at: str, checkpoint_id: int, payload: str, signature: str, key_id: str
) -> dict[str, Any]:
    """The ledger.checkpoint v1 event: the signed checkpoint payload as the audit stored it."""
    return {
        "event_id": str(event_id),
        "event_type": CHECKPOINT,
        "schema_version": CHECKPOINT_VERSION,
        "occurred_at": occurred_at,
        "checkpoint_id": checkpoint_id,
        "payload": payload,
        "signature": signature,
        "key_id": key_id,
    }


EVENT_FIELDS = {
    "event_id",
    "event_type",
    "schema_version",
    "occurred_at",
    "trace_id",
    "hash",
    "from_user_id",
    "to_user_id",
    "amount",
    "timestamp",
    "transaction",
}
TRANSACTION_FIELDS = {
    "id",
    "hash",
    "signature",
    "status",
    "type",
    "from_user_id",
    "to_user_id",
    "currency_id",
    "currency",
    "amount",
    "memo",
    "created_at",
}
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_AMOUNT = re.compile(r"^[0-9]+\.[0-9]{8}$")


def _is_uuid(value: object) -> bool:
    try:
        return isinstance(value, str) and str(uuid.UUID(value)) == value
    except ValueError:
        return False


def _is_timestamp(value: object) -> bool:
    try:
        return isinstance(value, str) and datetime.fromisoformat(value.replace("Z", "+00:00")).tzinfo is not None
    except ValueError:
        return False


def _is_amount(value: object) -> bool:
    try:
        return isinstance(value, str) and bool(_AMOUNT.match(value)) and Decimal(value) > 0
    except InvalidOperation:
        return False


def _is_user_id(value: object) -> bool:
    return value is None or (isinstance(value, int) and not isinstance(value, bool))


def event_problems(*, key: bytes | None, headers: dict[str, str], value: bytes | None) -> list[str]:
    """What is wrong with one tx.created message (empty when it matches the documented schema)."""
    try:
        event = json.loads(value or b"")
    except ValueError:
        return ["value is not JSON"]
    if not isinstance(event, dict):
        return ["value is not a JSON object"]
    problems = []
    if missing := EVENT_FIELDS - event.keys():
        problems.append(f"missing fields: {sorted(missing)}")
    if event.get("event_type") != TX_CREATED:
        problems.append("event_type is not tx.created")
    if event.get("schema_version") != TX_CREATED_VERSION:
        problems.append("schema_version is not 1")
    if not _is_uuid(event.get("event_id")):
        problems.append("event_id is not a UUID")
    if not (isinstance(event.get("hash"), str) and _HEX64.match(event["hash"])):
        problems.append("hash is not 64 hex digits")
    if not _is_amount(event.get("amount")):
        problems.append("amount is not a positive decimal string with 8 places")
    for name in ("occurred_at", "timestamp"):
        if not _is_timestamp(event.get(name)):
            problems.append(f"{name} is not an ISO 8601 timestamp with a zone")
    for name in ("from_user_id", "to_user_id"):
        if not _is_user_id(event.get(name)):
            problems.append(f"{name} is not an integer or null")
    if not isinstance(event.get("trace_id"), str):
        problems.append("trace_id is not a string")
    tx = event.get("transaction")
    if not isinstance(tx, dict):
        problems.append("transaction is not an object")
    else:
        if missing := TRANSACTION_FIELDS - tx.keys():
            problems.append(f"transaction is missing: {sorted(missing)}")
        for name in ("hash", "from_user_id", "to_user_id", "amount"):
            if name in tx and tx[name] != event.get(name):
                problems.append(f"transaction.{name} differs from {name}")
    if key is None or key.decode(errors="replace") != event.get("hash"):
        problems.append("key is not the transaction hash")
    if headers.get("event_id") != event.get("event_id"):
        problems.append("event_id header differs from the payload")
    if headers.get("trace_id") != event.get("trace_id"):
        problems.append("trace_id header differs from the payload")
    return problems
