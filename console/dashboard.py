"""The dashboard's figures, each with the admin list behind it, read from the apps that own the data.

Nothing here computes money of its own: supply and ``held`` are the wallets' sums (what ``reconcile``
adds up), movements are the ledger's, the queue and holds are the holds app's, the outbox the events
app's, runs and checkpoints the audit app's. This module only puts them side by side and links each
figure to its filtered changelist. The whole dashboard is cached for ``CONSOLE_CACHE_SECONDS`` (the
page says "as of"); the chart's closed days, which no longer change, for a day (``_closed_days``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from urllib.parse import urlencode

from django.conf import settings
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone

from audit.models import ReconcileRun
from audit.selectors import CheckpointStatus, checkpoint_latest, reconcile_run_latest, reconcile_runs_waiting
from console.charts import Chart, daily_chart
from currencies.money import format_amount
from events.selectors import outbox_backlog
from holds.selectors import (
    CurrencyHolds,
    held_expired_by_currency,
    holds_expiring_by_currency,
    withdrawal_requests_pending_by_currency,
)
from transactions.models import Transaction
from transactions.selectors import DailyMovement, movements_by_day, movements_since
from wallets.selectors import supply_by_currency
from webhooks.selectors import webhook_health

CACHE_KEY = "console:dashboard:v1"
CHART_DAYS = 30
# A transaction stamped just before midnight may commit just after it: a day is closed (cached) only
# once the longest a transaction may run (DB_STATEMENT_TIMEOUT_MS, 15 s by default) is well past.
CLOSED_DAY_GRACE = timedelta(minutes=2)
CLOSED_DAYS_CACHE_SECONDS = 26 * 3600


def changelist(model: str, **params: object) -> str:
    """The admin list of ``app_label.model_name``, filtered by ``params`` (lookups its list_filter allows)."""
    url = reverse(f"admin:{model.replace('.', '_')}_changelist")
    return f"{url}?{urlencode({k: str(v) for k, v in params.items()})}" if params else url


def change(model: str, pk: int) -> str:
    return reverse(f"admin:{model.replace('.', '_')}_change", args=[pk])


@dataclass(frozen=True)
class Figure:
    """A number as shown, and the list behind it."""

    value: str
    url: str


@dataclass
class CurrencyRow:
    code: str
    supply: Figure
    held: Figure
    available: str
    held_expired: Figure | None  # held by holds past expiry, release not recorded yet (in ``held`` above)
    deposits_today: Figure
    deposits_today_count: int
    withdrawals_today: Figure
    withdrawals_today_count: int
    transfers_24h: Figure
    transfers_24h_count: int
    pending_withdrawals: Figure
    pending_withdrawals_count: int
    chart: Chart


@dataclass
class Dashboard:
    generated_at: datetime
    today: date
    currencies: list[CurrencyRow]
    transfers_24h_count: Figure
    outbox_pending: Figure
    outbox_oldest_at: datetime | None
    withdrawals_pending: Figure
    withdrawals_oldest_at: datetime | None
    holds_expiring: Figure
    holds_expiring_within: timedelta
    holds_expired_unreleased: Figure
    reconcile_run: ReconcileRun | None
    reconcile_waiting: int
    reconcile_url: str
    checkpoint: CheckpointStatus | None
    checkpoint_url: str
    webhooks_pending: Figure
    webhooks_oldest_at: datetime | None
    webhooks_failed_24h: Figure
    webhooks_disabled: Figure
    cached_seconds: int = 0
    chart_days: int = CHART_DAYS

    @property
    def holds_expiring_within_minutes(self) -> int:
        return int(self.holds_expiring_within.total_seconds() // 60)


def dashboard() -> Dashboard:
    """The dashboard as of now, or as of at most ``CONSOLE_CACHE_SECONDS`` ago."""
    seconds = settings.CONSOLE_CACHE_SECONDS
    if seconds <= 0:
        return build_dashboard(timezone.now())
    cached = cache.get(CACHE_KEY)
    if cached is None:
        cached = build_dashboard(timezone.now())
        cached.cached_seconds = seconds
        cache.set(CACHE_KEY, cached, seconds)
    return cached


def _closed_days(start: datetime, midnight: datetime, now: datetime) -> list[DailyMovement]:
    """The chart's days before today. They no longer change (``created_at`` is stamped at insert), so
    they are read once a day per cache (Redis in production: once for every worker) once the last
    transaction that could still commit with yesterday's time (``CLOSED_DAY_GRACE``) is past."""
    if now < midnight + CLOSED_DAY_GRACE:
        return movements_by_day(since=start, until=midnight)
    key = f"console:closed-days:v1:{start.isoformat()}:{midnight.isoformat()}"
    rows = cache.get(key)
    if rows is None:
        rows = movements_by_day(since=start, until=midnight)
        cache.set(key, rows, CLOSED_DAYS_CACHE_SECONDS)
    return rows


def _per_currency(rows: list[CurrencyHolds]) -> dict[int, CurrencyHolds]:
    return {row.currency_id: row for row in rows}


