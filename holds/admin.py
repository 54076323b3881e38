"""Holds and withdrawal requests in the ops console.

Holds are read-only here: they change only through ``holds.services`` (the API, the expiry sweeper).
Withdrawal requests are the approval queue: pending first, oldest first, and two actions,
"Approve selected" and "Reject selected", that call ``withdrawal_request_approve`` /
``withdrawal_request_reject`` once per request, each in its own transaction, so one refusal (say a
request someone else decided a moment ago) stops nothing else. Amounts, addresses and decisions are
never edited in a form.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import timedelta

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db import DatabaseError
from django.db.models import Case, Count, F, IntegerField, Q, QuerySet, Value, When
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from currencies.money import format_amount
from holds.models import Hold, HoldCapture, WithdrawalRequest
from holds.services import can_decide_withdrawals, withdrawal_request_approve, withdrawal_request_reject
from wallet_project.core import errors
from wallet_project.core.admin_base import ReadOnlyAdmin

logger = logging.getLogger(__name__)

# One decision on one request, in a transaction of its own (a service call).
Decision = Callable[[WithdrawalRequest, dict], WithdrawalRequest]


class UidSearchMixin:
    """A search term that is a UUID finds the row by ``uid`` (its unique index); any other term goes
    through ``search_fields``. Django's own ``=uid`` would compare the uid cast to text, row by row."""

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str):
        term = search_term.strip()
        try:
            uid = uuid.UUID(term)
        except ValueError:
            return super().get_search_results(request, queryset, search_term)  # type: ignore[misc]
        return queryset.filter(uid=uid), False


class EffectiveStatusFilter(admin.SimpleListFilter):
    """The status a reader sees: an active hold past ``expires_at`` is expired, swept or not."""

    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return Hold.Status.choices

    def queryset(self, request, queryset):
        now = timezone.now()
        past_expiry = Q(status=Hold.Status.ACTIVE, expires_at__lte=now)
        match self.value():
            case Hold.Status.ACTIVE:
                return queryset.filter(status=Hold.Status.ACTIVE).exclude(expires_at__lte=now)
            case Hold.Status.EXPIRED:
                return queryset.filter(Q(status=Hold.Status.EXPIRED) | past_expiry)
            case Hold.Status.CAPTURED | Hold.Status.VOIDED as status:
                return queryset.filter(status=status)
        return queryset


class AgeFilter(admin.SimpleListFilter):
    """How long ago the row was created, in the buckets an operator triages by."""

    title = "age"
    parameter_name = "age"
    BUCKETS = {
        "lt1h": (None, timedelta(hours=1)),
        "1h-24h": (timedelta(hours=1), timedelta(hours=24)),
        "1d-7d": (timedelta(days=1), timedelta(days=7)),
        "gt7d": (timedelta(days=7), None),
    }

    def lookups(self, request, model_admin):
        return [
            ("lt1h", "under 1 hour"),
            ("1h-24h", "1 to 24 hours"),
            ("1d-7d", "1 to 7 days"),
            ("gt7d", "over 7 days"),
        ]

    def queryset(self, request, queryset):
        bucket = self.BUCKETS.get(self.value() or "")
        if bucket is None:
            return queryset
        now = timezone.now()
        younger, older = bucket
        if younger is not None:
            queryset = queryset.filter(created_at__lte=now - younger)
        if older is not None:
            queryset = queryset.filter(created_at__gt=now - older)
        return queryset


