"""The core app's models now belong to their owners (transactions.IdempotencyKey, events.OutboxEvent).

State only: the tables stay (the new owners name them with Meta.db_table). 0001 still creates them
on a fresh database; the owners' migrations take them over in state, then core forgets them here,
so the plumbing app ends with no models.
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0001_initial"),
        ("transactions", "0004_idempotencykey_from_core"),
        ("events", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(name="IdempotencyKey"),
                migrations.DeleteModel(name="OutboxEvent"),
            ],
            database_operations=[],
        ),
    ]
