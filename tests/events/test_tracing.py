"""One trace from the request to the consumer, with the SDK's in-memory exporter in this process.

A transfer sent with a W3C ``traceparent``: the request span continues it, the SQL spans are its
children, the outbox row keeps its context, the produce (on commit or by the relay) is a child of it and
the Kafka message carries the produce span's context (one ``traceparent`` header, the confluent-kafka
instrumentation's), which the checking consumer continues.
"""

from io import StringIO

import pytest
from django.core.management import call_command
from django.test import override_settings
from opentelemetry.trace import SpanKind

from events.models import OutboxEvent
from tests.events.conftest import read_topic, relay_once, wait_for
from tests.otel import hex_parent, hex_span, hex_trace, parse_traceparent, traceparent

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"


def transfer(client_for, sender, recipient, **headers):
    response = client_for(sender).post(
        "/wallet/transfer", {"to_user_id": recipient.pk, "amount": "5"}, format="json", **headers
    )
    assert response.status_code == 200, response.content
    return response


def traced_transfer(client_for, user_factory):
    alice, bob = user_factory(balance=100), user_factory()
    return transfer(client_for, alice, bob, HTTP_TRACEPARENT=traceparent(TRACE, CALLER_SPAN))


def one(found: list, what: str):
    assert len(found) == 1, f"{what}: {[(s.name, s.kind) for s in found]}"
    return found[0]


def server_span(exporter):
    return one([s for s in exporter.get_finished_spans() if s.kind is SpanKind.SERVER], "request spans")


def sql_spans(exporter):
    return [
        s
        for s in exporter.get_finished_spans()
        if s.kind is SpanKind.CLIENT
        and "postgresql" in (s.attributes.get("db.system"), s.attributes.get("db.system.name"))
    ]


def statement(span) -> str:
    return str(span.attributes.get("db.statement") or span.attributes.get("db.query.text") or "")


def produce_spans(exporter, topic: str):
    """The produce spans of the traced transfer (the sender's deposit is produced in a trace of its own)."""
    return [
        s
        for s in exporter.get_finished_spans()
        if s.kind is SpanKind.PRODUCER and s.name == f"{topic} send" and hex_trace(s) == TRACE
    ]


def transfer_message(messages: list[dict]) -> dict:
    return one([m for m in messages if m["value"]["transaction"]["type"] == "transfer"], "transfer messages")


def test_the_request_span_continues_the_callers_trace_and_holds_the_sql_and_the_outbox_context(
    spans, user_factory, client_for
):
    response = traced_transfer(client_for, user_factory)

    request = server_span(spans)
    assert (hex_trace(request), hex_parent(request)) == (TRACE, CALLER_SPAN)
    assert request.attributes["http.route"] == "wallet/transfer"
    # No X-Trace-ID came: the OpenTelemetry trace id is the request's trace id, in logs and events too.
    assert response["X-Trace-ID"] == TRACE
    sql = sql_spans(spans)
    assert sql, "no SQL spans"
    assert {(hex_trace(s), hex_parent(s)) for s in sql} == {(TRACE, hex_span(request))}
    statements = [statement(s) for s in sql]
    # The prepared lock and the single write (server-binding cursors, wallet_project/core/db.py) are traced too.
    assert any("FOR UPDATE" in text for text in statements), statements
    assert any("INSERT INTO core_outboxevent" in text for text in statements), statements
    row = OutboxEvent.objects.get(payload__transaction__type="transfer")
    assert parse_traceparent(row.headers["traceparent"]) == (TRACE, hex_span(request))
    assert row.headers["trace_id"] == TRACE


def test_a_client_trace_id_is_kept_and_recorded_on_the_request_span(spans, user_factory, client_for):
    alice, bob = user_factory(balance=100), user_factory()
    response = transfer(
        client_for, alice, bob, HTTP_TRACEPARENT=traceparent(TRACE, CALLER_SPAN), HTTP_X_TRACE_ID="client-42"
    )

    assert response["X-Trace-ID"] == "client-42"
    request = server_span(spans)
    assert hex_trace(request) == TRACE
    assert request.attributes["wallet.trace_id"] == "client-42"


def test_with_tracing_off_a_traceparent_changes_nothing(user_factory, client_for):
    response = traced_transfer(client_for, user_factory)

    row = OutboxEvent.objects.get(payload__transaction__type="transfer")
    assert set(row.headers) == {"event_id", "trace_id"}
    assert response["X-Trace-ID"] != TRACE
    assert len(response["X-Trace-ID"]) == 32


def test_the_on_commit_produce_continues_the_request_and_the_message_carries_its_context(
    spans, kafka, user_factory, client_for
):
    traced_transfer(client_for, user_factory)
    # Published on commit, from the publisher's thread: read the topic once both rows are marked published
    # (before that the topic may not exist yet, a broker just back from an outage answering slowly).
    pending = OutboxEvent.objects.filter(topic=kafka.topic, state=OutboxEvent.State.PENDING)
    assert wait_for(lambda: not pending.exists(), timeout=20), "the on-commit publisher left events pending"
    message = transfer_message(read_topic(kafka.bootstrap, kafka.topic, expect=2))

    request = server_span(spans)
    produce = one(produce_spans(spans, kafka.topic), "produce spans")
    assert (hex_trace(produce), hex_parent(produce)) == (TRACE, hex_span(request))
    assert produce.attributes["messaging.system"] == "kafka"
    assert produce.attributes["messaging.destination"] == kafka.topic
    assert produce.instrumentation_scope.name == "opentelemetry.instrumentation.confluent_kafka"
    # Exactly one traceparent: the produce span's, not the row's besides it.
    assert message["header_names"].count("traceparent") == 1, message["header_names"]
    assert parse_traceparent(message["headers"]["traceparent"]) == (TRACE, hex_span(produce))
    assert message["headers"]["trace_id"] == TRACE


def test_the_relay_and_the_consumer_continue_the_trace_stored_in_the_outbox_row(spans, kafka, user_factory, client_for):
    with override_settings(KAFKA_BOOTSTRAP_SERVERS=""):  # only the relay publishes
        traced_transfer(client_for, user_factory)
    request = server_span(spans)
    assert produce_spans(spans, kafka.topic) == []

    assert relay_once()["published"] >= 1
    produce = one(produce_spans(spans, kafka.topic), "relay produce spans")
    assert (hex_trace(produce), hex_parent(produce)) == (TRACE, hex_span(request))
    [message] = [m for m in read_topic(kafka.bootstrap, kafka.topic) if m["value"]["transaction"]["type"] == "transfer"]
    assert message["header_names"].count("traceparent") == 1, message["header_names"]
    assert parse_traceparent(message["headers"]["traceparent"]) == (TRACE, hex_span(produce))

    call_command("consume_events", "--topic", kafka.topic, "--check", stdout=StringIO())
    consumed = [s for s in spans.get_finished_spans() if s.kind is SpanKind.CONSUMER and hex_trace(s) == TRACE]
    process = one(consumed, "consumer spans of the trace")
    assert process.name == f"process {kafka.topic}"
    assert hex_parent(process) == hex_span(produce)
