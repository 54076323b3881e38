"""Balance history learns ``held``: entries that change it alone (no transaction), and ``posting``.

``posting`` numbers a wallet's movement entries (those with a transaction), which the transaction
history pages by; every entry written before holds existed is a movement, so ``posting = seq`` and
the wallet's ``postings = entries``. The append-only trigger is lifted for the backfill only, inside
this migration's transaction.
"""

import currencies.money_field
import django.db.models.deletion
import django.db.models.expressions
from django.conf import settings
from django.db import migrations, models


PG_BACKFILL = [
    "ALTER TABLE audit_balancehistory DISABLE TRIGGER audit_balancehistory_append_only",
    "UPDATE audit_balancehistory SET posting = seq",
    "ALTER TABLE audit_balancehistory ENABLE TRIGGER audit_balancehistory_append_only",
]
PORTABLE_BACKFILL = ["UPDATE audit_balancehistory SET posting = seq"]
POSTINGS = "UPDATE wallets_wallet SET postings = entries"


def backfill(apps, schema_editor):
    statements = PG_BACKFILL if schema_editor.connection.vendor == "postgresql" else PORTABLE_BACKFILL
    for sql in [*statements, POSTINGS]:
        schema_editor.execute(sql, params=None)


class Migration(migrations.Migration):

    dependencies = [
        ('audit', '0005_checkpoint'),
        ('transactions', '0005_idempotencykey_error_status'),
        ('wallets', '0004_wallet_held_and_postings'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name='balancehistory',
            name='history_delta_non_zero',
        ),
        migrations.AddField(
            model_name='balancehistory',
            name='held_after',
            field=currencies.money_field.MoneyField(decimal_places=8, default=0, max_digits=20),
        ),
        migrations.AddField(
            model_name='balancehistory',
            name='held_before',
            field=currencies.money_field.MoneyField(decimal_places=8, default=0, max_digits=20),
        ),
        migrations.AddField(
            model_name='balancehistory',
            name='held_delta',
            field=currencies.money_field.MoneyField(decimal_places=8, default=0, max_digits=21),
        ),
        migrations.AddField(
            model_name='balancehistory',
            name='hold_uid',
            field=models.UUIDField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='balancehistory',
            name='posting',
            field=models.PositiveBigIntegerField(blank=True, null=True),
        ),
        migrations.AlterField(
            model_name='balancehistory',
            name='delta',
            field=currencies.money_field.MoneyField(decimal_places=8, default=0, max_digits=21),
        ),
        migrations.AlterField(
            model_name='balancehistory',
            name='transaction',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='history', to='transactions.transaction'),
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name='balancehistory',
            constraint=models.CheckConstraint(condition=models.Q(('held_after', django.db.models.expressions.CombinedExpression(models.F('held_before'), '+', models.F('held_delta')))), name='history_held_after_is_before_plus_delta'),
        ),
        migrations.AddConstraint(
            model_name='balancehistory',
            constraint=models.CheckConstraint(condition=models.Q(('held_after__gte', 0)), name='history_held_non_negative'),
        ),
        migrations.AddConstraint(
            model_name='balancehistory',
            constraint=models.CheckConstraint(condition=models.Q(('held_after__lte', models.F('balance_after'))), name='history_held_within_balance'),
        ),
        migrations.AddConstraint(
            model_name='balancehistory',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('delta', 0), _negated=True), models.Q(('held_delta', 0), _negated=True), _connector='OR'), name='history_changes_something'),
        ),
        migrations.AddConstraint(
            model_name='balancehistory',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('posting__isnull', False), ('transaction__isnull', False)), models.Q(('delta', 0), ('hold_uid__isnull', False), ('posting__isnull', True), ('transaction__isnull', True)), _connector='OR'), name='history_movement_or_hold'),
        ),
        migrations.AddConstraint(
            model_name='balancehistory',
            constraint=models.UniqueConstraint(fields=('wallet', 'posting'), name='history_wallet_posting'),
        ),
    ]
