"""One trace over OTLP: the API under gunicorn, the relay and the checking consumer, each a process of its own.

Each process exports to a small OTLP/HTTP receiver on loopback (tests/otel.py). A transfer sent with a
``traceparent`` must arrive as the request span, its SQL spans, the relay's produce span and the
consumer's span, all under the caller's trace id; the Kafka message read back carries the same trace.
A further worker (the webhook deliverer) joins with one more ``worker(...)`` and its expected span.
"""

import uuid

from tests.events.conftest import read_topic
from tests.live import live_api, migrated_template
from tests.otel import otlp_receiver, parse_traceparent, traceparent, tracing_env, worker

TRACE = "5b8aa5a2d2c872e8321cf37308d69df2"
CALLER_SPAN = "051581bf3cb55c13"


def finished(process, timeout: float = 90) -> str:
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, out + err
    return out


def test_a_transfer_is_one_trace_over_otlp_from_the_request_through_the_relay_to_the_consumer(kafka_broker):
    topic = f"tx.created.{uuid.uuid4().hex[:12]}"
    kafka = {"KAFKA_BOOTSTRAP_SERVERS": kafka_broker.bootstrap, "KAFKA_TOPIC": topic}
    with (
        otlp_receiver() as receiver,
        migrated_template("otel") as template,
        # The API publishes nothing itself (no broker): the event reaches Kafka through the outbox row and the relay.
        live_api(template, "otel", workers=1, KAFKA_TOPIC=topic, **tracing_env(receiver, "wallet-api")) as api,
    ):
        alice, bob = api.seed(["alice", "bob"], funds={"USDT": "100"})
        reply = api.http.post(
            "/wallet/transfer",
            {"to_user_id": bob["id"], "amount": "5"},
            token=alice["token"],
            headers={"traceparent": traceparent(TRACE, CALLER_SPAN)},
        )
        assert reply.status == 200, reply.body
        assert reply.headers["x-trace-id"] == TRACE

        with worker(
            {**api.env, **kafka, **tracing_env(receiver, "wallet-relay")}, "relay_outbox", "--once", "--grace", "0"
        ) as relay:
            finished(relay)
        [message] = [
            m for m in read_topic(kafka_broker.bootstrap, topic) if m["value"]["transaction"]["type"] == "transfer"
        ]
        message_trace, message_parent = parse_traceparent(message["headers"]["traceparent"])
        assert message_trace == TRACE
        with worker(
            {**api.env, **kafka, **tracing_env(receiver, "wallet-consumer")},
            "consume_events",
            "--topic",
            topic,
            "--check",
        ) as consumer:
            finished(consumer)

        expected = {"SPAN_KIND_SERVER", "SPAN_KIND_PRODUCER", "SPAN_KIND_CONSUMER"}
        spans = receiver.wait_for(TRACE, lambda found: expected <= {s.kind for s in found})

    by_kind: dict[str, list] = {}
    for span in spans:
        by_kind.setdefault(span.kind, []).append(span)
    [request] = by_kind["SPAN_KIND_SERVER"]
    assert (request.service, request.parent_id, request.attributes["http.route"]) == (
        "wallet-api",
        CALLER_SPAN,
        "wallet/transfer",
    )
    sql = [s for s in by_kind.get("SPAN_KIND_CLIENT", []) if s.attributes.get("db.system") == "postgresql"]
    assert sql and {(s.service, s.parent_id) for s in sql} == {("wallet-api", request.span_id)}
    assert any("INSERT INTO core_outboxevent" in str(s.attributes.get("db.statement")) for s in sql)
    [produce] = by_kind["SPAN_KIND_PRODUCER"]
    assert (produce.service, produce.name, produce.parent_id) == ("wallet-relay", f"send {topic}", request.span_id)
    assert message_parent == produce.span_id
    [process] = by_kind["SPAN_KIND_CONSUMER"]
    assert (process.service, process.name, process.parent_id) == (
        "wallet-consumer",
        f"process {topic}",
        produce.span_id,
    )
