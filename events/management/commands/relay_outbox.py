"""Publish outbox rows that the on-commit path did not deliver (a crash, an outage, a full queue).

Each batch runs in one database transaction: ``SELECT ... FOR UPDATE SKIP LOCKED`` claims up to
``--batch-size`` pending rows (ordered by id, older than ``--grace`` so the on-commit publish gets
its chance first, and due according to their backoff), produces them, waits for the delivery
reports, marks delivered rows published and schedules the rest with exponential backoff. Several
copies can run at once: SKIP LOCKED gives each its own rows. A copy killed mid-batch rolls back, so
its rows stay pending and are published again (at least once; consumers deduplicate on event_id).
"""

from __future__ import annotations

import json
import logging
import random
import signal
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from functools import partial

from confluent_kafka import KafkaError, KafkaException, Message, Producer
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, close_old_connections, connection, transaction
from django.db.models import Q
from django.db.models.functions import Now
from django.utils import timezone

from events.models import OutboxEvent
from events.publisher import (
    TOPIC_RETRY_S,
    delivery_error_text,
    ensure_topic,
    produce,
    producer_config,
)

logger = logging.getLogger("wallet.outbox.relay")

# The batch's transaction stays open while Kafka acknowledges, so delivery must give up well within
# PostgreSQL's idle_in_transaction_session_timeout (30 s): topic check <= 6 s, delivery 15 s, 2 s slack.
MAX_DELIVERY_TIMEOUT_MS = 15_000
FLUSH_SLACK_S = 2.0
BACKOFF_BASE_S = 2.0
BACKOFF_MAX_S = 300.0
DB_ERROR_PAUSE_S = 5.0


def backoff(attempts: int) -> timedelta:
    """2 s, 4 s, 8 s ... capped at 5 min, with jitter so that failed rows do not retry in lockstep."""
    delay = min(BACKOFF_BASE_S * 2 ** max(attempts - 1, 0), BACKOFF_MAX_S)
    return timedelta(seconds=delay * random.uniform(0.8, 1.2))


@dataclass
class BatchResult:
    claimed: int = 0
    published: int = 0
    failed: int = 0


class Relay:
    def __init__(self, *, bootstrap: str, batch_size: int, grace: float) -> None:
        self.bootstrap = bootstrap
        self.batch_size = batch_size
        self.grace = timedelta(seconds=grace)
        self.delivery_timeout_ms = min(settings.KAFKA_DELIVERY_TIMEOUT_MS, MAX_DELIVERY_TIMEOUT_MS)
        self.ready_topics: set[str] = set()
        self.topic_retry_at: dict[str, float] = {}
        self.producer: Producer | None = None

    def ensure_topics(self, topics: set[str]) -> None:
        """Create missing topics; after a failure, wait a while before asking the broker again."""
        for topic in topics - self.ready_topics:
            if time.monotonic() < self.topic_retry_at.get(topic, 0.0):
                continue
            if ensure_topic(bootstrap=self.bootstrap, topic=topic):
                self.ready_topics.add(topic)
            else:
                self.topic_retry_at[topic] = time.monotonic() + TOPIC_RETRY_S

    def _producer(self) -> Producer:
        if self.producer is None:
            self.producer = Producer(
                producer_config(bootstrap=self.bootstrap, delivery_timeout_ms=self.delivery_timeout_ms)
            )
        return self.producer

    def discard_producer(self) -> None:
        if self.producer is not None:
            self.producer.purge()
            self.producer.poll(0)
            self.producer = None

    def run_batch(self) -> BatchResult:
        result = BatchResult()
        now = timezone.now()
        with transaction.atomic():
            rows = list(
                OutboxEvent.objects.select_for_update(skip_locked=True)
                .filter(state=OutboxEvent.State.PENDING, created_at__lte=now - self.grace)
                .filter(Q(available_at__isnull=True) | Q(available_at__lte=now))
                .order_by("id")[: self.batch_size]
            )
            if not rows:
                return result
            result.claimed = len(rows)
            self.ensure_topics({row.topic for row in rows})
            errors = self._deliver(rows)
            failed_at = timezone.now()
            delivered = [row.pk for row in rows if errors.get(row.pk) == ""]
            failed = [row for row in rows if errors.get(row.pk) != ""]
            OutboxEvent.objects.filter(pk__in=delivered).update(state=OutboxEvent.State.PUBLISHED, published_at=Now())
            for row in failed:
                row.attempts += 1
                row.last_error = errors.get(row.pk) or "no delivery report before the flush timeout"
                row.available_at = failed_at + backoff(row.attempts)
            OutboxEvent.objects.bulk_update(failed, ["attempts", "last_error", "available_at"])
            result.published, result.failed = len(delivered), len(failed)
        if failed:
            logger.warning(
                "outbox rows not delivered; retrying with backoff",
                extra={"events": len(failed), "error": failed[0].last_error},
            )
            # A fresh producer for the next batch: after failed deliveries the idempotent producer's
            # sequence state is suspect, and some brokers fence it for good.
            self.discard_producer()
        return result

    def _deliver(self, rows: list[OutboxEvent]) -> dict[int, str]:
        """Produce the rows and wait (bounded) for their reports: pk -> "" when delivered, else the error."""
        errors: dict[int, str] = {}

        def on_delivery(pk: int, err: KafkaError | None, msg: Message) -> None:
            # A row produced twice within a batch cannot happen; keep the first report anyway.
            errors.setdefault(pk, delivery_error_text(err))

        producer = self._producer()
        for row in rows:
            try:
                produce(producer, row, on_delivery=partial(on_delivery, row.pk))
            except (BufferError, KafkaException) as exc:
                errors[row.pk] = repr(exc)
        remaining = producer.flush(self.delivery_timeout_ms / 1000 + FLUSH_SLACK_S)
        if remaining:
            producer.purge()
            producer.flush(0.5)
        return errors


