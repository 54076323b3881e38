"""Money as exact text on SQLite (currencies/money_field.py); nothing changes on PostgreSQL."""

from django.db import migrations

import currencies.money_field
from currencies.money_field import sqlite_checks_suspended, sqlite_money_respelled


class Migration(migrations.Migration):
    dependencies = [
        ("currencies", "0002_seed_currencies"),
    ]

    operations = [
        migrations.RunPython(sqlite_checks_suspended, migrations.RunPython.noop, elidable=True),
        migrations.AlterField(
            model_name="currency",
            name="max_transfer_amount",
            field=currencies.money_field.MoneyField(blank=True, decimal_places=8, max_digits=20, null=True),
        ),
        migrations.RunPython(
            sqlite_money_respelled("currencies", "Currency", "max_transfer_amount"),
            migrations.RunPython.noop,
            elidable=True,
        ),
    ]
