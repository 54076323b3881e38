"""An index on created_at carrying currency, type and amount: the console's movements of a day.

The dashboard (#18) sums today's deposits and withdrawals and the last 24 h of transfers per currency:
an index-only range scan of this index (docs/benchmarks.md "#18 dashboard" has the plans). A plain
``CREATE INDEX`` (it runs on SQLite too); on a large PostgreSQL table an operator may build it first
with ``CREATE INDEX CONCURRENTLY tx_created_at ON transactions_transaction (created_at) INCLUDE
(currency_id, type, amount)`` and then ``migrate --fake transactions 0009`` (docs/operating.md).
"""

from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('currencies', '0003_money_exact_on_sqlite'),
        ('transactions', '0008_idempotencykey_error_fields'),
        ('wallets', '0004_wallet_held_and_postings'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddIndex(
            model_name='transaction',
            index=models.Index(fields=['created_at'], include=('currency', 'type', 'amount'), name='tx_created_at'),
        ),
    ]
