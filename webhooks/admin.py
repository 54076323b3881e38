"""Webhook endpoints and deliveries in the ops console.

Endpoints: the secret is never shown (not even encrypted); actions enable, disable and rotate the secret
(at once, no grace: for a leaked secret; the owner then takes a new one with ``rotate-secret``).
Deliveries are read-only with their attempts; the action "Redeliver" sends the selected ones again.
"""

from __future__ import annotations

from datetime import timedelta

from django.contrib import admin, messages
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from wallet_project.core.admin_base import ReadOnlyAdmin
from webhooks.delivery import endpoint_disable
from webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from webhooks.services import delivery_redeliver, endpoint_rotate_secret, endpoint_update


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    list_display = ("id", "owner", "url", "enabled", "disabled_reason", "failure_streak", "created_at")
    list_filter = ("enabled",)
    search_fields = ("url", "owner__username", "description")
    list_select_related = ("owner",)
    fields = (
        "owner",
        "url",
        "description",
        "event_types",
        "enabled",
        "disabled_reason",
        "disabled_at",
        "failure_streak",
        "secret_rotated_at",
        "previous_secret_expires_at",
        "created_at",
        "updated_at",
    )
    readonly_fields = fields
    actions = ["enable", "disable", "rotate_secret"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # registered through the API, which shows the secret once to its owner

    @admin.action(description="Enable selected endpoints", permissions=["change"])
    def enable(self, request, queryset):
        for endpoint in queryset:
            endpoint_update(user=request.user, endpoint_id=endpoint.pk, enabled=True)
        self.message_user(request, f"{queryset.count()} endpoint(s) enabled.", messages.SUCCESS)

    @admin.action(description="Disable selected endpoints", permissions=["change"])
    def disable(self, request, queryset):
        count = 0
        for endpoint in queryset.filter(enabled=True):
            with transaction.atomic(durable=True):
                locked = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
                if locked.enabled:
                    endpoint_disable(locked, reason=f"disabled by staff ({request.user.get_username()})")
                    count += 1
        self.message_user(request, f"{count} endpoint(s) disabled.", messages.SUCCESS)

    @admin.action(description="Rotate the secret now (the old one stops signing at once)", permissions=["change"])
    def rotate_secret(self, request, queryset):
        for endpoint in queryset:
            endpoint_rotate_secret(user=request.user, endpoint_id=endpoint.pk, grace=timedelta(0))
        self.message_user(
            request,
            f"{queryset.count()} secret(s) replaced; each owner takes a new one: POST /webhooks/{{id}}/rotate-secret.",
            messages.WARNING,
        )


class WebhookAttemptInline(admin.TabularInline):
    model = WebhookAttempt
    fields = ("number", "started_at", "duration_ms", "status_code", "error", "response_body")
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ["number"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "endpoint",
        "event_type",
        "event_id",
        "status",
        "attempt_count",
        "last_status_code",
        "next_attempt_at",
        "created_at",
    )
    list_filter = ("status", "event_type", "completed_at")
    search_fields = ("=event_id", "=endpoint__id")
    list_select_related = ("endpoint",)
    exclude = ("payload", "headers", "lease_id", "outbox_event")
    inlines = [WebhookAttemptInline]
    actions = ["redeliver"]

    @admin.action(description="Redeliver selected deliveries now")
    def redeliver(self, request, queryset):
        for delivery in queryset:
            delivery_redeliver(user=request.user, endpoint_id=delivery.endpoint_id, delivery_id=delivery.pk)
        self.message_user(request, f"{queryset.count()} delivery(ies) queued again at {timezone.now():%H:%M:%S}.")
