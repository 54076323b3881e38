"""The audit records in the ops console, all read-only: balance history (append-only, hash-chained,
searchable, exportable), signed checkpoints with their signature status, and reconcile runs, with a
button that queues one for the worker (``reconcile --queued``)."""

import json

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.http import url_has_allowed_host_and_scheme

from audit.models import BalanceHistory, Checkpoint, ReconcileRun
from audit.selectors import checkpoint_status
from audit.services import reconcile_run_queue
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

    list_display = (
        "id",
        "created_at",
        "signature_status",
        "last_transaction_id",
        "transaction_count",
        "wallet_count",
        "key_id",
    )
    ordering = ("-id",)
    show_full_result_count = False
    fields = (
        "signature_status",
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

    @admin.display(description="signature")
    def signature_status(self, obj: Checkpoint) -> str:
        # Verified as reconcile verifies it: the signed payload under a trusted receipt key.
        if checkpoint_status(obj).signature_valid:
            return format_html('<span class="signature-valid">valid ({})</span>', obj.key_id[:12])
        return format_html(
            '<strong class="signature-invalid">{}</strong>', "INVALID: does not verify with any trusted key"
        )


@admin.register(ReconcileRun)
class ReconcileRunAdmin(ReadOnlyAdmin):
    """Every ``reconcile`` run, newest first; "Queue a reconcile run" asks the worker for one more."""

    list_display = ("id", "state", "outcome", "trigger", "requested_by", "queued_at", "started_at", "duration_seconds",
                    "mismatch_count")  # fmt: skip
    list_filter = ("state", "outcome", "trigger", "queued_at")
    list_select_related = ("requested_by",)
    ordering = ("-id",)
    show_full_result_count = False
    change_list_template = "admin/audit/reconcilerun/change_list.html"
    fields = (
        "state",
        "outcome",
        "trigger",
        "requested_by",
        "scope",
        "queued_at",
        "started_at",
        "finished_at",
        "duration_seconds",
        "mismatch_count",
        "checks_table",
        "mismatch_examples",
        "supply_table",
        "checkpoints",
        "error",
    )
    readonly_fields = fields

    def get_urls(self):
        queue = path("queue/", self.admin_site.admin_view(self.queue_view), name="audit_reconcilerun_queue")
        return [queue, *super().get_urls()]

    def has_queue_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("audit.queue_reconcilerun")

    def changelist_view(self, request, extra_context=None):
        extra = {"can_queue_reconcile": self.has_queue_permission(request), **(extra_context or {})}
        return super().changelist_view(request, extra_context=extra)

    def queue_view(self, request: HttpRequest):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_queue_permission(request):
            raise PermissionDenied
        assert request.user.pk is not None  # admin_view: a signed-in staff member
        run = reconcile_run_queue(requested_by_id=request.user.pk)
        self.log_addition(request, run, [{"added": {}}])
        self.message_user(
            request,
            f"Reconcile run {run.pk} queued: the reconcile worker (manage.py reconcile --queued) picks it up.",
            messages.SUCCESS,
        )
        back = request.POST.get("next") or reverse("admin:audit_reconcilerun_changelist")
        if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
            back = reverse("admin:audit_reconcilerun_changelist")
        return HttpResponseRedirect(back)

    @admin.display(description="checks")
    def checks_table(self, obj: ReconcileRun) -> str:
        if not obj.checks:
            return "–"
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            ((c["name"], c["checked"], c["mismatches"], "ok" if c["ok"] else "MISMATCH") for c in obj.checks),
        )
        return format_html("<table><tr><th>check</th><th>checked</th><th>mismatches</th><th></th></tr>{}</table>", rows)

    @admin.display(description="mismatches found (at most 20 examples per check)")
    def mismatch_examples(self, obj: ReconcileRun) -> str:
        if not obj.mismatches:
            return "none"
        return format_html("<pre>{}</pre>", json.dumps(obj.mismatches, indent=2, default=str))

    @admin.display(description="supply")
    def supply_table(self, obj: ReconcileRun) -> str:
        if not obj.supply:
            return "–"
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            ((code, t["balances"], t["held"], t["deposits"], t["withdrawals"]) for code, t in obj.supply.items()),
        )
        return format_html(
            "<table><tr><th>currency</th><th>balances</th><th>held</th><th>deposits</th><th>withdrawals</th></tr>{}</table>",
            rows,
        )
