"""Which events an endpoint may subscribe to, and which endpoints an event goes to.

A user's endpoint receives the events about their own wallets: ``tx.created`` where they are a party,
``hold.*`` where they pay or are paid, ``withdrawal.*`` of their own requests. A staff member's endpoint
receives every event of the types it subscribes to, including the staff-only ones (ledger checkpoints,
``webhook.endpoint_disabled``). Who an event concerns is read from its payload, as published.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from events.schemas import CHECKPOINT, HOLD_EVENTS, TX_CREATED, WITHDRAWAL_EVENTS

TEST_EVENT = "webhook.test"
ENDPOINT_DISABLED = "webhook.endpoint_disabled"
ALL = "*"

USER_EVENT_TYPES: tuple[str, ...] = (TX_CREATED, *HOLD_EVENTS, *WITHDRAWAL_EVENTS)
STAFF_EVENT_TYPES: tuple[str, ...] = (*USER_EVENT_TYPES, CHECKPOINT, ENDPOINT_DISABLED)
# Subscriptions to a family: "hold.*" is every hold event (a user's "*" is every type a user may receive).
FAMILIES = ("tx", "hold", "withdrawal", "ledger", "webhook")


def event_types_allowed(*, staff: bool) -> tuple[str, ...]:
    return STAFF_EVENT_TYPES if staff else USER_EVENT_TYPES


def subscription_choices(*, staff: bool) -> list[str]:
    """What ``event_types`` may hold: exact types, ``<family>.*`` for a family with a type allowed, ``*``."""
    allowed = event_types_allowed(staff=staff)
    families = [f"{family}.*" for family in FAMILIES if any(t.startswith(f"{family}.") for t in allowed)]
    return [*allowed, *families, ALL]


def subscribes(event_types: Iterable[str], event_type: str) -> bool:
    for pattern in event_types:
        if pattern in (ALL, event_type):
            return True
        if pattern.endswith(".*") and event_type.startswith(pattern[:-1]):
            return True
    return False


def concerned_users(payload: Mapping[str, Any]) -> set[int]:
    """The users whose wallets an event is about (none for staff-only events)."""
    event_type = payload.get("event_type")
    ids: list[Any] = []
    if event_type == TX_CREATED:
        ids = [payload.get("from_user_id"), payload.get("to_user_id")]
    elif event_type in HOLD_EVENTS:
        hold = payload.get("hold") or {}
        ids = [hold.get("payer_user_id"), hold.get("payee_user_id")]
    elif event_type in WITHDRAWAL_EVENTS:
        ids = [(payload.get("withdrawal_request") or {}).get("user_id")]
    return {i for i in ids if isinstance(i, int) and not isinstance(i, bool)}


def ordering_key(payload: Mapping[str, Any]) -> str:
    """The currency the event's wallets hold (each event's wallets share one), or "" for none.

    An endpoint's deliveries of one key go out one at a time in id order; a wallet has one currency,
    so that orders every endpoint's deliveries per wallet (docs/webhooks.md, "Ordering").
    """
    event_type = payload.get("event_type")
    subject: Mapping[str, Any] = {}
    if event_type == TX_CREATED:
        subject = payload.get("transaction") or {}
    elif event_type in HOLD_EVENTS:
        subject = payload.get("hold") or {}
    elif event_type in WITHDRAWAL_EVENTS:
        subject = payload.get("withdrawal_request") or {}
    currency_id = subject.get("currency_id")
    return f"currency:{currency_id}" if isinstance(currency_id, int) else str(event_type or "")[:32]


def endpoint_receives(*, owner_id: int, staff: bool, event_types: Iterable[str], payload: Mapping[str, Any]) -> bool:
    event_type = str(payload.get("event_type") or "")
    if event_type not in event_types_allowed(staff=staff) or not subscribes(event_types, event_type):
        return False
    return staff or owner_id in concerned_users(payload)
