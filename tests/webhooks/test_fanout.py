"""The fan-out: each outbox event becomes one delivery per matching endpoint, and only for those it concerns."""

import threading
from decimal import Decimal

import pytest
from django.db import connection, transaction

from currencies.models import Currency
from events.models import OutboxEvent
from holds.services import hold_create, withdrawal_request_create
from tests.conftest import make_user
from transactions.services import transfer_create
from webhooks.delivery import webhooks_fan_out
from webhooks.models import WebhookDelivery

pytestmark = pytest.mark.django_db

PUBLIC = "https://93.184.215.14/hook"


def received(endpoint) -> list[str]:
    return list(WebhookDelivery.objects.filter(endpoint=endpoint).order_by("id").values_list("event_type", flat=True))


def deliveries_of(endpoint) -> list[WebhookDelivery]:
    return list(WebhookDelivery.objects.filter(endpoint=endpoint).select_related("outbox_event").order_by("id"))


def settle() -> None:
    """What the fixtures' deposits wrote is not part of the test."""
    OutboxEvent.objects.update(webhooks_pending=False)


def activity(alice, bob, carol):
    settle()
    usdt = Currency.objects.get(code="USDT")
    transfer_create(sender_id=bob.pk, recipient_id=carol.pk, currency=usdt, amount=Decimal("1"))  # not alice's
    transfer_create(sender_id=alice.pk, recipient_id=bob.pk, currency=usdt, amount=Decimal("2"))
    hold_create(payer_id=carol.pk, payee_id=alice.pk, currency=usdt, amount=Decimal("3"))
    hold_create(payer_id=bob.pk, payee_id=carol.pk, currency=usdt, amount=Decimal("3"))  # not alice's
    withdrawal_request_create(user_id=bob.pk, currency=usdt, amount=Decimal("4"), address="TAddr1")  # not alice's
    withdrawal_request_create(user_id=alice.pk, currency=usdt, amount=Decimal("4"), address="TAddr2")


def test_a_user_receives_only_events_about_their_own_wallets(alice, bob, carol, endpoint_for):
    endpoint = endpoint_for(alice, PUBLIC).endpoint
    activity(alice, bob, carol)
    webhooks_fan_out()
    assert received(endpoint) == ["tx.created", "hold.created", "withdrawal.requested"]
    for delivery in deliveries_of(endpoint):
        payload = delivery.outbox_event.payload
        assert delivery.event_id == delivery.outbox_event.event_id  # webhook-id is the outbox event id
        assert alice.pk in (
            payload.get("from_user_id"),
            payload.get("to_user_id"),
            (payload.get("hold") or {}).get("payee_user_id"),
            (payload.get("withdrawal_request") or {}).get("user_id"),
        )


def test_staff_endpoints_receive_every_event_and_event_types_filter(alice, bob, carol, staff, endpoint_for):
    everything = endpoint_for(staff, PUBLIC).endpoint
    holds_only = endpoint_for(alice, PUBLIC, event_types=["hold.*"]).endpoint
    transfers_only = endpoint_for(alice, PUBLIC, event_types=["tx.created"]).endpoint
    activity(alice, bob, carol)
    assert webhooks_fan_out() == 6
    pairs = ["tx.created"] * 2 + ["hold.created"] * 2 + ["withdrawal.requested"] * 2
    assert received(everything) == pairs
    assert received(holds_only) == ["hold.created"]
    assert received(transfers_only) == ["tx.created"]


def test_the_fan_out_takes_each_row_once_and_keys_deliveries_by_currency(alice, bob, endpoint_for):
    endpoint = endpoint_for(alice, PUBLIC).endpoint
    usdt, btc = Currency.objects.get(code="USDT"), Currency.objects.get(code="BTC")
    settle()
    transfer_create(sender_id=alice.pk, recipient_id=bob.pk, currency=usdt, amount=Decimal("1"))
    hold_create(payer_id=alice.pk, currency=usdt, amount=Decimal("1"))
    webhooks_fan_out()
    assert webhooks_fan_out() == 0 and not OutboxEvent.objects.filter(webhooks_pending=True).exists()
    assert {d.ordering_key for d in deliveries_of(endpoint)} == {f"currency:{usdt.pk}"}
    assert btc.pk != usdt.pk
    assert WebhookDelivery.objects.count() == 2


def test_disabled_endpoints_and_inactive_owners_get_nothing(alice, bob, staff, endpoint_for):
    disabled = endpoint_for(alice, PUBLIC).endpoint
    disabled.enabled, disabled.disabled_reason = False, "off"
    disabled.save()
    endpoint_for(staff, PUBLIC)
    staff.is_active = False
    staff.save()
    settle()
    transfer_create(
        sender_id=alice.pk, recipient_id=bob.pk, currency=Currency.objects.get(code="USDT"), amount=Decimal("1")
    )
    webhooks_fan_out()
    assert not WebhookDelivery.objects.exists()


