"""Balance history in the ops console: read-only (append-only, hash-chained), searchable, exportable."""

from django.contrib import admin

from audit.models import BalanceHistory, Checkpoint
from currencies.money import format_amount
from wallet_project.core.admin_base import ReadOnlyAdmin
from wallet_project.core.exports import csv_response

CSV_COLUMNS = [
    ("id", lambda e: e.pk),
    ("wallet_id", lambda e: e.wallet_id),
    ("user_id", lambda e: e.user_id),
    ("username", lambda e: e.user.username),
    ("currency", lambda e: e.wallet.currency.code),
    ("transaction_hash", lambda e: e.transaction.hash),
    ("transaction_type", lambda e: e.transaction.type),
    ("delta", lambda e: format_amount(e.delta)),
    ("balance_before", lambda e: format_amount(e.balance_before)),
    ("balance_after", lambda e: format_amount(e.balance_after)),
    ("prev_hash", lambda e: e.prev_hash),
    ("entry_hash", lambda e: e.entry_hash),
    ("created_at", lambda e: e.created_at),
]


@admin.register(BalanceHistory)
class BalanceHistoryAdmin(ReadOnlyAdmin):
    list_display = ["id", "user", "currency", "display_delta", "display_after", "transaction_type", "created_at"]
    list_filter = ["transaction__type", "wallet__currency", "created_at"]
    search_fields = ["transaction__hash__exact", "=user__username", "entry_hash__exact"]
    search_help_text = "A transaction hash, an entry hash, or the exact username."
    list_select_related = ["user", "wallet__currency", "transaction"]
    ordering = ["-id"]
    show_full_result_count = False
    actions = ["export_csv"]
    fields = (
        "wallet",
        "user",
        "transaction",
        "display_delta",
        "display_before",
        "display_after",
        "prev_hash",
        "entry_hash",
        "created_at",
    )
    readonly_fields = fields

    @admin.display(description="currency", ordering="wallet__currency__code")
    def currency(self, obj: BalanceHistory) -> str:
        return obj.wallet.currency.code

    @admin.display(description="type", ordering="transaction__type")
    def transaction_type(self, obj: BalanceHistory) -> str:
        return obj.transaction.type if obj.transaction else "hold"

    @admin.display(description="delta", ordering="delta")
    def display_delta(self, obj: BalanceHistory) -> str:
        return format_amount(obj.delta)

    @admin.display(description="balance before")
    def display_before(self, obj: BalanceHistory) -> str:
        return format_amount(obj.balance_before)

    @admin.display(description="balance after")
    def display_after(self, obj: BalanceHistory) -> str:
        return format_amount(obj.balance_after)

    @admin.action(description="Export selected entries as CSV", permissions=["view"])
    def export_csv(self, request, queryset):
        rows = queryset.select_related("user", "wallet__currency", "transaction").order_by("id")
        return csv_response("balance-history", CSV_COLUMNS, rows.iterator(chunk_size=2000))


@admin.register(Checkpoint)
class CheckpointAdmin(ReadOnlyAdmin):
    """Signed ledger checkpoints (``manage.py checkpoint``): what ``reconcile`` proves against."""

    list_display = ("id", "created_at", "last_transaction_id", "transaction_count", "wallet_count", "key_id")
    ordering = ("-id",)
    fields = (
        "created_at",
        "last_transaction_id",
        "transaction_count",
        "wallet_count",
        "heads_digest",
        "supply",
        "payload",
        "signature",
        "key_id",
    )
    readonly_fields = fields
