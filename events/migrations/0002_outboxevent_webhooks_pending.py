"""Outbox rows remember whether the webhooks fan-out has taken them (webhooks.fanout).

Rows written before this migration are marked as taken: there were no endpoints to deliver them to, and
a new endpoint receives what happens after it is registered. New rows are pending (the database default
covers the transfer's own INSERT, transactions.sql). The partial index keeps the fan-out's scan to the
few pending rows.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("events", "0001_initial"),
    ]

    operations = [
        # Existing rows get false (a constant default: no table rewrite on PostgreSQL 11+) ...
        migrations.AddField(
            model_name="outboxevent",
            name="webhooks_pending",
            field=models.BooleanField(default=False),
            preserve_default=False,
        ),
        # ... rows from now on true.
        migrations.AlterField(
            model_name="outboxevent",
            name="webhooks_pending",
            field=models.BooleanField(db_default=True, default=True),
        ),
        migrations.AddIndex(
            model_name="outboxevent",
            index=models.Index(
                condition=models.Q(("webhooks_pending", True)), fields=["id"], name="outbox_webhooks_pending"
            ),
        ),
    ]
