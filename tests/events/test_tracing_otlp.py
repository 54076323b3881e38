"""The issue's check: one trace over OTLP, from the request through Kafka to the webhook, each process its own.

The API under gunicorn, the relay, the checking consumer and the webhook deliverer export to a small
OTLP/HTTP receiver on loopback (tests/otel.py); a webhook endpoint on another loopback server receives the
delivery. A transfer sent with a ``traceparent`` must arrive as the request span, its SQL spans, the
relay's produce span, the consumer's span, the deliverer's ``webhook.deliver`` span and the httpx CLIENT
span under it, all under the caller's trace id; the Kafka message read back carries one ``traceparent``
of that trace, and the webhook receiver gets a ``traceparent`` of it too, beside a valid Standard
Webhooks signature.
"""

import uuid

from standardwebhooks.webhooks import Webhook

from tests.events.conftest import read_topic
from tests.live import live_api, migrated_template
from tests.otel import otlp_receiver, parse_traceparent, traceparent, tracing_env, worker
from tests.webhooks.support import Receiver

TRACE = "5b8aa5a2d2c872e8321cf37308d69df2"
CALLER_SPAN = "051581bf3cb55c13"
EXPECTED_KINDS = {"SPAN_KIND_SERVER", "SPAN_KIND_PRODUCER", "SPAN_KIND_CONSUMER", "SPAN_KIND_INTERNAL"}


def finished(process, timeout: float = 90) -> str:
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, out + err
    return out


def one(spans: list, what: str, **where):
    found = [s for s in spans if all(getattr(s, k) == v for k, v in where.items())]
    assert len(found) == 1, f"{what}: {[(s.service, s.kind, s.name) for s in spans]}"
    return found[0]


def test_a_transfer_is_one_trace_over_otlp_from_the_request_through_kafka_to_the_webhook(kafka_broker):
    topic = f"tx.created.{uuid.uuid4().hex[:12]}"
    kafka = {"KAFKA_BOOTSTRAP_SERVERS": kafka_broker.bootstrap, "KAFKA_TOPIC": topic}
    with (
        otlp_receiver() as otlp,
        Receiver() as endpoint,
        migrated_template("otel") as template,
        # The API publishes nothing itself (no broker): the event reaches Kafka through the outbox row and the relay.
        live_api(
            template,
            "otel",
            workers=1,
            KAFKA_TOPIC=topic,
            WEBHOOK_ALLOW_PRIVATE_TARGETS="true",  # the endpoint is on loopback
            **tracing_env(otlp, "wallet-api"),
        ) as api,
    ):
        alice, bob = api.seed(["alice", "bob"], funds={"USDT": "100"})
        created = api.http.post("/webhooks", {"url": endpoint.url, "event_types": ["*"]}, token=alice["token"])
        assert created.status == 201, created.body
        reply = api.http.post(
            "/wallet/transfer",
            {"to_user_id": bob["id"], "amount": "5"},
            token=alice["token"],
            headers={"traceparent": traceparent(TRACE, CALLER_SPAN)},
        )
        assert reply.status == 200, reply.body
        assert reply.headers["x-trace-id"] == TRACE

        with worker(
            {**api.env, **kafka, **tracing_env(otlp, "wallet-relay")}, "relay_outbox", "--once", "--grace", "0"
        ) as relay:
            finished(relay)
        [message] = [
            m for m in read_topic(kafka_broker.bootstrap, topic) if m["value"]["transaction"]["type"] == "transfer"
        ]
        assert message["header_names"].count("traceparent") == 1, message["header_names"]
        message_trace, message_parent = parse_traceparent(message["headers"]["traceparent"])
        assert message_trace == TRACE
        with worker(
            {**api.env, **kafka, **tracing_env(otlp, "wallet-consumer")}, "consume_events", "--topic", topic, "--check"
        ) as consumer:
            finished(consumer)
        with worker({**api.env, **tracing_env(otlp, "wallet-webhooks")}, "deliver_webhooks", "--once") as deliverer:
            finished(deliverer)

        spans = otlp.wait_for(
            TRACE,
            lambda found: (
                EXPECTED_KINDS <= {s.kind for s in found}
                and any(s.service == "wallet-webhooks" and s.kind == "SPAN_KIND_CLIENT" for s in found)
            ),
        )

    [delivered] = [r for r in endpoint.received if r.json().get("transaction", {}).get("type") == "transfer"]
    Webhook(created.json()["secret"]).verify(delivered.body, delivered.headers)
    assert delivered.headers["webhook-id"] == message["headers"]["event_id"]
    webhook_trace, webhook_parent = parse_traceparent(delivered.headers["traceparent"])

    request = one(spans, "request spans", kind="SPAN_KIND_SERVER")
    assert (request.service, request.parent_id, request.attributes["http.route"]) == (
        "wallet-api",
        CALLER_SPAN,
        "wallet/transfer",
    )
    sql = [s for s in spans if s.kind == "SPAN_KIND_CLIENT" and s.attributes.get("db.system") == "postgresql"]
    assert sql and {(s.service, s.parent_id) for s in sql} == {("wallet-api", request.span_id)}
    statements = [str(s.attributes.get("db.statement")) for s in sql]
    assert any("INSERT INTO core_outboxevent" in text for text in statements), statements
    assert any("FOR UPDATE" in text for text in statements), statements  # the prepared lock
    produce = one(spans, "produce spans", kind="SPAN_KIND_PRODUCER")
    assert (produce.service, produce.name, produce.parent_id) == ("wallet-relay", f"{topic} send", request.span_id)
    assert message_parent == produce.span_id
    process = one(spans, "consumer spans", kind="SPAN_KIND_CONSUMER")
    assert (process.service, process.name, process.parent_id) == (
        "wallet-consumer",
        f"process {topic}",
        produce.span_id,
    )
    deliver = one(spans, "webhook deliver spans", kind="SPAN_KIND_INTERNAL")
    assert (deliver.service, deliver.name, deliver.parent_id) == ("wallet-webhooks", "webhook.deliver", request.span_id)
    assert deliver.attributes["webhook.event_id"] == delivered.headers["webhook-id"]
    assert deliver.attributes["http.response.status_code"] == 200
    http = one(spans, "webhook request spans", kind="SPAN_KIND_CLIENT", service="wallet-webhooks")
    assert (http.name, http.parent_id) == ("POST", deliver.span_id)
    assert (webhook_trace, webhook_parent) == (TRACE, http.span_id)
