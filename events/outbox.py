"""Transactional outbox: events are rows written with the money movement, published after commit."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import transaction

from events import publisher
from events.models import OutboxEvent
from wallet_project.core.telemetry import inject_headers


def outbox_insert(
    *, key: str, event_id: uuid.UUID, payload: dict, headers: dict, topic: str | None = None
) -> OutboxEvent:
    """Insert the event row in the caller's transaction (see ``publish_on_commit``).

    The headers gain the W3C trace context of the request (when tracing is on), so the relay, the Kafka
    message and the webhook deliveries continue the request's trace.
    """
    return OutboxEvent.objects.create(
        event_id=event_id,
        topic=topic or settings.KAFKA_TOPIC,
        key=key,
        payload=payload,
        headers=inject_headers(headers),
    )


def publish_on_commit(event: OutboxEvent) -> None:
    """Hand the event (already in memory: no read-back) to the publisher once the transaction commits."""
    transaction.on_commit(lambda: _publish_after_commit(event))


def _publish_after_commit(event: OutboxEvent) -> None:
    publisher.publish_after_commit(event)
