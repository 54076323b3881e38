"""manage.py consume_events: what operators use to look at the topic and check it."""

import json
from io import StringIO

import pytest
from confluent_kafka import Producer
from django.core.management import CommandError, call_command

from events.models import OutboxEvent
from tests.events.conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def consume(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("consume_events", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_consume_events_prints_and_checks_the_topic(kafka, user_factory, client_for):
    alice, bob = user_factory(balance=50), user_factory(balance=1)
    response = client_for(alice).post("/wallet/transfer", {"to_user_id": bob.pk, "amount": "5"}, format="json")
    assert response.status_code == 200
    assert wait_for(lambda: not OutboxEvent.objects.filter(state=OutboxEvent.State.PENDING).exists())

    stdout, _ = consume("--check")
    assert json.loads(stdout) == {"messages": 3, "distinct_event_ids": 3, "malformed": 0}

    stdout, _ = consume("--max", "2")
    lines = [json.loads(line) for line in stdout.splitlines()]
    assert len(lines) == 2
    assert {line["value"]["event_type"] for line in lines} == {"tx.created"}
    assert all(line["key"] == line["value"]["hash"] for line in lines)

    stdout, _ = consume()
    transfer = [json.loads(line) for line in stdout.splitlines() if json.loads(line)["key"] == response.json()["hash"]]
    assert [event["value"]["transaction"]["type"] for event in transfer] == ["transfer"]

    producer = Producer({"bootstrap.servers": kafka.bootstrap})
    producer.produce(kafka.topic, key=b"not-a-hash", value=b'{"event_type": "tx.created"}')
    assert producer.flush(5) == 0
    with pytest.raises(CommandError, match="1 malformed"):
        consume("--check")


def test_consume_events_refuses_a_missing_topic(kafka):
    with pytest.raises(CommandError, match="does not exist"):
        consume("--topic", "no.such.topic", "--timeout", "3")
