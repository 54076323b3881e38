"""Kafka publishing of outbox rows.

An event reaches Kafka by one of two paths (docs/events.md):

- right after its money movement commits, ``publish_after_commit`` hands the row to this process's
  producer and returns at once (``produce`` only queues); a daemon thread polls the producer and
  marks delivered rows ``published``;
- whatever is still pending after a crash, an outage or a full queue is published by the relay
  (``manage.py relay_outbox``), which shares the producer settings and message format below.

Delivery is at least once: a row may be published by both paths, and consumers deduplicate on
``event_id``.

With OpenTelemetry on, each produce (``produce``) is the confluent-kafka instrumentation's PRODUCER span
under the trace context the row was written in, and the message's one ``traceparent`` header is that
span's, so a consumer continues the request's trace; off, the message carries the row's headers as they are.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import threading
import time
from collections.abc import Iterable
from functools import partial
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.db.models.functions import Now
from opentelemetry import propagate

from events.models import OutboxEvent
from wallet_project.core.telemetry import context_from_headers, traced_producer

logger = logging.getLogger("wallet.outbox")
kafka_logger = logging.getLogger("wallet.kafka")

PROBE_TIMEOUT_S = 1.0
PROBE_CACHE_S = 5.0
TOPIC_TIMEOUT_S = 2.0
TOPIC_RETRY_S = 10.0
POLL_INTERVAL_S = 0.2
# The poller keeps its database connection while deliveries keep coming and closes it once idle.
IDLE_CLOSE_S = 5.0
MAX_ERROR_LENGTH = 1000


def producer_config(*, bootstrap: str, delivery_timeout_ms: int | None = None, **extra: Any) -> dict[str, Any]:
    """Settings shared by the on-commit producer and the relay: idempotent, acks=all, bounded delivery."""
    return {
        "bootstrap.servers": bootstrap,
        "client.id": f"wallet-outbox-{os.getpid()}",
        "enable.idempotence": True,
        "acks": "all",
        # Alias of delivery.timeout.ms: after this a message is reported failed and left to the relay.
        "message.timeout.ms": delivery_timeout_ms or settings.KAFKA_DELIVERY_TIMEOUT_MS,
        "linger.ms": 5,
        # Topics are created with the configured partition count, never by a broker default.
        "allow.auto.create.topics": False,
        "logger": kafka_logger,
        **extra,
    }


def produce(producer: Producer, event: OutboxEvent, **kwargs: Any) -> None:
    """``producer.produce`` of ``event`` (``kwargs``: ``on_delivery``), under the trace context stored in its row.

    Tracing on, the confluent-kafka instrumentation's proxy produces: its PRODUCER span is a child of the
    row's context and appends the span's ``traceparent`` to the headers, which therefore leave out the row's.
    """
    sender = traced_producer(producer)
    with context_from_headers(event.headers):
        sender.produce(**message_for(event, traced=sender is not producer), **kwargs)


def message_for(event: OutboxEvent, *, traced: bool = False) -> dict:
    """``Producer.produce`` arguments for an outbox row: key = transaction hash, value = JSON payload.

    The headers are the row's (``event_id``, ``trace_id``, and ``traceparent`` when it was written under a
    span), less the trace context when ``traced``: then the instrumentation adds the produce span's.
    """
    dropped = propagate.get_global_textmap().fields if traced else set()
    headers = {
        str(name): str(value)
        for name, value in (event.headers or {}).items()
        if value is not None and str(name) not in dropped
    }
    headers["event_id"] = str(event.event_id)
    headers.setdefault("trace_id", str(event.payload.get("trace_id") or ""))
    return {
        "topic": event.topic,
        "key": event.key.encode(),
        "value": json.dumps(event.payload, separators=(",", ":"), ensure_ascii=False).encode(),
        "headers": [(name, value.encode()) for name, value in headers.items()],
    }


def delivery_error_text(err: KafkaError | None) -> str:
    return "" if err is None else f"{err.name()}: {err.str()}"[:MAX_ERROR_LENGTH]


def ensure_topic(*, bootstrap: str, topic: str, partitions: int | None = None, replication: int | None = None) -> bool:
    """Create ``topic`` if the broker does not have it; True once it exists. Never raises."""
    # The stub allows only scalar settings, but the client takes a "logger" object as Producer() does.
    admin = AdminClient({"bootstrap.servers": bootstrap, "logger": kafka_logger})  # type: ignore[dict-item]
    try:
        if topic in admin.list_topics(timeout=TOPIC_TIMEOUT_S).topics:
            return True
        new = NewTopic(
            topic,
            num_partitions=partitions or settings.KAFKA_TOPIC_PARTITIONS,
            replication_factor=replication or settings.KAFKA_TOPIC_REPLICATION,
        )
        future = admin.create_topics([new], operation_timeout=TOPIC_TIMEOUT_S, request_timeout=TOPIC_TIMEOUT_S)[topic]
        future.result(timeout=TOPIC_TIMEOUT_S * 2)
        logger.info("kafka topic created", extra={"topic": topic, "partitions": new.num_partitions})
        return True
    except KafkaException as exc:
        if exc.args and isinstance(exc.args[0], KafkaError) and exc.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS:
            return True
        logger.warning("kafka topic not ensured", extra={"topic": topic, "error": str(exc)})
    except Exception as exc:  # noqa: BLE001 - a timeout or broker outage; the caller retries later
        logger.warning("kafka topic not ensured", extra={"topic": topic, "error": repr(exc)})
    return False


def _update_pending(pks: Iterable[int], **changes: Any) -> int:
    """``UPDATE`` pending rows among ``pks``, skipping rows a relay holds locked (it updates them itself)."""
    pks = list(pks)
    if not pks:
        return 0
    with transaction.atomic():
        # NO KEY UPDATE: a relay's FOR UPDATE still makes the row skipped, the webhooks fan-out's FOR KEY SHARE not.
        unlocked = OutboxEvent.objects.select_for_update(skip_locked=True, no_key=True).filter(
            pk__in=pks, state=OutboxEvent.State.PENDING
        )
        return OutboxEvent.objects.filter(pk__in=unlocked.values("pk")).update(**changes)


def mark_published(pks: Iterable[int]) -> int:
    return _update_pending(pks, state=OutboxEvent.State.PUBLISHED, published_at=Now())


class _ProcessPublisher:
    """One producer per process, polled by one daemon thread that also owns the database writes."""

    def __init__(self, *, bootstrap: str, topic: str) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.pid = os.getpid()
        # Every topic an event of this process goes to (tx.created, wallet.events, the checkpoints), each
        # ensured once by the poller thread: with auto-creation off a missing topic would fail deliveries.
        self._topics_lock = threading.Lock()
        self._topics: set[str] = {topic}
        self._ready_topics: set[str] = set()  # the poller thread's own
        self._topic_retry_at: dict[str, float] = {}
        self.stale = False
        self._outcomes: list[tuple[int, str]] = []
        self._outcomes_lock = threading.Lock()
        self._stop = threading.Event()
        self._drain_timeout = 0.0
        self.producer = Producer(producer_config(bootstrap=bootstrap, error_cb=self._on_error))
        self._thread = threading.Thread(target=self._run, name="outbox-publisher", daemon=True)
        self._thread.start()

    def publish(self, event: OutboxEvent) -> None:
        if event.topic not in self._topics:
            with self._topics_lock:
                self._topics.add(event.topic)
        try:
            produce(self.producer, event, on_delivery=partial(self._on_delivery, event.pk))
        except BufferError:
            logger.warning("kafka queue full; the relay will publish it", extra={"event_id": str(event.event_id)})

    def close(self, timeout: float = 0.0, *, wait: bool = True) -> None:
        """Stop polling; deliver what can be delivered within ``timeout``, leave the rest to the relay."""
        self._drain_timeout = timeout
        self._stop.set()
        if wait and threading.current_thread() is not self._thread:
            self._thread.join(timeout + 2 * TOPIC_TIMEOUT_S + 2)

    # -- callbacks: served by poll()/flush(), i.e. on the poller thread -------------------------
    def _on_delivery(self, pk: int, err: KafkaError | None, msg: Message) -> None:
        with self._outcomes_lock:
            self._outcomes.append((pk, delivery_error_text(err)))
        if err is not None:
            # After a failed delivery the idempotent producer's sequence state is suspect (some
            # brokers fence it for good); a fresh producer is cheaper than finding out.
            self.stale = True

    def _on_error(self, err: KafkaError) -> None:
        logger.warning("kafka client error", extra={"error": delivery_error_text(err), "fatal": err.fatal()})
        if err.fatal():
            self.stale = True

    # -- poller thread -------------------------------------------------------------------------
    def _ensure_topics(self) -> None:
        """Create the topics events were queued for that the broker may lack; retry a failure later.

        A message queued before its topic exists waits in the producer (for its delivery timeout)
        and goes out once the topic is there.
        """
        with self._topics_lock:
            missing = sorted(self._topics - self._ready_topics)
        for topic in missing:
            if time.monotonic() < self._topic_retry_at.get(topic, 0.0):
                continue
            if ensure_topic(bootstrap=self.bootstrap, topic=topic):
                self._ready_topics.add(topic)
            else:
                self._topic_retry_at[topic] = time.monotonic() + TOPIC_RETRY_S

    def _run(self) -> None:
        last_write = time.monotonic()
        try:
            while not self._stop.is_set():
                self._ensure_topics()
                self.producer.poll(POLL_INTERVAL_S)
                if self._write_outcomes():
                    last_write = time.monotonic()
                elif connection.connection is not None and time.monotonic() - last_write > IDLE_CLOSE_S:
                    connection.close()
                if self.stale:
                    break
        except Exception:  # noqa: BLE001 - the thread must never die silently; rows stay pending
            logger.exception("outbox publisher thread failed")
        finally:
            try:
                self._drain()
            except Exception:  # noqa: BLE001
                logger.exception("outbox publisher drain failed")
            finally:
                connection.close()

    def _drain(self) -> None:
        if self._drain_timeout > 0 and not self.stale:
            self.producer.flush(self._drain_timeout)
        # Whatever is still queued stays pending in the outbox; the relay publishes it.
        self.producer.purge()
        self.producer.flush(0.5)
        self._write_outcomes()

    def _write_outcomes(self) -> bool:
        with self._outcomes_lock:
            outcomes, self._outcomes = self._outcomes, []
        if not outcomes:
            return False
        close_old_connections()
        delivered = [pk for pk, error in outcomes if not error]
        failed: dict[str, list[int]] = {}
        for pk, error in outcomes:
            if error:
                failed.setdefault(error, []).append(pk)
        try:
            mark_published(delivered)
            for error, pks in failed.items():
                logger.warning("kafka delivery failed; relay will retry", extra={"events": len(pks), "error": error})
                _update_pending(pks, last_error=error)
        except Exception:  # noqa: BLE001 - the rows stay pending and the relay marks them later
            logger.exception("could not mark outbox rows", extra={"events": len(outcomes)})
            connection.close()
        return True


_lock = threading.Lock()
_current: _ProcessPublisher | None = None
_probe_lock = threading.Lock()
_probe_cache: tuple[str, float, str] | None = None


def _publisher() -> _ProcessPublisher:
    """This process's publisher, created on first use (again after a fork, a settings change or a failure)."""
    global _current
    bootstrap = settings.KAFKA_BOOTSTRAP_SERVERS
    with _lock:
        current = _current
        if current is not None and current.pid != os.getpid():
            current = None  # inherited through fork(): its threads do not exist here
        if current is not None and (current.stale or current.bootstrap != bootstrap):
            current.close(wait=False)  # winds down on its own thread; the request never waits for it
            current = None
        if current is None:
            current = _ProcessPublisher(bootstrap=bootstrap, topic=settings.KAFKA_TOPIC)
        _current = current
        return current


