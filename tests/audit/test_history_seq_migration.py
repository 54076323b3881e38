"""audit 0003 numbers the chains already in a database and counts them on their wallets."""

from decimal import Decimal

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from audit.reconcile import reconcile
from currencies.models import Currency
from transactions.services import deposit_create, transfer_create

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

BEFORE = [("audit", "0002_append_only"), ("wallets", "0001_initial")]


def chains() -> dict[int, list[int]]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT wallet_id, seq FROM audit_balancehistory ORDER BY wallet_id, id")
        numbered: dict[int, list[int]] = {}
        for wallet_id, seq in cursor.fetchall():
            numbered.setdefault(wallet_id, []).append(seq)
        cursor.execute("SELECT id, entries FROM wallets_wallet")
        return numbered, dict(cursor.fetchall())


def test_existing_chains_are_numbered_in_order_and_counted(user_factory):
    usdt, btc = Currency.objects.get(code="USDT"), Currency.objects.get(code="BTC")
    alice, bob = user_factory(balance=100), user_factory(balance=5)
    for n in range(1, 6):
        transfer_create(sender_id=alice.pk, recipient_id=bob.pk, currency=usdt, amount=Decimal(n))
    deposit_create(user_id=bob.pk, currency=btc, amount=Decimal(1))
    expected = chains()

    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    with connection.cursor() as cursor:
        columns = {c.name for c in connection.introspection.get_table_description(cursor, "audit_balancehistory")}
    assert "seq" not in columns
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

    numbered, entries = chains()
    assert (numbered, entries) == expected
    assert sorted(len(seqs) for seqs in numbered.values()) == [1, 6, 6]
    assert all(seqs == list(range(1, len(seqs) + 1)) for seqs in numbered.values())
    assert all(entries[wallet_id] == len(seqs) for wallet_id, seqs in numbered.items())
    assert reconcile().ok
