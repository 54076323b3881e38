"""The versioned event schemas: what producers build and what ``consume_events --check`` accepts.

Every event carries ``event_type`` and ``schema_version``. A change a consumer could notice (a
field removed, renamed or retyped) is a new version with its own builder and validator here, both
published side by side until the old one is retired; adding a field is not (consumers ignore
unknown fields). docs/events.md documents each version.

- ``tx.created`` v1 (``tx_created_v1``): one per transaction, keyed by the transaction hash.
- ``ledger.checkpoint`` v1 (``checkpoint_v1``): one per signed checkpoint (audit.checkpoint).
- ``hold.*`` and ``withdrawal.*`` v1 (``wallet_event_v1``, checked by ``wallet_event_problems``), topic
  ``wallet.events``: one per change of a hold or a withdrawal request, keyed by its id, carrying the
  object as the API shows it.
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
    return problems + _header_problems(headers, event)


def _header_problems(headers: dict[str, str], event: dict[str, Any]) -> list[str]:
    problems = []
    if headers.get("event_id") != event.get("event_id"):
        problems.append("event_id header differs from the payload")
    if headers.get("trace_id") != event.get("trace_id"):
        problems.append("trace_id header differs from the payload")
    return problems


# -- hold.* and withdrawal.* (topic wallet.events) ----------------------------------------------------

WALLET_EVENT_FIELDS = {"event_id", "event_type", "schema_version", "occurred_at", "trace_id"}
HOLD_FIELDS = {
    "id",
    "uid",
    "status",
    "payer_user_id",
    "payee_user_id",
    "currency_id",
    "currency",
    "amount",
    "captured",
    "remaining",
    "memo",
    "expires_at",
    "created_at",
    "updated_at",
}
WITHDRAWAL_REQUEST_FIELDS = {
    "id",
    "uid",
    "status",
    "user_id",
    "currency_id",
    "currency",
    "amount",
    "address",
    "network",
    "memo",
    "hold_id",
    "transaction_hash",
    "network_tx_id",
    "reason",
    "decided_by",
    "decided_at",
    "created_at",
    "updated_at",
}
# The status each event leaves its object in: a partial capture leaves the hold active.
EVENT_STATUSES = {
    "hold.created": {"active"},
    "hold.captured": {"active", "captured"},
    "hold.voided": {"voided"},
    "hold.expired": {"expired"},
    "withdrawal.requested": {"pending"},
    "withdrawal.approved": {"completed"},
    "withdrawal.rejected": {"rejected"},
    "withdrawal.cancelled": {"cancelled"},
}
# The events that moved money carry the transaction that moved it; the others carry none.
EVENTS_WITH_TRANSACTION = {"hold.captured", "withdrawal.approved"}


def _money(value: object) -> Decimal | None:
    """The amount a non-negative decimal string with 8 places stands for, else None."""
    return Decimal(value) if isinstance(value, str) and _AMOUNT.match(value) else None


def _is_id(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def wallet_event_problems(*, key: bytes | None, headers: dict[str, str], value: bytes | None) -> list[str]:
    """What is wrong with one ``hold.*`` / ``withdrawal.*`` v1 message (empty when it matches the schema)."""
    try:
        event = json.loads(value or b"")
    except ValueError:
        return ["value is not JSON"]
    if not isinstance(event, dict):
        return ["value is not a JSON object"]
    problems = []
    if missing := WALLET_EVENT_FIELDS - event.keys():
        problems.append(f"missing fields: {sorted(missing)}")
    event_type = event.get("event_type")
    if event_type not in EVENT_STATUSES:
        problems.append("event_type is not a hold.* or withdrawal.* event")
    if event.get("schema_version") != WALLET_EVENT_VERSION:
        problems.append("schema_version is not 1")
    if not _is_uuid(event.get("event_id")):
        problems.append("event_id is not a UUID")
    if not _is_timestamp(event.get("occurred_at")):
        problems.append("occurred_at is not an ISO 8601 timestamp with a zone")
    if not isinstance(event.get("trace_id"), str):
        problems.append("trace_id is not a string")
    problems += _header_problems(headers, event)
    if event_type not in EVENT_STATUSES:
        return problems

    subject = "hold" if event_type in HOLD_EVENTS else "withdrawal_request"
    document = event.get(subject)
    if not isinstance(document, dict):
        return [*problems, f"{subject} is not an object"]
    check = _hold_problems if subject == "hold" else _withdrawal_request_problems
    problems += [f"{subject}.{problem}" for problem in check(document)]
    if document.get("status") not in EVENT_STATUSES[event_type]:
        problems.append(f"{subject}.status {document.get('status')!r} does not follow {event_type}")
    if key is None or key.decode(errors="replace") != str(document.get("id")):
        problems.append(f"key is not the {subject} id")

    tx = event.get("transaction")
    if event_type not in EVENTS_WITH_TRANSACTION:
        if tx is not None:
            problems.append(f"{event_type} carries a transaction")
    elif not isinstance(tx, dict):
        problems.append("transaction is not an object")
    else:
        problems += _moved_by_problems(subject, document, tx)
    return problems


def _common_problems(document: dict[str, Any]) -> list[str]:
    problems = []
    if not _is_id(document.get("id")):
        problems.append("id is not a positive integer")
    if not _is_uuid(document.get("uid")):
        problems.append("uid is not a UUID")
    if not _is_id(document.get("currency_id")) or not isinstance(document.get("currency"), str):
        problems.append("currency_id is not an id or currency not a code")
    if not _is_amount(document.get("amount")):
        problems.append("amount is not a positive decimal string with 8 places")
    for name in ("created_at", "updated_at"):
        if not _is_timestamp(document.get(name)):
            problems.append(f"{name} is not an ISO 8601 timestamp with a zone")
    if not isinstance(document.get("memo"), str):
        problems.append("memo is not a string")
    return problems


def _hold_problems(hold: dict[str, Any]) -> list[str]:
    problems = []
    if missing := HOLD_FIELDS - hold.keys():
        problems.append(f"missing: {sorted(missing)}")
    problems += _common_problems(hold)
    if not _is_id(hold.get("payer_user_id")):
        problems.append("payer_user_id is not an id")
    payee = hold.get("payee_user_id")
    if not (payee is None or _is_id(payee)) or payee == hold.get("payer_user_id"):
        problems.append("payee_user_id is not null or an id other than the payer's")
    captured, remaining = _money(hold.get("captured")), _money(hold.get("remaining"))
    if captured is None or remaining is None:
        problems.append("captured or remaining is not a decimal string with 8 places")
    elif hold.get("status") == "active":
        if _is_amount(hold.get("amount")) and captured + remaining != Decimal(hold["amount"]):
            problems.append("captured + remaining of an active hold differs from amount")
    elif remaining != 0:
        problems.append("remaining of a hold that is not active is not zero")
    elif _is_amount(hold.get("amount")) and captured > Decimal(hold["amount"]):
        problems.append("captured exceeds amount")
    expires_at = hold.get("expires_at")
    if not (expires_at is None or _is_timestamp(expires_at)):
        problems.append("expires_at is not null or an ISO 8601 timestamp with a zone")
    return problems


def _withdrawal_request_problems(request: dict[str, Any]) -> list[str]:
    problems = []
    if missing := WITHDRAWAL_REQUEST_FIELDS - request.keys():
        problems.append(f"missing: {sorted(missing)}")
    problems += _common_problems(request)
    for name in ("user_id", "hold_id"):
        if not _is_id(request.get(name)):
            problems.append(f"{name} is not an id")
    if not (isinstance(request.get("address"), str) and request["address"]):
        problems.append("address is not a non-empty string")
    for name in ("network", "network_tx_id", "reason"):
        if not isinstance(request.get(name), str):
            problems.append(f"{name} is not a string")
    completed = request.get("status") == "completed"
    tx_hash = request.get("transaction_hash")
    if not ((isinstance(tx_hash, str) and bool(_HEX64.match(tx_hash))) if completed else tx_hash is None):
        problems.append("transaction_hash is not 64 hex digits when completed and null otherwise")
    decided = request.get("status") != "pending"
    decided_at, decided_by = request.get("decided_at"), request.get("decided_by")
    if not (
        (_is_timestamp(decided_at) and _is_id(decided_by)) if decided else (decided_at is None and decided_by is None)
    ):
        problems.append("decided_at and decided_by are not set once decided and null while pending")
    return problems


def _moved_by_problems(subject: str, document: dict[str, Any], tx: dict[str, Any]) -> list[str]:
    """The transaction of a capture or an approval against the object it moved money out of."""
    problems = []
    if missing := TRANSACTION_FIELDS - tx.keys():
        problems.append(f"transaction is missing: {sorted(missing)}")
    if not (isinstance(tx.get("hash"), str) and _HEX64.match(tx["hash"])):
        problems.append("transaction.hash is not 64 hex digits")
    if not _is_amount(tx.get("amount")):
        problems.append("transaction.amount is not a positive decimal string with 8 places")
    owner = document.get("payer_user_id" if subject == "hold" else "user_id")
    if tx.get("from_user_id") != owner:
        problems.append(f"transaction.from_user_id is not the {subject}'s owner")
    if tx.get("currency_id") != document.get("currency_id"):
        problems.append(f"transaction.currency_id differs from the {subject}'s")
    if subject == "hold":
        if tx.get("type") not in ("transfer", "withdrawal"):
            problems.append("transaction.type is not transfer or withdrawal")
        captured = _money(document.get("captured"))
        if _is_amount(tx.get("amount")) and captured is not None and Decimal(tx["amount"]) > captured:
            problems.append("transaction.amount exceeds what the hold has captured")
    else:
        if tx.get("type") != "withdrawal":
            problems.append("transaction.type is not withdrawal")
        if tx.get("hash") != document.get("transaction_hash"):
            problems.append("transaction.hash differs from withdrawal_request.transaction_hash")
        if tx.get("amount") != document.get("amount"):
            problems.append("transaction.amount differs from withdrawal_request.amount")
    return problems