def publish_after_commit(event: OutboxEvent) -> None:
    """Queue the committed outbox row for Kafka; never waits for the broker and never raises.

    ``event`` is the row as written (the caller holds it in memory, so nothing is read back).
    """
    if not settings.KAFKA_BOOTSTRAP_SERVERS:
        return
    try:
        _publisher().publish(event)
    except Exception:  # noqa: BLE001 - the money has moved; the relay publishes what this could not
        logger.exception("outbox publish failed; the relay will publish the event", extra={"event_pk": event.pk})


def broker_state() -> str:
    """``disabled`` | ``connected`` | ``unavailable``: a metadata round trip, cached a few seconds."""
    global _probe_cache
    bootstrap = settings.KAFKA_BOOTSTRAP_SERVERS
    if not bootstrap:
        return "disabled"
    with _probe_lock:
        cached = _probe_cache
        if cached is not None and cached[0] == bootstrap and time.monotonic() - cached[1] < PROBE_CACHE_S:
            return cached[2]
        try:
            metadata = _publisher().producer.list_topics(timeout=PROBE_TIMEOUT_S)
            state = "connected" if metadata.brokers else "unavailable"
        except Exception:  # noqa: BLE001 - any failure to get metadata means the broker is unavailable
            state = "unavailable"
        _probe_cache = (bootstrap, time.monotonic(), state)
        return state


def reset(timeout: float = 0.0) -> None:
    """Stop this process's producer (delivering for up to ``timeout`` seconds) and forget cached state."""
    global _current, _probe_cache
    with _lock:
        current, _current = _current, None
    with _probe_lock:
        _probe_cache = None
    if current is not None and current.pid == os.getpid():
        current.close(timeout)


# On a clean exit (a worker recycled, a management command finishing) give queued events a moment.
atexit.register(reset, 2.0)
