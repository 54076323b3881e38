"""Money as exact text on SQLite (currencies/money_field.py); nothing changes on PostgreSQL."""

from django.db import migrations

import currencies.money_field
from currencies.money_field import sqlite_checks_suspended, sqlite_money_respelled


class Migration(migrations.Migration):
    dependencies = [
        ("wallets", "0002_wallet_entries"),
    ]

    operations = [
        migrations.RunPython(sqlite_checks_suspended, migrations.RunPython.noop, elidable=True),
        migrations.AlterField(
            model_name="wallet",
            name="balance",
            field=currencies.money_field.MoneyField(decimal_places=8, default=0, max_digits=20),
        ),
        migrations.RunPython(
            sqlite_money_respelled("wallets", "Wallet", "balance"), migrations.RunPython.noop, elidable=True
        ),
    ]
