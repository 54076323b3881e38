import uuid

from django.db import models


class OutboxEvent(models.Model):
    """An event written in the same transaction as the money movement it describes."""

    class State(models.TextChoices):
        PENDING = "pending"
        PUBLISHED = "published"

    event_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    topic = models.CharField(max_length=255)
    key = models.CharField(max_length=255)
    payload = models.JSONField()
    headers = models.JSONField(default=dict)
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")
    available_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    published_at = models.DateTimeField(null=True, blank=True)
    # Not yet fanned out to webhook endpoints (webhooks.fanout clears it); a database default as well,
    # for the transfer's own INSERT (transactions.sql).
    webhooks_pending = models.BooleanField(default=True, db_default=True)

    class Meta:
        db_table = "core_outboxevent"  # created by the core app before the events app owned it
        indexes = [
            models.Index(fields=["id"], condition=models.Q(state="pending"), name="outbox_pending"),
            models.Index(fields=["id"], condition=models.Q(webhooks_pending=True), name="outbox_webhooks_pending"),
        ]

    def __str__(self) -> str:
        return f"{self.topic}:{self.event_id}"
