"""Currencies in the ops console: editable, except what existing money depends on."""

from django import forms
from django.contrib import admin

from currencies.models import Currency


class CurrencyForm(forms.ModelForm):
    class Meta:
        model = Currency
        fields = ["code", "name", "symbol", "decimals", "is_active", "is_default", "max_transfer_amount"]

    def clean_code(self) -> str:
        return self.cleaned_data["code"].strip().upper()

    def clean_decimals(self) -> int:
        decimals = self.cleaned_data["decimals"]
        current = self.instance
        # Fewer places would make existing balances unrepresentable in the currency.
        if current.pk and decimals < current.decimals and current.wallets.exists():
            raise forms.ValidationError("decimals cannot be lowered once wallets hold this currency")
        return decimals


@admin.register(Currency)
class CurrencyAdmin(admin.ModelAdmin):
    form = CurrencyForm
    list_display = ["id", "code", "name", "symbol", "decimals", "is_active", "is_default", "max_transfer_amount"]
    list_filter = ["is_active", "is_default"]
    search_fields = ["code", "name"]
    ordering = ["id"]

    def get_readonly_fields(self, request, obj=None):
        # The code is part of every receipt hash and event: it is fixed once the currency exists.
        return ["code"] if obj is not None else []

    def has_delete_permission(self, request, obj=None) -> bool:
        # Deactivate instead; wallets and the ledger keep referring to it.
        return False
