"""The outbox in the ops console: rows are written only by the producers (events.outbox)."""

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from events.models import OutboxEvent


@admin.register(OutboxEvent)
class OutboxEventAdmin(admin.ModelAdmin):
    list_display = ["id", "event_id", "topic", "key", "state", "attempts", "created_at", "published_at"]
    list_filter = ["state", "topic"]
    search_fields = ["event_id", "=key"]
    search_help_text = "An event id (or part of one), or the exact transaction hash."
    ordering = ["-id"]
    show_full_result_count = False
    actions = ["retry"]
    fields = (
        "event_id",
        "topic",
        "key",
        "state",
        "attempts",
        "last_error",
        "available_at",
        "created_at",
        "published_at",
        "headers",
        "payload",
    )
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: OutboxEvent | None = None) -> bool:
        return False

    @admin.action(description="Retry: publish the selected events again", permissions=["change"])
    def retry(self, request: HttpRequest, queryset: QuerySet[OutboxEvent]) -> None:
        # The relay picks the rows up on its next pass; consumers deduplicate any second copy on event_id.
        count = queryset.update(state=OutboxEvent.State.PENDING, available_at=None, published_at=None)
        self.message_user(request, f"{count} event(s) queued for the relay.", messages.SUCCESS)
