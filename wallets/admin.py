"""Wallets in the ops console.

Balances are read-only here: the only way staff move money is the "deposit" and "withdraw"
actions, which go through ``transactions.services`` and so leave a transaction, balance-history
rows and an outbox event like every other movement.
"""

import uuid

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.template.response import TemplateResponse

from transactions.services import Idempotency, deposit_create, withdrawal_create
from wallet_project.core import errors
from wallet_project.core.idempotency import request_fingerprint
from wallet_project.core.money import format_amount, parse_amount
from wallet_project.core.permissions import can_move_money
from wallets.models import Wallet


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


@admin.register(Wallet)
class WalletAdmin(admin.ModelAdmin):
    list_display = ["id", "user", "currency", "display_balance", "updated_at"]
    list_filter = ["currency"]
    search_fields = ["=user__username", "=user__email"]
    search_help_text = "The exact username or email of the owner."
    list_select_related = ["user", "currency"]
    ordering = ["id"]
    fields = ("user", "currency", "display_balance", "audit_head", "created_at", "updated_at")
    readonly_fields = fields
    actions = ["deposit", "withdraw"]

    @admin.display(description="balance", ordering="balance")
    def display_balance(self, obj: Wallet) -> str:
        return format_amount(obj.balance)

    # Wallets are opened through the API (wallet_open) and never edited or deleted here.
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

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
