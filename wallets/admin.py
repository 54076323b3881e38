"""Wallets in the ops console: read-only, with a wallet's statement as CSV.

Balances are never edited here. The money-moving "deposit" and "withdraw" actions belong to the
ledger: ``transactions/admin.py`` registers this admin with them (wallets sit below transactions).
"""

from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.urls import path, reverse
from django.utils import timezone

from currencies.money import format_amount
from wallet_project.core import errors
from wallet_project.core.exports import csv_stream_response
from wallet_project.core.params import datetime_param
from wallets.models import Wallet
from wallets.selectors import statement_csv_rows, statement_filename, statement_window, wallet_statement


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

    # -- The statement: the API's (GET /wallet/{user_id}/statement?format=csv), from the same selectors --

    def get_urls(self):
        statement = self.admin_site.admin_view(self.statement_csv)
        return [path("<path:object_id>/statement.csv", statement, name="wallets_wallet_statement"), *super().get_urls()]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        """The change page links the statement of this month and of the last (any window: ?from=&to=)."""
        this_month = timezone.now().astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        last_month = (this_month.replace(day=1) - timedelta(days=1)).replace(day=1)
        url = reverse("admin:wallets_wallet_statement", args=[object_id])

        def link(start: datetime, end: datetime | None) -> str:
            window = {"from": start.isoformat().replace("+00:00", "Z")}
            if end is not None:
                window["to"] = end.isoformat().replace("+00:00", "Z")
            return f"{url}?{urlencode(window)}"

        statement_links = [
            ("Statement (CSV), this month", link(this_month, None)),
            ("Statement (CSV), last month", link(last_month, this_month)),
        ]
        extra_context = {**(extra_context or {}), "statement_links": statement_links}
        return super().change_view(request, object_id, form_url, extra_context)

    def statement_csv(self, request, object_id: str):
        """The wallet's statement for ?from=&to= (the API's defaults and limits) as a streamed CSV."""
        wallet = self.get_object(request, object_id)
        if wallet is None or not self.has_view_permission(request, wallet):
            raise PermissionDenied
        try:
            start, end = statement_window(
                datetime_param(request.GET, "from"), datetime_param(request.GET, "to"), now=timezone.now()
            )
        except errors.ApiError as exc:
            self.message_user(request, f"Statement: {exc.message}", messages.ERROR)
            return HttpResponseRedirect(reverse("admin:wallets_wallet_change", args=[wallet.pk]))
        statement = wallet_statement(wallet=wallet, start=start, end=end)
        return csv_stream_response(statement_filename(statement), statement_csv_rows(statement))
