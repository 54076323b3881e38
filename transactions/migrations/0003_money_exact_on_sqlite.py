"""Money as exact text on SQLite (currencies/money_field.py); nothing changes on PostgreSQL."""

from django.db import migrations

import currencies.money_field
from currencies.money_field import sqlite_checks_suspended, sqlite_money_respelled


class Migration(migrations.Migration):
    dependencies = [
        ("transactions", "0002_append_only"),
    ]

    operations = [
        migrations.RunPython(sqlite_checks_suspended, migrations.RunPython.noop, elidable=True),
        migrations.AlterField(
            model_name="transaction",
            name="amount",
            field=currencies.money_field.MoneyField(decimal_places=8, max_digits=20),
        ),
        migrations.RunPython(
            sqlite_money_respelled("transactions", "Transaction", "amount"), migrations.RunPython.noop, elidable=True
        ),
    ]