def test_rows_written_before_the_migration_are_not_pending():
    # 0002 marks existing rows as taken; the currencies' own migrations wrote none, so check the default.
    row = OutboxEvent.objects.create(topic="t", key="k", payload={})
    assert OutboxEvent.objects.get(pk=row.pk).webhooks_pending is True


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_row_another_transaction_holds_stops_the_fan_out_there_and_nothing_overtakes_it(settings):
    """The relay keeps its batch locked while Kafka answers: the fan-out takes the rows before it and
    waits for the rest, so an earlier event never gets its delivery after a later one's."""
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    from webhooks.services import endpoint_create

    alice, bob = make_user(50, username="alice"), make_user(50, username="bob")
    endpoint = endpoint_create(owner=alice, url=PUBLIC, event_types=["*"]).endpoint
    OutboxEvent.objects.update(webhooks_pending=False)
    usdt = Currency.objects.get(code="USDT")
    txs = [
        transfer_create(sender_id=alice.pk, recipient_id=bob.pk, currency=usdt, amount=Decimal("1")) for _ in range(3)
    ]
    rows = list(OutboxEvent.objects.filter(webhooks_pending=True).order_by("id"))
    assert len(rows) == len(txs) == 3
    locked, release = threading.Event(), threading.Event()

    def relay_holds_second_row():
        with transaction.atomic():
            list(OutboxEvent.objects.select_for_update().filter(pk=rows[1].pk))
            locked.set()
            release.wait(10)
        connection.close()

    holder = threading.Thread(target=relay_holds_second_row)
    holder.start()
    assert locked.wait(10)
    try:
        assert webhooks_fan_out() == 1  # only the row before the locked one
        assert [d.outbox_event_id for d in deliveries_of(endpoint)] == [rows[0].pk]
    finally:
        release.set()
        holder.join(10)
    assert webhooks_fan_out() == 2
    assert [d.outbox_event_id for d in deliveries_of(endpoint)] == [row.pk for row in rows]


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_publisher_marks_a_row_published_while_the_fan_out_holds_it(settings):
    """The in-process publisher marks a row published right after Kafka acknowledges it, skipping rows
    a relay holds (SKIP LOCKED). The fan-out takes fresh rows at that very moment: if its hold looked like
    a relay's, the mark was skipped and the relay published the event a second time."""
    from events.publisher import mark_published
    from webhooks.services import endpoint_create

    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    alice, bob = make_user(50, username="alice"), make_user(50, username="bob")
    endpoint_create(owner=alice, url=PUBLIC, event_types=["*"])
    OutboxEvent.objects.update(webhooks_pending=False)
    transfer_create(
        sender_id=alice.pk, recipient_id=bob.pk, currency=Currency.objects.get(code="USDT"), amount=Decimal("1")
    )
    row = OutboxEvent.objects.get(webhooks_pending=True)
    assert row.state == "pending"
    blocker, fanned = {}, {}
    blocked, release = threading.Event(), threading.Event()

    def hold_deliveries_table():  # the fan-out's insert of deliveries waits: its transaction stays open
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(f"LOCK TABLE {WebhookDelivery._meta.db_table} IN SHARE MODE")
                cursor.execute("SELECT pg_backend_pid()")
                blocker["pid"] = cursor.fetchone()[0]
            blocked.set()
            release.wait(20)
        connection.close()

    def fan_out():
        fanned["taken"] = webhooks_fan_out()
        connection.close()

    holder = threading.Thread(target=hold_deliveries_table)
    holder.start()
    assert blocked.wait(10)
    worker = threading.Thread(target=fan_out)
    worker.start()
    try:
        with connection.cursor() as cursor:  # until the fan-out waits behind the table lock
            for _ in range(200):
                cursor.execute(
                    "SELECT count(*) FROM pg_locks WHERE NOT granted AND %s = ANY(pg_blocking_pids(pid))",
                    [blocker["pid"]],
                )
                if cursor.fetchone()[0]:
                    break
                threading.Event().wait(0.05)
            else:
                raise AssertionError("the fan-out never reached its insert")
        assert mark_published([row.pk]) == 1
    finally:
        release.set()
        holder.join(10)
        worker.join(10)
    assert fanned["taken"] == 1
    row.refresh_from_db()
    assert (row.state, row.webhooks_pending) == ("published", False)
    assert WebhookDelivery.objects.filter(outbox_event=row).count() == 1
