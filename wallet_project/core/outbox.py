"""Transactional outbox: events are rows written with the money movement, published after commit."""

from __future__ import annotations

from django.conf import settings
from django.db import transaction

from .models import OutboxEvent
from .tracing import current_trace_id


def outbox_enqueue(*, key: str, payload: dict, event_id, topic: str | None = None) -> OutboxEvent:
    """Insert the event in the caller's transaction and hand it to the publisher once committed."""
    trace_id = payload.get("trace_id") or current_trace_id()
    event = OutboxEvent.objects.create(
        event_id=event_id,
        topic=topic or settings.KAFKA_TOPIC,
        key=key,
        payload=payload,
        headers={"event_id": str(event_id), "trace_id": trace_id},
    )
    transaction.on_commit(lambda: _publish_after_commit(event.pk))
    return event


def _publish_after_commit(event_pk: int) -> None:
    from . import publisher

    publisher.publish_after_commit(event_pk)
