"""Kafka publishing of outbox rows (placeholder until the events issue lands: rows stay pending)."""

from __future__ import annotations


def publish_after_commit(event_pk: int) -> None:
    return None


def broker_state() -> str:
    from django.conf import settings

    return "disabled" if not settings.KAFKA_BOOTSTRAP_SERVERS else "unavailable"
