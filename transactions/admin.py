"""Transactions in the ops console: read-only (the ledger is append-only), searchable, exportable."""

from django.contrib import admin

from transactions.models import Transaction
from wallet_project.core.exports import csv_response
from wallet_project.core.money import format_amount

CSV_COLUMNS = [
    ("id", lambda tx: tx.pk),
    ("hash", lambda tx: tx.hash),
    ("type", lambda tx: tx.type),
    ("status", lambda tx: tx.status),
    ("currency", lambda tx: tx.currency.code),
    ("amount", lambda tx: format_amount(tx.amount)),
    ("from_user_id", lambda tx: tx.from_user_id),
    ("from_username", lambda tx: tx.from_user.username if tx.from_user else ""),
    ("to_user_id", lambda tx: tx.to_user_id),
    ("to_username", lambda tx: tx.to_user.username if tx.to_user else ""),
    ("memo", lambda tx: tx.memo),
    ("created_by", lambda tx: tx.created_by.username if tx.created_by else ""),
    ("trace_id", lambda tx: tx.trace_id),
    ("created_at", lambda tx: tx.created_at),
    ("signature", lambda tx: tx.signature),
]


class ReadOnlyAdmin(admin.ModelAdmin):
    """Append-only rows: staff can look, search and export; nobody adds, edits or deletes here."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Transaction)
class TransactionAdmin(ReadOnlyAdmin):
    list_display = ["short_hash", "type", "currency", "display_amount", "from_user", "to_user", "created_at"]
    list_filter = ["type", "currency", "created_at"]
    # Whole values, not substrings: the hash lookup uses its unique index on a large table.
    search_fields = ["hash__exact", "=from_user__username", "=to_user__username"]
    search_help_text = "A transaction hash, or the exact username of the sender or recipient."
    list_select_related = ["currency", "from_user", "to_user"]
    ordering = ["-created_at", "-id"]
    show_full_result_count = False
    actions = ["export_csv"]
    fields = (
        "hash",
        "signature",
        "uid",
        "type",
        "status",
        "currency",
        "display_amount",
        "from_user",
        "from_wallet",
        "to_user",
        "to_wallet",
        "memo",
        "created_by",
        "trace_id",
        "created_at",
    )
    readonly_fields = fields

    @admin.display(description="hash", ordering="hash")
    def short_hash(self, obj: Transaction) -> str:
        return f"{obj.hash[:16]}…"

    @admin.display(description="amount", ordering="amount")
    def display_amount(self, obj: Transaction) -> str:
        return format_amount(obj.amount)

    @admin.action(description="Export selected transactions as CSV", permissions=["view"])
    def export_csv(self, request, queryset):
        rows = queryset.select_related("currency", "from_user", "to_user", "created_by").order_by("-created_at", "-id")
        return csv_response("transactions", CSV_COLUMNS, rows.iterator(chunk_size=2000))
