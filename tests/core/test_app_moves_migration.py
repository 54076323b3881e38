"""The moves out of the core app (IdempotencyKey -> transactions, OutboxEvent -> events) lose nothing.

A database at the schema of before the moves (core 0001 owning both models), filled with users,
transfers, an idempotency key, outbox rows, a staff member holding outbox rights and an admin log
entry, is migrated forward: every row, payload, permission and log entry is still there, the
content types carry the new app labels, and the ledger reconciles.
"""

from decimal import Decimal

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from audit.reconcile import reconcile
from currencies.models import Currency
from transactions.services import deposit_create, transfer_create

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

# The latest migrations before the moves; the events app did not exist.
BEFORE = [("core", "0001_initial"), ("transactions", "0003_money_exact_on_sqlite"), ("events", None)]


def rows(sql: str) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchall()


def test_moving_the_core_models_keeps_every_row_permission_and_log_entry(user_factory):
    # The money moves with today's code (whose columns the old tables lack), then the schema goes back.
    usdt = Currency.objects.get(code="USDT")
    alice, bob = user_factory(balance=100), user_factory()
    for n in range(1, 4):
        transfer_create(sender_id=alice.pk, recipient_id=bob.pk, currency=usdt, amount=Decimal(n))
    staff = user_factory(is_staff=True)
    deposit = deposit_create(user_id=bob.pk, created_by_id=staff.pk, currency=usdt, amount=Decimal("7.5"))
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    ContentType.objects.clear_cache()
    assert set(
        ContentType.objects.filter(model__in=["outboxevent", "idempotencykey"]).values_list("app_label", flat=True)
    ) == {"core"}

    # Written as the code of that time wrote it: today's model has columns the old table lacks.
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO core_idempotencykey (user_id, key, scope, fingerprint, transaction_id, error_code,"
            " error_message, created_at) VALUES (%s, 'k-1', 'deposit', %s, %s, '', '', now())",
            [staff.pk, "f" * 64, deposit.pk],
        )
    outbox_type = ContentType.objects.get(app_label="core", model="outboxevent")
    staff.user_permissions.add(
        *Permission.objects.filter(content_type=outbox_type, codename__in=["view_outboxevent", "change_outboxevent"])
    )
    entry = LogEntry.objects.create(
        user=staff, content_type=outbox_type, object_id="1", object_repr="retried", action_flag=CHANGE
    )
    outbox = rows("SELECT id, event_id, topic, key, payload, headers, state FROM core_outboxevent ORDER BY id")
    keys = rows("SELECT id, user_id, key, scope, fingerprint, transaction_id FROM core_idempotencykey ORDER BY id")
    assert len(outbox) == 5 and len(keys) == 1  # the grant deposit, 3 transfers, the deposit

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
    ContentType.objects.clear_cache()

    assert rows("SELECT id, event_id, topic, key, payload, headers, state FROM core_outboxevent ORDER BY id") == outbox
    assert (
        rows("SELECT id, user_id, key, scope, fingerprint, transaction_id FROM core_idempotencykey ORDER BY id") == keys
    )
    assert not ContentType.objects.filter(app_label="core").exists()
    assert ContentType.objects.get(app_label="events", model="outboxevent").pk == outbox_type.pk
    assert ContentType.objects.get(app_label="transactions", model="idempotencykey")
    staff = type(staff).objects.get(pk=staff.pk)  # fresh permission cache
    assert staff.has_perm("events.change_outboxevent") and staff.has_perm("events.view_outboxevent")
    assert not staff.has_perm("core.change_outboxevent")
    assert LogEntry.objects.get(pk=entry.pk).content_type.app_label == "events"

    from events.models import OutboxEvent
    from transactions.models import IdempotencyKey

    assert OutboxEvent.objects.count() == 5 and IdempotencyKey.objects.get().key == "k-1"
    assert reconcile().ok
