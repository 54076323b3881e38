"""The transfer's lock and write, and the history page, are prepared once per connection and reused."""

from decimal import Decimal

import pytest
from django.db import connection

from transactions.selectors import history_page
from transactions.services import transfer_create

pytestmark = pytest.mark.django_db


def prepared() -> list[str]:
    with connection.cursor() as cursor:  # the ORM's cursor: not prepared itself
        cursor.execute("SELECT statement FROM pg_prepared_statements ORDER BY prepare_time")
        return [row[0] for row in cursor.fetchall()]


def test_transfers_and_history_pages_reuse_their_prepared_statements(user_factory, usdt):
    alice, bob = user_factory(balance=10), user_factory()
    connection.connection.execute("DEALLOCATE ALL")  # whatever earlier tests left on this connection
    for n in range(3):
        transfer_create(sender_id=alice.pk, recipient_id=bob.pk, currency=usdt, amount=Decimal(n + 1))
        history_page(user_id=bob.pk, page=n + 1, page_size=1)

    statements = prepared()
    assert len(statements) == 4, statements  # lock, write, chain lengths, page: each once for 3 uses
    assert sum("FOR UPDATE" in s for s in statements) == 1
    assert sum(s.lstrip().startswith("WITH tx AS") for s in statements) == 1
    assert sum("FROM wallets_wallet WHERE user_id" in s for s in statements) == 1
    assert sum("h.posting <= $2" in s for s in statements) == 1


def test_without_prepared_statements_nothing_is_prepared(user_factory, usdt, monkeypatch):
    """DB_PREPARED_STATEMENTS=false (for poolers that cannot keep them) leaves the server nothing."""
    alice, bob = user_factory(balance=10), user_factory()
    connection.connection.execute("DEALLOCATE ALL")
    monkeypatch.setattr(connection.connection, "prepare_threshold", None)
    transfer_create(sender_id=alice.pk, recipient_id=bob.pk, currency=usdt, amount=Decimal(1))
    assert history_page(user_id=bob.pk, page=1, page_size=20)["pagination"]["total"] == 1
    assert prepared() == []
