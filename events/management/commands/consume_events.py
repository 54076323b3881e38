"""Read an event topic (default tx.created) from the beginning and print each event as a JSON line.

The consumer ``assign()``s every partition directly (no consumer group: nothing to join, nothing
committed), so it starts reading at once and never disturbs real consumers. ``--check`` validates
every message against the versioned schema of its topic (events/schemas.py, docs/events.md):
``tx.created`` on ``KAFKA_TOPIC``, ``hold.*`` / ``withdrawal.*`` on ``KAFKA_WALLET_EVENTS_TOPIC``;
it prints the number of distinct event ids and exits non-zero if any message is malformed.
"""

from __future__ import annotations

import json
import time
from typing import cast

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from opentelemetry.trace import SpanKind

from events.publisher import kafka_logger
from events.schemas import event_problems, wallet_event_problems
from wallet_project.core.telemetry import span_from_headers


class Command(BaseCommand):
    help = "Print the events of a topic from its beginning as JSON lines (--check: validate them)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--topic", default=None, help="topic to read (default: KAFKA_TOPIC; KAFKA_WALLET_EVENTS_TOPIC for holds)"
        )
        parser.add_argument("--timeout", type=float, default=10.0, help="give up after this many seconds (default 10)")
        parser.add_argument("--max", dest="max_messages", type=int, default=None, help="stop after this many messages")
        parser.add_argument(
            "--follow", action="store_true", help="keep waiting for new messages at the end of the topic"
        )
        parser.add_argument(
            "--check", action="store_true", help="validate every message; print counts; exit 1 if any is malformed"
        )

    def handle(
        self, *args, topic: str | None, timeout: float, max_messages: int | None, follow: bool, check: bool, **options
    ):
        bootstrap = settings.KAFKA_BOOTSTRAP_SERVERS
        if not bootstrap:
            raise CommandError("KAFKA_BOOTSTRAP_SERVERS is not set")
        topic = topic or settings.KAFKA_TOPIC
        # The wallet-events topic carries hold.* and withdrawal.*; any other topic is read as tx.created.
        problems_of = wallet_event_problems if topic == settings.KAFKA_WALLET_EVENTS_TOPIC else event_problems
        deadline = time.monotonic() + timeout
        consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                # Required by the client, never joined: partitions are assigned directly.
                "group.id": "wallet-consume-events",
                "enable.auto.commit": False,
                "enable.partition.eof": True,
                "logger": kafka_logger,
            }
        )
        messages = malformed = 0
        event_ids: set[str] = set()
        try:
            try:
                metadata = consumer.list_topics(topic, timeout=max_wait(deadline))
            except KafkaException as exc:
                raise CommandError(f"broker unavailable: {exc}") from exc
            described = metadata.topics.get(topic)
            if described is None or described.error is not None or not described.partitions:
                raise CommandError(f"topic {topic!r} does not exist")
            partitions = sorted(described.partitions)
            consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
            at_end: set[int | None] = set()
            while time.monotonic() < deadline and (max_messages is None or messages < max_messages):
                if not follow and len(at_end) == len(partitions):
                    break
                msg = consumer.poll(min(0.5, max_wait(deadline)))
                if msg is None:
                    continue
                error = msg.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        at_end.add(msg.partition())
                        continue
                    raise CommandError(f"consume failed: {error}")
                at_end.discard(msg.partition())
                messages += 1
                # A consumed message's headers are (name, bytes) pairs; the stub's type is produce()'s argument's.
                raw_headers = cast("list[tuple[str, bytes | None]]", msg.headers() or [])
                headers = {name: (value or b"").decode(errors="replace") for name, value in raw_headers}
                # The message's traceparent (the produce span's) makes this a step of the request's trace.
                with span_from_headers(f"process {topic}", headers, kind=SpanKind.CONSUMER) as span:
                    if span.is_recording():
                        span.set_attributes(
                            {
                                "messaging.system": "kafka",
                                "messaging.operation.type": "process",
                                "messaging.destination.name": topic,
                                "messaging.destination.partition.id": str(msg.partition()),
                                "messaging.kafka.offset": msg.offset() or 0,
                                "messaging.message.id": headers.get("event_id", ""),
                            }
                        )
                    if check:
                        problems = problems_of(key=msg.key(), headers=headers, value=msg.value())
                        if problems:
                            malformed += 1
                            self.stderr.write(
                                json.dumps({"partition": msg.partition(), "offset": msg.offset(), "problems": problems})
                            )
                        else:
                            event_ids.add(headers["event_id"])
                        continue
                    self.stdout.write(json.dumps(_as_document(msg, headers)))
        finally:
            consumer.close()
        if check:
            summary = {"messages": messages, "distinct_event_ids": len(event_ids), "malformed": malformed}
            self.stdout.write(json.dumps(summary))
            if malformed:
                raise CommandError(f"{malformed} malformed message(s) on {topic}")


def max_wait(deadline: float) -> float:
    return max(deadline - time.monotonic(), 0.01)


def _as_document(msg, headers: dict[str, str]) -> dict:
    raw = msg.value() or b""
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw.decode(errors="replace")
    return {
        "topic": msg.topic(),
        "partition": msg.partition(),
        "offset": msg.offset(),
        "key": msg.key().decode(errors="replace") if msg.key() is not None else None,
        "headers": headers,
        "value": value,
    }
