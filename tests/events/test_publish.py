"""tx.created on a real broker: the on-commit path, an outage, the relay catching up, readiness."""

import time

import pytest
from django.core.management import CommandError
from django.test import override_settings
from django.utils import timezone

from events import publisher
from events.models import OutboxEvent
from tests.events.conftest import read_topic, relay_once, wait_for
from transactions.models import Transaction

# on_commit must really fire, and subprocesses must see the rows: no wrapping test transaction.
# serialized_rollback restores the seeded currencies that the flush after each test removes.
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

TRANSACTION_FIELDS = [
    "id",
    "hash",
    "signature",
    "status",
    "type",
    "from_user_id",
    "to_user_id",
    "currency_id",
    "currency",
    "amount",
    "memo",
    "created_at",
]


def pending() -> int:
    return OutboxEvent.objects.filter(state=OutboxEvent.State.PENDING).count()


def test_a_transfer_publishes_the_documented_event(kafka, user_factory, client_for):
    alice, bob = user_factory(balance=100), user_factory()
    response = client_for(alice).post(
        "/wallet/transfer",
        {"to_user_id": bob.pk, "currency": "USDT", "amount": "12.5", "memo": "lunch"},
        format="json",
        HTTP_X_TRACE_ID="trace-events-0001",
    )
    assert response.status_code == 200, response.content
    body = response.json()

    # Published by the on-commit path alone: no relay runs in this test.
    assert wait_for(lambda: pending() == 0), "the on-commit publisher left events pending"
    row = OutboxEvent.objects.get(key=body["hash"])
    assert row.state == OutboxEvent.State.PUBLISHED and row.published_at is not None

    messages = read_topic(kafka.bootstrap, kafka.topic, expect=2)  # alice's deposit, then the transfer
    [message] = [m for m in messages if m["key"] == body["hash"]]
    assert message["headers"] == {"event_id": str(row.event_id), "trace_id": "trace-events-0001"}
    assert message["value"] == {
        "event_id": str(row.event_id),
        "event_type": "tx.created",
        "schema_version": 1,
        "occurred_at": body["created_at"],
        "trace_id": "trace-events-0001",
        "hash": body["hash"],
        "from_user_id": alice.pk,
        "to_user_id": bob.pk,
        "amount": "12.50000000",
        "timestamp": body["created_at"],
        "transaction": {field: body[field] for field in TRANSACTION_FIELDS},
    }
    assert message["value"]["transaction"]["memo"] == "lunch"
    assert message["value"]["transaction"]["currency"] == "USDT"


def test_transfers_succeed_during_an_outage_and_the_relay_delivers_every_event(kafka, user_factory, client_for):
    alice, bob = user_factory(balance=100), user_factory()
    client = client_for(alice)
    response = client.post("/wallet/transfer", {"to_user_id": bob.pk, "amount": "1"}, format="json")
    assert response.status_code == 200, response.content
    assert wait_for(lambda: pending() == 0), "events were not published while the broker was up"

    with kafka.broker.stalled():
        durations = []
        for _ in range(8):
            started = time.perf_counter()
            response = client.post("/wallet/transfer", {"to_user_id": bob.pk, "amount": "1"}, format="json")
            durations.append(time.perf_counter() - started)
            assert response.status_code == 200, response.content
        assert max(durations) < 0.5, f"a transfer waited for the broker: {durations}"
        assert pending() == 8, "the events of the outage must wait in the outbox"

        publisher.reset()  # this web process goes away; what it queued is now the relay's job
        with pytest.raises(CommandError, match="8 event"):
            relay_once()
        for row in OutboxEvent.objects.filter(state=OutboxEvent.State.PENDING):
            assert row.attempts == 1 and row.last_error
            assert row.available_at > timezone.now(), "a failed row must back off before its retry"

    assert pending() == 8, "nothing may be marked published while the broker was stalled"
    # The first backoff is about two seconds.
    assert wait_for(lambda: not OutboxEvent.objects.filter(available_at__gt=timezone.now()).exists(), timeout=5)
    assert relay_once() == {"published": 8, "failed": 0}
    assert pending() == 0

    messages = read_topic(kafka.bootstrap, kafka.topic)
    event_ids = {m["value"]["event_id"] for m in messages}
    assert len(event_ids) == Transaction.objects.count() == 10  # the deposit and nine transfers
    assert event_ids == {str(e) for e in OutboxEvent.objects.values_list("event_id", flat=True)}


def test_the_on_commit_path_recovers_by_itself_after_an_outage(kafka, user_factory, client_for):
    alice, bob = user_factory(balance=100), user_factory()
    client = client_for(alice)
    assert wait_for(lambda: pending() == 0)

    with kafka.broker.stalled():
        lost = client.post("/wallet/transfer", {"to_user_id": bob.pk, "amount": "1"}, format="json").json()
        # The delivery times out (KAFKA_DELIVERY_TIMEOUT_MS) and the row says why it is still pending.
        assert wait_for(lambda: OutboxEvent.objects.get(key=lost["hash"]).last_error, timeout=10)

    after = client.post("/wallet/transfer", {"to_user_id": bob.pk, "amount": "1"}, format="json").json()
    assert wait_for(lambda: OutboxEvent.objects.get(key=after["hash"]).state == OutboxEvent.State.PUBLISHED), (
        "the web process did not publish again once the broker was back"
    )
    assert list(OutboxEvent.objects.filter(state=OutboxEvent.State.PENDING).values_list("key", flat=True)) == [
        lost["hash"]
    ], "only the event of the outage is left, for the relay"


def test_ready_reports_the_broker_and_the_outbox_backlog(kafka, user_factory, api):
    with override_settings(KAFKA_BOOTSTRAP_SERVERS=""):
        user_factory(balance=5)  # its deposit event stays in the outbox: nothing publishes
        body = api.get("/ready").json()
        assert (body["kafka"], body["outbox_backlog"]) == ("disabled", 1)

    body = api.get("/ready").json()
    assert body == {"status": "ready", "database": "connected", "kafka": "connected", "outbox_backlog": 1}

    publisher.reset()  # forget the cached answer
    with kafka.broker.stalled():
        started = time.perf_counter()
        response = api.get("/ready")
        elapsed = time.perf_counter() - started
    assert response.status_code == 200
    assert response.json()["kafka"] == "unavailable"
    assert elapsed < 2, f"/ready waited {elapsed:.1f}s for the broker"