class Command(BaseCommand):
    help = "Publish pending outbox events to Kafka (long-running; several copies may run at once)."

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="publish what is due now, then exit")
        parser.add_argument("--batch-size", type=int, default=100, help="rows per transaction (default 100)")
        parser.add_argument(
            "--interval", type=float, default=1.0, help="seconds to wait when there is nothing to do (default 1)"
        )
        parser.add_argument(
            "--grace",
            type=float,
            default=5.0,
            help="leave rows younger than this many seconds to the on-commit publisher (default 5)",
        )

    def handle(self, *args, once: bool, batch_size: int, interval: float, grace: float, **options):
        bootstrap = settings.KAFKA_BOOTSTRAP_SERVERS
        if not bootstrap:
            raise CommandError("KAFKA_BOOTSTRAP_SERVERS is not set: there is no broker to relay to")
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1")

        stop = threading.Event()
        previous = self._install_signal_handlers(stop)
        relay = Relay(bootstrap=bootstrap, batch_size=batch_size, grace=grace)
        try:
            # The event topics consumers subscribe to exist from the start; any other is ensured with its rows.
            relay.ensure_topics({settings.KAFKA_TOPIC, settings.KAFKA_WALLET_EVENTS_TOPIC})
            logger.info("relay started", extra={"batch_size": batch_size, "interval": interval, "once": once})
            totals = self._loop(relay, stop=stop, once=once, interval=interval)
        finally:
            relay.discard_producer()
            connection.close()
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        logger.info("relay stopped", extra={"published": totals.published, "failed": totals.failed})
        if once:
            self.stdout.write(json.dumps({"published": totals.published, "failed": totals.failed}))
            if totals.failed:
                raise CommandError(f"{totals.failed} event(s) not delivered; they will be retried with backoff")

    @staticmethod
    def _loop(relay: Relay, *, stop: threading.Event, once: bool, interval: float) -> BatchResult:
        totals = BatchResult()
        while not stop.is_set():
            close_old_connections()
            started = time.monotonic()
            try:
                batch = relay.run_batch()
            except DatabaseError as exc:
                if once:
                    raise CommandError(f"database error: {exc}") from exc
                logger.error("relay database error; pausing", extra={"error": str(exc)})
                connection.close()
                stop.wait(DB_ERROR_PAUSE_S)
                continue
            totals.claimed += batch.claimed
            totals.published += batch.published
            totals.failed += batch.failed
            if batch.claimed:
                logger.info(
                    "relay batch",
                    extra={
                        "claimed": batch.claimed,
                        "published": batch.published,
                        "failed": batch.failed,
                        "duration_ms": round((time.monotonic() - started) * 1000, 1),
                    },
                )
            if batch.claimed < relay.batch_size:
                if once:
                    break
                stop.wait(interval)
        return totals

    @staticmethod
    def _install_signal_handlers(stop: threading.Event) -> dict:
        """SIGTERM/SIGINT finish the current batch, then stop; returns the handlers to put back."""

        def request_stop(signum, frame):
            logger.info("relay stopping after the current batch", extra={"signal": signal.Signals(signum).name})
            stop.set()
            # A second signal stops at once (the open batch rolls back; its rows stay pending).
            signal.signal(signum, signal.SIG_DFL)

        return {signum: signal.signal(signum, request_stop) for signum in (signal.SIGTERM, signal.SIGINT)}
