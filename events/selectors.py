"""Reads of the outbox for the console: what waits for the relay, and since when."""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from events.models import OutboxEvent


class OutboxBacklog(NamedTuple):
    pending: int
    oldest_pending_at: datetime | None


def outbox_backlog() -> OutboxBacklog:
    """Pending events and the creation time of the oldest one (both read through the ``outbox_pending`` index)."""
    pending = OutboxEvent.objects.filter(state=OutboxEvent.State.PENDING)
    oldest = pending.order_by("id").values_list("created_at", flat=True).first()
    return OutboxBacklog(pending=pending.count(), oldest_pending_at=oldest)
