"""Number each wallet's chain (``BalanceHistory.seq``) and keep its length on the wallet (``entries``).

Existing rows are numbered in id order, which is chain order: legs of one wallet are written under
that wallet's lock. The append-only trigger is lifted for the backfill only, inside this migration's
transaction.
"""

from django.db import migrations, models

PG_BACKFILL = [
    "ALTER TABLE audit_balancehistory DISABLE TRIGGER audit_balancehistory_append_only",
    """UPDATE audit_balancehistory h SET seq = numbered.seq
       FROM (SELECT id, row_number() OVER (PARTITION BY wallet_id ORDER BY id) AS seq FROM audit_balancehistory) numbered
       WHERE h.id = numbered.id""",
    "ALTER TABLE audit_balancehistory ENABLE TRIGGER audit_balancehistory_append_only",
]
PORTABLE_BACKFILL = [
    """UPDATE audit_balancehistory SET seq = (
           SELECT COUNT(*) FROM audit_balancehistory earlier
           WHERE earlier.wallet_id = audit_balancehistory.wallet_id AND earlier.id <= audit_balancehistory.id)""",
]
ENTRIES = """UPDATE wallets_wallet SET entries = (
    SELECT COUNT(*) FROM audit_balancehistory h WHERE h.wallet_id = wallets_wallet.id)"""


def backfill(apps, schema_editor):
    statements = PG_BACKFILL if schema_editor.connection.vendor == "postgresql" else PORTABLE_BACKFILL
    for sql in [*statements, ENTRIES]:
        schema_editor.execute(sql, params=None)


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0002_append_only"),
        ("wallets", "0002_wallet_entries"),
    ]

    operations = [
        migrations.AddField(
            model_name="balancehistory",
            name="seq",
            field=models.PositiveBigIntegerField(null=True),
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="balancehistory",
            name="seq",
            field=models.PositiveBigIntegerField(),
        ),
        migrations.RemoveIndex(model_name="balancehistory", name="history_wallet_seq"),
        migrations.AddConstraint(
            model_name="balancehistory",
            constraint=models.UniqueConstraint(fields=("wallet", "seq"), name="history_wallet_position"),
        ),
        migrations.AddConstraint(
            model_name="balancehistory",
            constraint=models.CheckConstraint(condition=models.Q(seq__gte=1), name="history_seq_positive"),
        ),
    ]