def build_dashboard(now: datetime) -> Dashboard:
    tz = timezone.get_current_timezone()
    today = timezone.localdate(now)
    midnight = datetime.combine(today, time.min, tzinfo=tz)
    chart_start = midnight - timedelta(days=CHART_DAYS - 1)
    day_24h_ago = now - timedelta(hours=24)
    within = timedelta(minutes=settings.HOLDS_EXPIRING_SOON_MINUTES)

    supply = supply_by_currency()
    daily = _closed_days(chart_start, midnight, now) + movements_by_day(since=midnight)
    transfers = {row.currency_id: row for row in movements_since(since=day_24h_ago, types=[Transaction.Type.TRANSFER])}
    expired = _per_currency(held_expired_by_currency(now=now))
    expiring = holds_expiring_by_currency(now=now, within=within)
    pending = _per_currency(withdrawal_requests_pending_by_currency())

    zero = Decimal(0)
    rows = []
    for currency in supply:
        cid = currency.currency_id
        by_type_today = {m.type: m for m in daily if m.day == today and m.currency_id == cid}
        deposits, withdrawals = by_type_today.get("deposit"), by_type_today.get("withdrawal")
        tx_today = {"currency__id__exact": cid, "created_at__gte": midnight}
        transfer = transfers.get(cid)
        late = expired.get(cid)
        queue = pending.get(cid)
        rows.append(
            CurrencyRow(
                code=currency.code,
                supply=Figure(format_amount(currency.balances), changelist("wallets.wallet", currency__id__exact=cid)),
                held=Figure(
                    format_amount(currency.held), changelist("holds.hold", status="active", currency__id__exact=cid)
                ),
                available=format_amount(currency.balances - currency.held),
                held_expired=None
                if late is None
                else Figure(
                    format_amount(late.amount), changelist("holds.hold", status="expired", currency__id__exact=cid)
                ),
                deposits_today=Figure(
                    format_amount(deposits.amount if deposits else zero),
                    changelist("transactions.transaction", type__exact="deposit", **tx_today),
                ),
                deposits_today_count=deposits.transaction_count if deposits else 0,
                withdrawals_today=Figure(
                    format_amount(withdrawals.amount if withdrawals else zero),
                    changelist("transactions.transaction", type__exact="withdrawal", **tx_today),
                ),
                withdrawals_today_count=withdrawals.transaction_count if withdrawals else 0,
                transfers_24h=Figure(
                    format_amount(transfer.amount if transfer else zero),
                    changelist(
                        "transactions.transaction",
                        type__exact="transfer",
                        currency__id__exact=cid,
                        created_at__gte=day_24h_ago,
                    ),
                ),
                transfers_24h_count=transfer.transaction_count if transfer else 0,
                pending_withdrawals=Figure(
                    format_amount(queue.amount if queue else zero),
                    changelist("holds.withdrawalrequest", status__exact="pending", currency__id__exact=cid),
                ),
                pending_withdrawals_count=queue.item_count if queue else 0,
                chart=daily_chart(
                    code=currency.code,
                    days=[chart_start.date() + timedelta(days=n) for n in range(CHART_DAYS)],
                    movements=[m for m in daily if m.currency_id == cid],
                    day_url=lambda day, cid=cid: changelist(  # type: ignore[misc]
                        "transactions.transaction",
                        currency__id__exact=cid,
                        created_at__gte=datetime.combine(day, time.min, tzinfo=tz),
                        created_at__lt=datetime.combine(day + timedelta(days=1), time.min, tzinfo=tz),
                    ),
                ),
            )
        )

    backlog = outbox_backlog()
    waiting = sum(row.pending_withdrawals_count for row in rows)
    oldest = min((q.first_at for q in pending.values() if q.first_at is not None), default=None)
    run = reconcile_run_latest()
    checkpoint = checkpoint_latest()
    hooks = webhook_health(now=now)
    return Dashboard(
        generated_at=now,
        today=today,
        currencies=rows,
        transfers_24h_count=Figure(
            str(sum(row.transfers_24h_count for row in rows)),
            changelist("transactions.transaction", type__exact="transfer", created_at__gte=day_24h_ago),
        ),
        outbox_pending=Figure(str(backlog.pending), changelist("events.outboxevent", state__exact="pending")),
        outbox_oldest_at=backlog.oldest_pending_at,
        withdrawals_pending=Figure(str(waiting), changelist("holds.withdrawalrequest", status__exact="pending")),
        withdrawals_oldest_at=oldest,
        holds_expiring=Figure(str(sum(h.item_count for h in expiring)), changelist("holds.hold", expiring="soon")),
        holds_expiring_within=within,
        holds_expired_unreleased=Figure(
            str(sum(h.item_count for h in expired.values())), changelist("holds.hold", status="expired")
        ),
        reconcile_run=run,
        reconcile_waiting=reconcile_runs_waiting(),
        reconcile_url=change("audit.reconcilerun", run.pk) if run else changelist("audit.reconcilerun"),
        checkpoint=checkpoint,
        checkpoint_url=change("audit.checkpoint", checkpoint.checkpoint.pk)
        if checkpoint
        else changelist("audit.checkpoint"),
        webhooks_pending=Figure(str(hooks.pending), changelist("webhooks.webhookdelivery", status__exact="pending")),
        webhooks_oldest_at=hooks.oldest_pending_at,
        webhooks_failed_24h=Figure(
            str(hooks.failed_24h),
            changelist("webhooks.webhookdelivery", status__exact="failed", completed_at__gte=day_24h_ago),
        ),
        webhooks_disabled=Figure(
            str(hooks.endpoints_disabled), changelist("webhooks.webhookendpoint", enabled__exact=0)
        ),
    )