class UserFilter(admin.SimpleListFilter):
    """By the user a row belongs to: the choices are the users with the most rows the other filters leave
    (at most ``LIMIT``); any user's id works in the URL (``?user=<id>``), as the dashboard's links use."""

    title = "user"
    parameter_name = "user"
    field = "user"
    LIMIT = 15

    def lookups(self, request, model_admin):
        # The busiest owners among the pending rows (requests) / active ones (holds): who needs attention.
        rows = (
            model_admin.get_queryset(request)
            .filter(status="pending" if model_admin.model is WithdrawalRequest else Hold.Status.ACTIVE)
            .values_list(f"{self.field}_id", f"{self.field}__username")
            .annotate(count=Count("id"))
            .order_by("-count", f"{self.field}__username")[: self.LIMIT]
        )
        lookups = [(str(pk), f"{username} ({count})") for pk, username, count in rows]
        value = self.value()
        if value and value not in {pk for pk, _ in lookups}:
            lookups.append((value, f"user {value}"))
        return lookups

    def queryset(self, request, queryset):
        value = self.value()
        if not value:
            return queryset
        if not value.isdigit():
            return queryset.none()
        return queryset.filter(**{f"{self.field}_id": int(value)})


class PayerFilter(UserFilter):
    title = "payer"
    parameter_name = "payer"
    field = "payer"


class ExpiringFilter(admin.SimpleListFilter):
    """Active holds about to expire (the dashboard's "expiring soon": ``HOLDS_EXPIRING_SOON_MINUTES``)."""

    title = "expiring"
    parameter_name = "expiring"

    def lookups(self, request, model_admin):
        return [("soon", f"within {settings.HOLDS_EXPIRING_SOON_MINUTES} min")]

    def queryset(self, request, queryset):
        if self.value() != "soon":
            return queryset
        now = timezone.now()
        soon = now + timedelta(minutes=settings.HOLDS_EXPIRING_SOON_MINUTES)
        return queryset.filter(status=Hold.Status.ACTIVE, expires_at__gt=now, expires_at__lte=soon)


class KindFilter(admin.SimpleListFilter):
    title = "kind"
    parameter_name = "kind"

    def lookups(self, request, model_admin):
        return [("hold", "hold"), ("withdrawal", "behind a withdrawal request")]

    def queryset(self, request, queryset):
        if self.value() == "hold":
            return queryset.filter(withdrawal_request__isnull=True)
        if self.value() == "withdrawal":
            return queryset.filter(withdrawal_request__isnull=False)
        return queryset


def _transaction_link(tx) -> str:
    if tx is None:
        return "–"
    url = reverse("admin:transactions_transaction_change", args=[tx.pk])
    return format_html('<a href="{}">{}</a>', url, tx.hash)


