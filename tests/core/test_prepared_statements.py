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


@pytest.mark.django_db(transaction=True, serialized_rollback=True)  # the spans fixture closes the connection
def test_with_tracing_on_the_prepared_statements_are_still_prepared_and_traced_like_the_orms(spans, user_factory, usdt):
    """The psycopg instrumentation traces the server-binding cursor too (telemetry.server_binding_cursor)."""
    from opentelemetry import trace
    from opentelemetry.trace import SpanKind

    alice, bob = user_factory(balance=10), user_factory()
    connection.connection.execute("DEALLOCATE ALL")
    with trace.get_tracer("test").start_as_current_span("work"):
        for n in range(3):
            transfer_create(sender_id=alice.pk, recipient_id=bob.pk, currency=usdt, amount=Decimal(n + 1))

    statements = prepared()
    assert sum("FOR UPDATE" in s for s in statements) == 1, statements
    assert sum(s.lstrip().startswith("WITH tx AS") for s in statements) == 1, statements
    sql = [s for s in spans.get_finished_spans() if s.kind is SpanKind.CLIENT]
    locks = [s for s in sql if "FOR UPDATE" in str(s.attributes.get("db.statement"))]
    orm = [s for s in sql if "core_outboxevent" in str(s.attributes.get("db.statement"))]
    assert len(locks) == 3 and orm, [s.attributes.get("db.statement") for s in sql]
    # The same instrumentation and connection attributes as the ORM's statements.
    assert {s.instrumentation_scope.name for s in locks + orm} == {"opentelemetry.instrumentation.psycopg"}
    assert {k: v for k, v in locks[0].attributes.items() if k != "db.statement"} == {
        k: v for k, v in orm[0].attributes.items() if k != "db.statement"
    }
    assert locks[0].attributes["db.name"] == connection.settings_dict["NAME"]
