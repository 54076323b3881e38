"""Several workers at once on PostgreSQL, with real threads: every delivery sent once, in order."""

import threading
from collections import Counter
from decimal import Decimal

import pytest
from django.db import connection

from currencies.models import Currency
from events.models import OutboxEvent
from tests.conftest import make_user
from tests.webhooks.support import Receiver
from transactions.services import transfer_create
from webhooks.delivery import deliver_next, webhooks_fan_out
from webhooks.models import WebhookDelivery
from webhooks.services import endpoint_create

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
