"""Users in the ops console, with their wallets inline (balances read-only)."""

from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.http import HttpResponseRedirect

from accounts.models import User
from accounts.services import user_revoke_tokens
from currencies.money import format_amount
from wallets.models import Wallet


class WalletInline(admin.TabularInline):
    """Balances change only through the ledger services, never by editing a row here."""

    model = Wallet
    fields = ("currency", "display_balance", "created_at", "updated_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True
    ordering = ["currency_id"]

    @admin.display(description="balance")
    def display_balance(self, obj: Wallet) -> str:
        return format_amount(obj.balance)

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("currency")


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    inlines = [WalletInline]
    list_display = ["id", "username", "email", "is_active", "is_staff", "date_joined"]
    list_filter = ["is_active", "is_staff", "is_superuser"]
    search_fields = ["username", "email"]
    ordering = ["id"]

    def user_change_password(self, request, id, form_url=""):
        response = super().user_change_password(request, id, form_url)
        # A new password must also end the sessions of whoever knew the old one: every access and
        # refresh token issued before now stops working, as with POST /users/me/password.
        changed = (  # redirected, and not back to the form ("try again")
            isinstance(response, HttpResponseRedirect) and response.url != request.get_full_path()
        )
        if request.method == "POST" and changed:
            user = self.get_object(request, unquote(id))
            if user is not None:
                user_revoke_tokens(user=user)
        return response