class HoldCaptureInline(admin.TabularInline):
    """The captures of a hold, each a completed transaction; written only by the capture services."""

    model = HoldCapture
    fields = ("transaction_link", "display_amount", "created_by", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ["id"]

    @admin.display(description="transaction")
    def transaction_link(self, obj: HoldCapture) -> str:
        return _transaction_link(obj.transaction)

    @admin.display(description="amount")
    def display_amount(self, obj: HoldCapture) -> str:
        return format_amount(obj.amount)

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("transaction", "created_by")


@admin.register(Hold)
class HoldAdmin(UidSearchMixin, ReadOnlyAdmin):
    list_display = [
        "id",
        "display_status",
        "payer",
        "payee",
        "currency",
        "display_amount",
        "display_captured",
        "display_remaining",
        "expires_at",
        "created_at",
    ]
    list_filter = [EffectiveStatusFilter, ExpiringFilter, KindFilter, "currency", AgeFilter, PayerFilter, "created_at"]
    search_fields = ["=payer__username", "=payee__username"]
    search_help_text = "A hold's uid, or the exact username of its payer or payee."
    list_select_related = ["payer", "payee", "currency"]
    ordering = ["-id"]
    show_full_result_count = False
    inlines = [HoldCaptureInline]
    fields = (
        "uid",
        "display_status",
        "recorded_status",
        "payer",
        "payee",
        "wallet",
        "currency",
        "display_amount",
        "display_captured",
        "display_remaining",
        "memo",
        "expires_at",
        "withdrawal_request_link",
        "created_by",
        "trace_id",
        "created_at",
        "updated_at",
        "closed_at",
    )
    readonly_fields = fields

    @admin.display(description="status", ordering="status")
    def display_status(self, obj: Hold) -> str:
        return obj.effective_status(timezone.now())

    @admin.display(description="recorded status")
    def recorded_status(self, obj: Hold) -> str:
        # Differs from the status above for an expired hold whose release expire_holds has not recorded yet.
        return obj.status

    @admin.display(description="amount", ordering="amount")
    def display_amount(self, obj: Hold) -> str:
        return format_amount(obj.amount)

    @admin.display(description="captured", ordering="captured")
    def display_captured(self, obj: Hold) -> str:
        return format_amount(obj.captured)

    @admin.display(description="remaining")
    def display_remaining(self, obj: Hold) -> str:
        return format_amount(obj.remaining)

    @admin.display(description="withdrawal request")
    def withdrawal_request_link(self, obj: Hold) -> str:
        request = WithdrawalRequest.objects.filter(hold=obj).only("id", "status").first()
        if request is None:
            return "–"
        url = reverse("admin:holds_withdrawalrequest_change", args=[request.pk])
        return format_html('<a href="{}">{}</a>', url, request)


class DecisionForm(forms.Form):
    """The confirmation page's form; ``one_request``: whether a single request is being decided."""

    def __init__(self, *args, one_request: bool, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.one_request = one_request


class ApproveForm(DecisionForm):
    network_tx_id = forms.CharField(
        max_length=128,
        required=False,
        label="Network transaction id",
        help_text="Optional: the id of the on-chain transaction that sent the funds.",
    )

    def __init__(self, *args, one_request: bool, **kwargs) -> None:
        super().__init__(*args, one_request=one_request, **kwargs)
        if not one_request:  # one network transaction per request: the field only makes sense for one
            del self.fields["network_tx_id"]


class RejectForm(DecisionForm):
    reason = forms.CharField(
        max_length=512,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Recorded with the decision and shown to the owner of each request.",
    )


# The queue: pending requests first, oldest first; then the decided ones, most recently decided first.
PENDING_FIRST = Case(When(status=WithdrawalRequest.Status.PENDING, then=Value(0)), default=Value(1),
                     output_field=IntegerField())  # fmt: skip
PENDING_BY_AGE = Case(When(status=WithdrawalRequest.Status.PENDING, then=F("created_at")))


@admin.register(WithdrawalRequest)
class WithdrawalRequestAdmin(UidSearchMixin, ReadOnlyAdmin):
    list_display = [
        "id",
        "status",
        "user",
        "currency",
        "display_amount",
        "address",
        "network",
        "created_at",
        "decided_by",
        "decided_at",
    ]
    list_filter = ["status", "currency", AgeFilter, UserFilter, "created_at"]
    search_fields = ["=address", "=user__username"]
    search_help_text = "A request's uid, the exact destination address, or the owner's exact username."
    list_select_related = ["user", "currency", "decided_by"]
    ordering = [PENDING_FIRST.asc(), PENDING_BY_AGE.asc(), F("decided_at").desc(nulls_last=True), "-id"]
    show_full_result_count = False
    actions = ["approve_selected", "reject_selected"]
    fields = (
        "uid",
        "status",
        "user",
        "currency",
        "display_amount",
        "address",
        "network",
        "memo",
        "hold_link",
        "transaction_link",
        "network_tx_id",
        "reason",
        "decided_by",
        "decided_at",
        "created_at",
        "updated_at",
    )
    readonly_fields = fields

    @admin.display(description="amount", ordering="amount")
    def display_amount(self, obj: WithdrawalRequest) -> str:
        return format_amount(obj.amount)

    @admin.display(description="hold")
    def hold_link(self, obj: WithdrawalRequest) -> str:
        url = reverse("admin:holds_hold_change", args=[obj.hold_id])
        return format_html('<a href="{}">hold {}</a>', url, obj.hold_id)

    @admin.display(description="withdrawal transaction")
    def transaction_link(self, obj: WithdrawalRequest) -> str:
        return _transaction_link(obj.transaction)

    def has_approve_permission(self, request: HttpRequest) -> bool:
        return can_decide_withdrawals(request.user)

    @admin.action(description="Approve selected withdrawal requests", permissions=["approve"])
    def approve_selected(self, request: HttpRequest, queryset: QuerySet[WithdrawalRequest]):
        def approve(withdrawal: WithdrawalRequest, data: dict) -> WithdrawalRequest:
            return withdrawal_request_approve(
                request_id=withdrawal.pk, actor=request.user, network_tx_id=data.get("network_tx_id", "")
            )

        return self._decide(request, queryset, action="approve_selected", form_class=ApproveForm, verb="Approve",
                            decide=approve)  # fmt: skip

    @admin.action(description="Reject selected withdrawal requests", permissions=["approve"])
    def reject_selected(self, request: HttpRequest, queryset: QuerySet[WithdrawalRequest]):
        def reject(withdrawal: WithdrawalRequest, data: dict) -> WithdrawalRequest:
            return withdrawal_request_reject(request_id=withdrawal.pk, actor=request.user, reason=data["reason"])

        return self._decide(request, queryset, action="reject_selected", form_class=RejectForm, verb="Reject",
                            decide=reject)  # fmt: skip

    def _decide(self, request: HttpRequest, queryset: QuerySet[WithdrawalRequest], *, action: str,
                form_class: type[DecisionForm], verb: str, decide: Decision):  # fmt: skip
        """The confirmation page (the selected requests and the form), then one decision per request."""
        selected = list(queryset.select_related("user", "currency").order_by("id"))
        one = len(selected) == 1
        if "apply" in request.POST:
            form = form_class(request.POST, one_request=one)
            if form.is_valid():
                for withdrawal in selected:
                    self._apply(request, withdrawal, decide=decide, data=form.cleaned_data)
                return None  # back to the changelist, where the messages show
        else:
            form = form_class(one_request=one)
        context = {
            **self.admin_site.each_context(request),
            "title": f"{verb} {len(selected)} withdrawal request(s)?",
            "opts": self.model._meta,
            "form": form,
            "requests": [(w, format_amount(w.amount)) for w in selected],
            "not_pending": sum(w.status != WithdrawalRequest.Status.PENDING for w in selected),
            "action": action,
            "verb": verb,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/holds/withdrawalrequest/decision.html", context)

    def _apply(self, request: HttpRequest, withdrawal: WithdrawalRequest, *, decide: Decision, data: dict) -> None:
        label = (
            f"Withdrawal request {withdrawal.pk} ({withdrawal.user}, "
            f"{format_amount(withdrawal.amount)} {withdrawal.currency.code})"
        )
        try:
            decided = decide(withdrawal, data)
        except errors.WithdrawalRequestNotPending as exc:
            status = WithdrawalRequest.objects.values_list("status", flat=True).get(pk=withdrawal.pk)
            self.message_user(request, f"{label}: not changed, it is already {status} ({exc.code})", messages.ERROR)
            return
        except errors.ApiError as exc:
            self.message_user(request, f"{label}: not changed: {exc.message} ({exc.code})", messages.ERROR)
            return
        except DatabaseError:
            logger.exception("withdrawal request decision failed", extra={"request_id": withdrawal.pk})
            self.message_user(request, f"{label}: not changed: database error, try again", messages.ERROR)
            return
        if decided.status == WithdrawalRequest.Status.COMPLETED:
            assert decided.transaction is not None
            note = f", network transaction {decided.network_tx_id}" if decided.network_tx_id else ""
            text = f"{label}: approved; withdrawal transaction {decided.transaction.hash}{note}"
        else:
            text = f"{label}: rejected ({decided.reason})"
        self.message_user(request, text, messages.SUCCESS)
