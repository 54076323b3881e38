"""Several workers at once on PostgreSQL, with real threads: every delivery sent once, in order."""

import threading
import time
from collections import Counter
from decimal import Decimal

import pytest
from django.db import connection, connections, transaction
from django.utils import timezone

from currencies.models import Currency
from events.models import OutboxEvent
from tests.conftest import make_user
from tests.webhooks.support import Receiver
from transactions.services import transfer_create
from webhooks.delivery import Outcome, deliver_next, delivery_claim, delivery_record, webhooks_fan_out
from webhooks.models import WebhookDelivery, WebhookEndpoint
from webhooks.services import endpoint_create, endpoint_test

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def test_four_workers_send_each_delivery_exactly_once_and_in_order_per_endpoint(private_targets):
    alice, bob = make_user(1000, username="alice"), make_user(1000, username="bob")
    usdt = Currency.objects.get(code="USDT")
    with Receiver() as alices, Receiver() as bobs:
        endpoint_create(owner=alice, url=alices.url, event_types=["*"])
        endpoint_create(owner=bob, url=bobs.url, event_types=["*"])
        OutboxEvent.objects.update(webhooks_pending=False)
        hashes = []
        for i in range(20):
            sender, recipient = (alice, bob) if i % 2 else (bob, alice)
            hashes.append(
                transfer_create(sender_id=sender.pk, recipient_id=recipient.pk, currency=usdt, amount=Decimal("1")).hash
            )
        barrier = threading.Barrier(4)
        failures = []

        def worker():
            try:
                barrier.wait(10)
                idle = 0
                while idle < 3:
                    fanned = webhooks_fan_out(limit=5)
                    status = deliver_next()
                    idle = idle + 1 if (status is None and not fanned) else 0
            except Exception as exc:  # noqa: BLE001 - reported below
                failures.append(exc)
            finally:
                connection.close()

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert failures == []
        for receiver in (alices, bobs):
            ids = receiver.event_ids()
            assert Counter(ids).most_common(1)[0][1] == 1  # nobody sent a delivery twice
            # One currency: the endpoint's deliveries went out one at a time in outbox order.
            assert [r.json()["hash"] for r in receiver.received] == hashes
    assert WebhookDelivery.objects.count() == 40
    assert set(WebhookDelivery.objects.values_list("status", "attempt_count")) == {("succeeded", 1)}
    assert not OutboxEvent.objects.filter(webhooks_pending=True).exists()


def test_recording_an_outcome_while_the_endpoint_is_deleted_locks_the_endpoint_first(private_targets):
    """endpoint_delete locks the endpoint, then its deliveries (the cascade); delivery_record must take them
    in the same order, or the two deadlock and PostgreSQL aborts one. Here the delete holds the endpoint:
    the recorder waits for it without holding the delivery, and finds the endpoint gone."""
    alice = make_user(0, username="alice")
    endpoint = endpoint_create(owner=alice, url="http://127.0.0.1:9/hooks", event_types=["*"]).endpoint
    endpoint_test(user=alice, endpoint_id=endpoint.pk)
    claim = delivery_claim()
    assert claim is not None
    deleting, recorded = threading.Event(), []

    def deleter():
        with transaction.atomic():
            WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
            deleting.set()
            # While the endpoint is held, the recorder (started below) must not hold the delivery.
            with connections["default"].cursor() as cursor:
                cursor.execute("SET LOCAL lock_timeout = '2s'")
            time.sleep(0.5)
            WebhookEndpoint.objects.filter(pk=endpoint.pk).delete()  # cascades to the delivery
        connections.close_all()

    def recorder():
        deleting.wait(10)
        recorded.append(delivery_record(claim, Outcome(started_at=timezone.now(), duration_ms=1, status_code=200)))
        connections.close_all()

    threads = [threading.Thread(target=deleter), threading.Thread(target=recorder)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert recorded == [""]  # the endpoint was gone when the recorder got its lock; no deadlock, no error
    assert not WebhookDelivery.objects.exists()
