"""Transactions in the ops console: read-only (the ledger is append-only), searchable, exportable.

Also the only way staff move money: the wallet admin's "deposit" and "withdraw" actions and the
transaction admin's "reverse", which go through ``transactions.services`` and so leave a
transaction, balance-history rows and an outbox event like every other movement; and the
idempotency keys those movements store.
"""

import uuid
from decimal import Decimal

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from currencies.money import format_amount, parse_amount
from transactions.idempotency import request_fingerprint
from transactions.models import IdempotencyKey, Transaction
from transactions.services import Idempotency, deposit_create, reversal_create, withdrawal_create
from wallet_project.core import errors
from wallet_project.core.admin_base import ReadOnlyAdmin
from wallet_project.core.exports import csv_response
from wallet_project.core.permissions import can_move_money
from wallets.admin import WalletAdmin
from wallets.models import Wallet

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
    actions = ["export_csv", "reverse_selected"]
    change_form_template = "admin/transactions/transaction/change_form.html"
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
        "reverses",
        "reversed_by",
    )
    readonly_fields = fields

    @admin.display(description="hash", ordering="hash")
    def short_hash(self, obj: Transaction) -> str:
        return f"{obj.hash[:16]}…"

    @admin.display(description="amount", ordering="amount")
    def display_amount(self, obj: Transaction) -> str:
        return format_amount(obj.amount)

    @admin.display(description="reversed by")
    def reversed_by(self, obj: Transaction) -> str:
        reversals = list(obj.reversals.order_by("id"))
        if not reversals:
            return "-"
        total = sum((r.amount for r in reversals), Decimal(0))
        rows = format_html_join(
            ", ",
            '<a href="{}">{}…</a> ({})',
            (
                (reverse("admin:transactions_transaction_change", args=[r.pk]), r.hash[:16], format_amount(r.amount))
                for r in reversals
            ),
        )
        return format_html("{} of {}: {}", format_amount(total), format_amount(obj.amount), rows)

    @admin.action(description="Export selected transactions as CSV", permissions=["view"])
    def export_csv(self, request, queryset):
        rows = queryset.select_related("currency", "from_user", "to_user", "created_by").order_by("-created_at", "-id")
        return csv_response("transactions", CSV_COLUMNS, rows.iterator(chunk_size=2000))

    # -- Reversals: the one change staff make to the ledger, and it is a new transaction -------------

    def has_movement_permission(self, request) -> bool:
        return can_move_money(request.user)

    def get_urls(self):
        reverse_view = self.admin_site.admin_view(self.reverse_view)
        return [
            path("<path:object_id>/reverse/", reverse_view, name="transactions_transaction_reverse"),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {**(extra_context or {}), "can_reverse": self.has_movement_permission(request)}
        return super().change_view(request, object_id, form_url, extra_context)

    @admin.action(description="Reverse the selected transaction", permissions=["movement"])
    def reverse_selected(self, request, queryset):
        selected = list(queryset.values_list("pk", flat=True)[:2])
        if len(selected) != 1:
            self.message_user(request, "Select one transaction to reverse.", messages.WARNING)
            return None
        return HttpResponseRedirect(reverse("admin:transactions_transaction_reverse", args=[selected[0]]))

    def reverse_view(self, request, object_id: str):
        """The confirmation page (amount, memo) of a reversal, and its submission."""
        if not (self.has_view_permission(request) and self.has_movement_permission(request)):
            raise PermissionDenied
        original = get_object_or_404(
            Transaction.objects.select_related("currency", "from_user", "to_user"), pk=object_id
        )
        change_url = reverse("admin:transactions_transaction_change", args=[original.pk])
        if original.type == Transaction.Type.REVERSAL:
            self.message_user(request, "A reversal cannot be reversed.", messages.ERROR)
            return HttpResponseRedirect(change_url)
        if request.method == "POST":
            form = ReversalForm(request.POST)
            if form.is_valid():
                self._apply_reversal(request, original, form.cleaned_data)
                return HttpResponseRedirect(change_url)
        else:
            form = ReversalForm(initial={"token": uuid.uuid4().hex})
        reversed_amount = sum(original.reversals.values_list("amount", flat=True), Decimal(0))
        context = {
            **self.admin_site.each_context(request),
            "title": f"Reverse {original.type} {original.hash[:16]}…",
            "opts": self.model._meta,
            "original": original,
            "amount": format_amount(original.amount),
            "reversed_amount": format_amount(reversed_amount),
            "remaining": format_amount(original.amount - reversed_amount),
            "form": form,
            "change_url": change_url,
        }
        return TemplateResponse(request, "admin/transactions/transaction/reverse.html", context)

    def _apply_reversal(self, request, original: Transaction, data: dict) -> None:
        amount = data["amount"]
        scope = "admin-reversal"
        body = {"transaction": original.hash, "amount": amount, "memo": data["memo"]}
        idempotency = Idempotency(
            key=f"admin:{data['token']}:reversal:{original.pk}",
            scope=scope,
            fingerprint=request_fingerprint(scope, body),
        )
        try:
            tx = reversal_create(
                original=original,
                amount=amount,
                memo=data["memo"],
                created_by_id=request.user.pk,
                idempotency=idempotency,
            )
        except errors.ApiError as exc:
            self.message_user(request, f"Not reversed: {exc.message}", messages.ERROR)
            return
        note = " (already applied by an earlier submission)" if getattr(tx, "replayed", False) else ""
        self.message_user(
            request,
            f"Reversed {format_amount(tx.amount)} {original.currency.code} of {original.hash}: "
            f"transaction {tx.hash}{note}",
            messages.SUCCESS,
        )


class MovementForm(forms.Form):
    amount = forms.CharField(max_length=40, help_text='A plain decimal number such as "250" or "0.005".')
    memo = forms.CharField(max_length=256, required=False)
    # One token per rendered form: submitting the same page twice replays instead of paying twice.
    token = forms.CharField(widget=forms.HiddenInput, max_length=64)

    def clean_amount(self):
        try:
            return parse_amount(self.cleaned_data["amount"])
        except errors.ApiError as exc:
            raise forms.ValidationError(exc.message) from exc


class ReversalForm(forms.Form):
    amount = forms.CharField(
        max_length=40, required=False, help_text="Leave empty to reverse all that remains; else a plain decimal."
    )
    memo = forms.CharField(max_length=256, help_text="Why the money goes back: recorded on the reversal.")
    # One token per rendered form: submitting the same page twice replays instead of reversing twice.
    token = forms.CharField(widget=forms.HiddenInput, max_length=64)

    def clean_amount(self):
        raw = self.cleaned_data["amount"].strip()
        if not raw:
            return None
        try:
            return parse_amount(raw)
        except errors.ApiError as exc:
            raise forms.ValidationError(exc.message) from exc


@admin.register(Wallet)
class WalletMovementAdmin(WalletAdmin):
    """The read-only wallet admin plus the two actions that move money."""

    actions = ["deposit", "withdraw"]

    def has_movement_permission(self, request) -> bool:
        return can_move_money(request.user)

    @admin.action(description="Deposit into selected wallets", permissions=["movement"])
    def deposit(self, request, queryset):
        return self._movement(request, queryset, action="deposit", service=deposit_create, verb="Deposit")

    @admin.action(description="Withdraw from selected wallets", permissions=["movement"])
    def withdraw(self, request, queryset):
        return self._movement(request, queryset, action="withdraw", service=withdrawal_create, verb="Withdraw")

    def _movement(self, request, queryset, *, action: str, service, verb: str):
        wallets = list(queryset.select_related("user", "currency").order_by("id"))
        if "apply" in request.POST:
            form = MovementForm(request.POST)
            if form.is_valid():
                self._apply(request, wallets, service=service, scope=f"admin-{action}", data=form.cleaned_data)
                return None  # back to the changelist, where the messages show
        else:
            form = MovementForm(initial={"token": uuid.uuid4().hex})
        context = {
            **self.admin_site.each_context(request),
            "title": f"{verb} — {len(wallets)} wallet(s)",
            "opts": self.model._meta,
            "form": form,
            "wallets": [(w, format_amount(w.balance)) for w in wallets],
            "action": action,
            "verb": verb,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/wallets/wallet/movement.html", context)

    def _apply(self, request, wallets: list[Wallet], *, service, scope: str, data: dict) -> None:
        for wallet in wallets:
            body = {"user_id": wallet.user_id, "currency": wallet.currency.code, "amount": data["amount"]}
            idempotency = Idempotency(
                key=f"admin:{data['token']}:{wallet.pk}",
                scope=scope,
                fingerprint=request_fingerprint(scope, {**body, "memo": data["memo"]}),
            )
            try:
                tx = service(
                    user_id=wallet.user_id,
                    currency=wallet.currency,
                    amount=data["amount"],
                    memo=data["memo"],
                    created_by_id=request.user.pk,
                    idempotency=idempotency,
                )
            except errors.ApiError as exc:
                self.message_user(request, f"{wallet.user} {wallet.currency}: {exc.message}", messages.ERROR)
                continue
            note = " (already applied by an earlier submission)" if getattr(tx, "replayed", False) else ""
            self.message_user(
                request,
                f"{wallet.user} {wallet.currency}: {tx.type} of {format_amount(tx.amount)}, "
                f"transaction {tx.hash}{note}",
                messages.SUCCESS,
            )


@admin.register(IdempotencyKey)
class IdempotencyKeyAdmin(admin.ModelAdmin):
    list_display = ["key", "user", "scope", "transaction", "error_code", "created_at"]
    list_filter = ["scope", "created_at"]
    search_fields = ["=key", "=user__username"]
    list_select_related = ["user", "transaction"]
    ordering = ["-created_at"]
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: IdempotencyKey | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: IdempotencyKey | None = None) -> bool:
        return False
