"""Webhook endpoints, the deliveries fanned out to them from the outbox, and each attempt's outcome."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class WebhookEndpoint(models.Model):
    """A URL that receives signed events: its owner's (a user's: about their wallets; staff's: all)."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="webhook_endpoints")
    url = models.CharField(max_length=2048)
    description = models.CharField(max_length=256, blank=True, default="")
    # Event types (``tx.created``, ``hold.captured`` ...) or ``*`` for every type the owner may receive.
    event_types = models.JSONField(default=list)
    enabled = models.BooleanField(default=True)
    disabled_reason = models.CharField(max_length=512, blank=True, default="")
    disabled_at = models.DateTimeField(null=True, blank=True)
    # Deliveries in a row that ended failed (reset by any 2xx); at WEBHOOK_DISABLE_AFTER_FAILURES the
    # endpoint is disabled.
    failure_streak = models.PositiveIntegerField(default=0)
    # The signing secrets, encrypted (webhooks.signing); never shown after creation or rotation.
    secret_encrypted = models.TextField(editable=False)
    previous_secret_encrypted = models.TextField(blank=True, default="", editable=False)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True)
    secret_rotated_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(enabled=True) | ~Q(disabled_reason=""), name="webhook_disabled_has_reason"
            ),
        ]

    def __str__(self) -> str:
        return f"webhook {self.pk} → {self.url}"


class WebhookDelivery(models.Model):
    """One event for one endpoint: pending until a 2xx (succeeded) or until the retries run out (failed).

    ``ordering_key`` is the event's currency (or a constant for events about no wallet): an endpoint's
    deliveries of one key are sent one after another in id order, which is the outbox's order for
    events of one wallet (docs/webhooks.md, "Ordering").
    """

    class Status(models.TextChoices):
        PENDING = "pending"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    # The outbox row whose payload is the body (none for a ``webhook.test`` ping, which carries its own).
    outbox_event = models.ForeignKey(
        "events.OutboxEvent", on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    event_id = models.UUIDField()
    event_type = models.CharField(max_length=64)
    payload = models.JSONField(null=True, blank=True)
    # The outbox row's headers (its W3C traceparent), so every attempt continues the producer's trace.
    headers = models.JSONField(default=dict)
    ordering_key = models.CharField(max_length=32, blank=True, default="")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempt_count = models.PositiveIntegerField(default=0)
    # Failed attempts since the delivery was created or redelivered: the position in the retry schedule.
    retry_count = models.PositiveIntegerField(default=0)
    schedule_started_at = models.DateTimeField(default=timezone.now)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    # A worker's claim on the delivery while it sends it; past ``leased_until`` another worker may take it.
    lease_id = models.UUIDField(null=True, blank=True)
    leased_until = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=512, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "webhook deliveries"
        constraints = [
            models.UniqueConstraint(fields=["endpoint", "event_id"], name="webhook_delivery_once_per_endpoint"),
        ]
        indexes = [
            models.Index(fields=["next_attempt_at"], condition=Q(status="pending"), name="webhook_delivery_due"),
            models.Index(
                fields=["endpoint", "ordering_key", "id"], condition=Q(status="pending"), name="webhook_delivery_queue"
            ),
            models.Index(fields=["endpoint", "-id"], name="webhook_delivery_by_endpoint"),
        ]

    def __str__(self) -> str:
        return f"{self.event_type}:{self.event_id} → endpoint {self.endpoint_id}"


class WebhookAttempt(models.Model):
    """One HTTP request of a delivery and what came back (the body truncated)."""

    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempts")
    number = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField()
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.CharField(max_length=512, blank=True, default="")
    response_body = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["delivery", "number"]

    def __str__(self) -> str:
        return f"attempt {self.number} of delivery {self.delivery_id}"

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300
