"""transactions.sql's column lists are the models' columns: a new field without a SQL change fails here."""

import re

import pytest
from django.db import connection

from audit.models import BalanceHistory
from events.models import OutboxEvent
from transactions import sql
from transactions.models import Transaction
from wallets.models import Wallet


def columns(model) -> set[str]:
    return {f.column for f in model._meta.concrete_fields if not f.primary_key}


def inserted(statement: str, table: str) -> list[str]:
    match = re.search(rf"INSERT INTO {table} \(([^)]*)\)", statement)
    assert match, f"no INSERT INTO {table}"
    return [name.strip() for name in match.group(1).split(",")]


@pytest.mark.parametrize(
    "table, model, constant",
    [
        ("transactions_transaction", Transaction, sql.TRANSACTION_COLUMNS),
        ("audit_balancehistory", BalanceHistory, sql.HISTORY_COLUMNS),
        ("core_outboxevent", OutboxEvent, sql.OUTBOX_COLUMNS),
    ],
)
def test_each_insert_names_every_column_of_its_model_once(table, model, constant):
    names = inserted(sql.WRITE_SQL, table)
    assert len(names) == len(set(names))
    assert set(names) == columns(model)
    assert tuple(names) == constant  # the values the module binds follow the same order


def test_the_bound_transaction_values_follow_the_insert():
    assert sql.TransactionValues._fields == sql.TRANSACTION_COLUMNS
    # The legs' names are the history columns the write takes from them (the rest come from tx).
    assert set(sql.LegValues._fields) == set(sql.HISTORY_COLUMNS) - {"transaction_id", "created_at"}


def test_the_wallet_update_and_lock_name_real_wallet_columns():
    set_clause = re.search(r"UPDATE wallets_wallet AS w\s+SET (.*?)\s+FROM", sql.WRITE_SQL, re.S).group(1)
    assigned = [part.split("=")[0].strip() for part in set_clause.split(",")]
    assert tuple(assigned) == sql.WALLET_UPDATE_COLUMNS
    assert set(assigned) <= columns(Wallet)
    selected = re.search(r"SELECT (.*?) FROM wallets_wallet", sql.lock_sql(2, active_only=True)).group(1)
    wallet_columns = [c.strip()[2:] for c in selected.split(",") if c.strip().startswith("w.")]
    assert set(wallet_columns) <= columns(Wallet) | {"id"}
    assert len(selected.split(",")) == len(sql.LockedRow._fields)


def test_the_history_page_reads_the_transaction_fields_it_names():
    selected = re.search(r"SELECT (.*?)\s+FROM audit_balancehistory", sql.POSITION_PAGE_SQL, re.S).group(1)
    tx_columns = [c.strip()[2:] for c in selected.split(",") if c.strip().startswith("t.")]
    assert set(tx_columns) <= columns(Transaction) | {"id"}


@pytest.mark.django_db
def test_the_statements_are_valid_sql_for_the_schema():
    with connection.cursor() as cursor:
        for users in (1, 2):
            for active_only in (False, True):
                cursor.execute("EXPLAIN " + sql.lock_sql(users, active_only=active_only), [1] * (users + 1))
        cursor.execute("EXPLAIN " + sql.POSITION_PAGE_SQL, [1, 2, 0])


def test_the_batch_lock_selects_what_the_lock_does_and_the_currency():
    lock = re.search(r"SELECT (.*?) FROM (.*?) WHERE", sql.lock_sql(2, active_only=True))
    batch = re.search(r"SELECT (.*?) FROM (.*?) JOIN unnest", sql.BATCH_LOCK_SQL)
    assert batch.group(1) == lock.group(1) + ", w.currency_id"
    assert batch.group(2) == lock.group(2)  # the same tables, joined the same way
    assert "ORDER BY w.id FOR UPDATE OF w" in sql.BATCH_LOCK_SQL and "u.is_active" in sql.BATCH_LOCK_SQL


@pytest.mark.django_db
def test_the_batch_lock_returns_each_pairs_wallet_in_ascending_id(user_factory):
    from currencies.models import Currency

    alice, bob = user_factory(), user_factory()
    usdt, btc = Currency.objects.get(code="USDT"), Currency.objects.get(code="BTC")
    pairs = [(bob.pk, btc.pk), (alice.pk, usdt.pk), (bob.pk, usdt.pk), (alice.pk, 999)]
    locked = sql.lock_wallet_pairs(pairs)
    assert set(locked) == {(bob.pk, btc.pk), (alice.pk, usdt.pk), (bob.pk, usdt.pk)}
    for (user_id, currency_id), row in locked.items():
        assert Wallet.objects.get(pk=row.wallet_id).currency_id == currency_id and row.user_id == user_id
    assert list(locked.values()) == sorted(locked.values(), key=lambda row: row.wallet_id)
