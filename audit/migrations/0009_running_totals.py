"""Balance history learns its running totals: ``total_in_after``, ``total_out_after``, ``postings_after``.

Each entry carries the sums of its chain's positive and negative deltas and the count of its movement
entries up to itself, so a statement's totals over a window are two chain points apart instead of a
sum over every leg in it; the wallet keeps its newest entry's totals (``wallets/0005``) as it keeps
its head. The backfill runs per wallet in chain order (a window function on PostgreSQL), in batches
of about ``BATCH_ENTRIES`` entries so that no one sort holds the whole table; the append-only trigger
is lifted for it only, inside this migration's transaction, as ``0006`` did. It rewrites every row of
the table (on the 2,000,000-entry benchmark ledger: docs/benchmarks.md); the totals are not part of the
hash, so no entry's hash, receipt or checkpoint changes.
"""

from decimal import Decimal

import currencies.money_field
import django.db.models.expressions
from django.conf import settings
from django.db import migrations, models



BATCH_ENTRIES = 200_000

PG_TOTALS = """
UPDATE audit_balancehistory h
SET total_in_after = r.total_in, total_out_after = r.total_out, postings_after = r.postings
FROM (
    SELECT id,
           SUM(GREATEST(delta, 0)) OVER chain AS total_in,
           SUM(GREATEST(-delta, 0)) OVER chain AS total_out,
           COUNT(transaction_id) OVER chain AS postings
    FROM audit_balancehistory
    WHERE wallet_id BETWEEN %s AND %s
    WINDOW chain AS (PARTITION BY wallet_id ORDER BY seq ROWS UNBOUNDED PRECEDING)
) r
WHERE h.id = r.id
"""
# Every wallet takes its newest entry's totals (a wallet without entries keeps its zeros).
WALLET_TOTALS = """
UPDATE wallets_wallet SET
    total_in = (SELECT h.total_in_after FROM audit_balancehistory h WHERE h.wallet_id = wallets_wallet.id
                AND h.seq = wallets_wallet.entries),
    total_out = (SELECT h.total_out_after FROM audit_balancehistory h WHERE h.wallet_id = wallets_wallet.id
                 AND h.seq = wallets_wallet.entries)
WHERE entries > 0
"""


def _batches(cursor):
    """Ranges of wallet ids holding about ``BATCH_ENTRIES`` entries each (whole wallets)."""
    cursor.execute("SELECT id, entries FROM wallets_wallet WHERE entries > 0 ORDER BY id")
    first, size = None, 0
    for wallet_id, entries in cursor.fetchall():
        first = wallet_id if first is None else first
        size += entries
        if size >= BATCH_ENTRIES:
            yield first, wallet_id
            first, size = None, 0
    if first is not None:
        yield first, wallet_id


def backfill(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE audit_balancehistory DISABLE TRIGGER audit_balancehistory_append_only")
            for first, last in list(_batches(cursor)):
                cursor.execute(PG_TOTALS, [first, last])
            cursor.execute("ALTER TABLE audit_balancehistory ENABLE TRIGGER audit_balancehistory_append_only")
            cursor.execute(WALLET_TOTALS)
        return
    # SQLite (local files: small) adds its text-spelled money in Python, one wallet's chain at a time.
    history = apps.get_model("audit", "BalanceHistory")._base_manager.using(connection.alias)
    wallets = apps.get_model("wallets", "Wallet")._base_manager.using(connection.alias)
    for wallet_id in wallets.filter(entries__gt=0).values_list("pk", flat=True):
        total_in = total_out = Decimal(0)
        postings = 0
        for pk, delta, transaction_id in history.filter(wallet_id=wallet_id).order_by("seq").values_list(
            "pk", "delta", "transaction_id"
        ):
            total_in, total_out = total_in + max(delta, 0), total_out + max(-delta, 0)
            postings += transaction_id is not None
            history.filter(pk=pk).update(total_in_after=total_in, total_out_after=total_out, postings_after=postings)
        wallets.filter(pk=wallet_id).update(total_in=total_in, total_out=total_out)


class Migration(migrations.Migration):

    dependencies = [
        ('audit', '0008_reconcile_run'),
        ('transactions', '0008_idempotencykey_error_fields'),
        ('wallets', '0005_running_totals'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name='balancehistory',
            name='postings_after',
            field=models.PositiveBigIntegerField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='balancehistory',
            name='total_in_after',
            field=currencies.money_field.MoneyField(blank=True, decimal_places=8, max_digits=38, null=True),
        ),
        migrations.AddField(
            model_name='balancehistory',
            name='total_out_after',
            field=currencies.money_field.MoneyField(blank=True, decimal_places=8, max_digits=38, null=True),
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name='balancehistory',
            constraint=models.CheckConstraint(condition=models.Q(('total_in_after', django.db.models.expressions.CombinedExpression(models.F('balance_after'), '+', models.F('total_out_after')))), name='history_totals_add_up'),
        ),
        migrations.AddConstraint(
            model_name='balancehistory',
            constraint=models.CheckConstraint(condition=models.Q(('total_out_after__gte', 0)), name='history_total_out_non_negative'),
        ),
        migrations.AddConstraint(
            model_name='balancehistory',
            constraint=models.CheckConstraint(condition=models.Q(('posting__isnull', True), ('posting', models.F('postings_after')), _connector='OR'), name='history_posting_is_postings'),
        ),
    ]
