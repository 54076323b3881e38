"""hold.* and withdrawal.* on a real broker: topic wallet.events, keyed by the hold or request id.

Each test publishes to a wallet-events topic of its own that the broker does not have yet: with
auto-creation off, the on-commit publisher and the relay must create it themselves.
"""

import json
import uuid
from decimal import Decimal
from io import StringIO

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from django.conf import settings
from django.core.management import CommandError, call_command
from django.test import override_settings

from events.models import OutboxEvent
from holds.services import hold_create, hold_void
from tests.events.conftest import read_topic, relay_once, wait_for

# on_commit must really fire: no wrapping test transaction (as in test_publish.py).
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@pytest.fixture
def wallet_topic(kafka):
    topic = f"wallet.events.{uuid.uuid4().hex[:12]}"
    assert topic not in topics(kafka.bootstrap)
    with override_settings(KAFKA_WALLET_EVENTS_TOPIC=topic):
        yield topic


def topics(bootstrap: str) -> dict:
    return AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=5).topics


def pending() -> int:
    return OutboxEvent.objects.filter(state=OutboxEvent.State.PENDING).count()


def consume(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("consume_events", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def hold_made_and_voided(user_factory, usdt):
    alice, bob = user_factory(balance=100), user_factory()
    hold = hold_create(payer_id=alice.pk, payee_id=bob.pk, currency=usdt, amount=Decimal("30"), memo="deposit")
    hold_void(hold_id=hold.pk, actor=alice)
    return hold


def assert_hold_events_on(kafka, topic: str, hold) -> None:
    messages = read_topic(kafka.bootstrap, topic, expect=2)
    assert [m["value"]["event_type"] for m in messages] == ["hold.created", "hold.voided"]
    assert [m["key"] for m in messages] == [str(hold.pk)] * 2
    assert [m["value"]["hold"]["status"] for m in messages] == ["active", "voided"]
    assert {m["value"]["hold"]["uid"] for m in messages} == {str(hold.uid)}
    rows = OutboxEvent.objects.filter(topic=topic).order_by("id")
    assert [m["headers"]["event_id"] for m in messages] == [str(row.event_id) for row in rows]
    # Created with the configured partition count, not a broker default.
    assert len(topics(kafka.bootstrap)[topic].partitions) == settings.KAFKA_TOPIC_PARTITIONS

    stdout, stderr = consume("--check", "--topic", topic)
    assert json.loads(stdout) == {"messages": 2, "distinct_event_ids": 2, "malformed": 0}, stderr


def test_the_on_commit_publisher_delivers_hold_events_to_wallet_events(kafka, wallet_topic, user_factory, usdt):
    hold = hold_made_and_voided(user_factory, usdt)

    # Published by the on-commit path alone (it creates the topic): no relay runs here.
    assert wait_for(lambda: pending() == 0), "the on-commit publisher left events pending"
    assert_hold_events_on(kafka, wallet_topic, hold)
    # tx.created is untouched: alice's deposit, on its own topic.
    [deposit] = read_topic(kafka.bootstrap, kafka.topic, expect=1)
    assert deposit["value"]["event_type"] == "tx.created"

    # A message that is no wallet event makes the check fail.
    producer = Producer({"bootstrap.servers": kafka.bootstrap})
    producer.produce(wallet_topic, key=str(hold.pk).encode(), value=b'{"event_type": "tx.created"}')
    assert producer.flush(5) == 0
    with pytest.raises(CommandError, match="1 malformed"):
        consume("--check", "--topic", wallet_topic)


def test_the_relay_delivers_hold_events_to_wallet_events(kafka, wallet_topic, user_factory, usdt):
    with override_settings(KAFKA_BOOTSTRAP_SERVERS=""):  # nothing published after commit: all left to the relay
        hold = hold_made_and_voided(user_factory, usdt)
    assert pending() == 3  # the deposit and the two hold events

    assert relay_once() == {"published": 3, "failed": 0}
    assert pending() == 0
    assert_hold_events_on(kafka, wallet_topic, hold)
