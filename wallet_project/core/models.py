import uuid

from django.conf import settings
from django.db import models


class IdempotencyKey(models.Model):
    """The outcome of a money-moving POST, stored in the same database transaction as its effect.

    A replay with the same key and body gets the stored outcome back; a crash mid-request rolls
    the row back together with the money movement, so no key is ever left stuck.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    scope = models.CharField(max_length=64)
    fingerprint = models.CharField(max_length=64)
    transaction = models.ForeignKey(
        "transactions.Transaction", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # For failures that are part of the contract (e.g. INSUFFICIENT_BALANCE), the code, status and message.
    # The status is stored because a replay must answer as the original did, even when it reaches a
    # version that no longer has the code.
    error_code = models.CharField(max_length=64, blank=True, default="")
    error_status = models.PositiveSmallIntegerField(null=True, blank=True)
    error_message = models.CharField(max_length=512, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "key"], name="idempotency_key_unique_per_user"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id}:{self.key}"


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

    class Meta:
        indexes = [
            models.Index(fields=["id"], condition=models.Q(state="pending"), name="outbox_pending"),
        ]

    def __str__(self) -> str:
        return f"{self.topic}:{self.event_id}"
