"""Wallets in the ops console: read-only.

Balances are never edited here. The money-moving "deposit" and "withdraw" actions belong to the
ledger: ``transactions/admin.py`` registers this admin with them (wallets sit below transactions).
"""

from django.contrib import admin

from currencies.money import format_amount
from wallets.models import Wallet


class WalletAdmin(admin.ModelAdmin):
    list_display = ["id", "user", "currency", "display_balance", "display_held", "display_available", "updated_at"]
    list_filter = ["currency"]
    search_fields = ["=user__username", "=user__email"]
    search_help_text = "The exact username or email of the owner."
    list_select_related = ["user", "currency"]
    ordering = ["id"]
    fields = (
        "user",
        "currency",
        "display_balance",
        "display_held",
        "display_available",
        "audit_head",
        "created_at",
        "updated_at",
    )
    readonly_fields = fields

    @admin.display(description="balance", ordering="balance")
    def display_balance(self, obj: Wallet) -> str:
        return format_amount(obj.balance)

    # What active holds reserve, and what a spend may take (balance - held); both change only
    # through the holds services and the ledger.
    @admin.display(description="held", ordering="held")
    def display_held(self, obj: Wallet) -> str:
        return format_amount(obj.held)

    @admin.display(description="available")
    def display_available(self, obj: Wallet) -> str:
        return format_amount(obj.available)

    # Wallets are opened through the API (wallet_open) and never edited or deleted here.
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
