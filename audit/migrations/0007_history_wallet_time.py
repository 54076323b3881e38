"""An index on (wallet, created_at, seq): a wallet as it stood at an instant in one index probe.

``GET /wallet/{id}?at=`` and a statement's opening and closing balances read a wallet's newest entry
stamped at or before (or before) an instant, ties broken by the chain position: one backward step
into this index, however long the chain (docs/benchmarks.md has the plan at 1,000,000 entries).
A plain ``CREATE INDEX`` (it runs on SQLite too); on a large PostgreSQL table an operator may build
it first with ``CREATE INDEX CONCURRENTLY history_wallet_time ON audit_balancehistory (wallet_id,
created_at, seq)`` and then ``migrate --fake audit 0007`` (docs/operating.md).
"""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('audit', '0006_held_and_posting'),
    ]

    operations = [
        migrations.AddIndex(
            model_name='balancehistory',
            index=models.Index(fields=['wallet', 'created_at', 'seq'], name='history_wallet_time'),
        ),
    ]
