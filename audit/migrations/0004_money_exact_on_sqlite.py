"""Money as exact text on SQLite (currencies/money_field.py); nothing changes on PostgreSQL."""

from django.db import migrations

import currencies.money_field
from currencies.money_field import sqlite_checks_suspended, sqlite_money_respelled


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0003_history_seq"),
    ]

    # delta and balance_before first: the ledger CHECK compiles for SQLite once balance_after is money.
    operations = [
        migrations.RunPython(sqlite_checks_suspended, migrations.RunPython.noop, elidable=True),
        migrations.AlterField(
            model_name="balancehistory",
            name="delta",
            field=currencies.money_field.MoneyField(decimal_places=8, max_digits=21),
        ),
        migrations.AlterField(
            model_name="balancehistory",
            name="balance_before",
            field=currencies.money_field.MoneyField(decimal_places=8, max_digits=20),
        ),
        migrations.AlterField(
            model_name="balancehistory",
            name="balance_after",
            field=currencies.money_field.MoneyField(decimal_places=8, max_digits=20),
        ),
        migrations.RunPython(
            sqlite_money_respelled("audit", "BalanceHistory", "delta", "balance_before", "balance_after"),
            migrations.RunPython.noop,
            elidable=True,
        ),
    ]
