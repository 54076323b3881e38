"""The issue's check, end to end: the API under gunicorn, `manage.py deliver_webhooks` as a real process,
a real receiver on loopback that goes down and comes back, the worker SIGKILLed mid-delivery, and the
broker down the whole time (a relay keeps failing against it): every event about the user arrives,
signed and verifiable, and the distinct event ids received are exactly the user's outbox rows."""

from __future__ import annotations

import signal
import subprocess
import threading
import time

from standardwebhooks.webhooks import Webhook

from tests.live import BIN, ROOT, free_port, live_api, live_template  # noqa: F401 - live_template is a fixture
from tests.webhooks.support import Answer, Receiver

CONCERNS = """
SELECT event_id::text FROM core_outboxevent
WHERE %s IN ((payload->>'from_user_id')::bigint, (payload->>'to_user_id')::bigint,
                (payload->'hold'->>'payer_user_id')::bigint, (payload->'hold'->>'payee_user_id')::bigint,
                (payload->'withdrawal_request'->>'user_id')::bigint)
"""

WORKER_ENV = {
    "WEBHOOK_LEASE_SECONDS": "4",
    "WEBHOOK_TIMEOUT_SECONDS": "2",
    "WEBHOOK_CONNECT_TIMEOUT_SECONDS": "1",
    "WEBHOOK_RETRY_SCHEDULE": "0.2,0.5,1",
    "LOG_LEVEL": "INFO",
}


def start(env: dict[str, str], *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [str(BIN / "python"), "manage.py", *args],
        cwd=ROOT,
        env={**env, **WORKER_ENV},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_every_event_about_the_user_arrives_through_an_outage_a_kill_and_a_broker_outage(live_template):  # noqa: F811
    gate = threading.Event()
    state = {"block_from": None}

    def answer(n: int) -> Answer:
        if state["block_from"] is not None and n >= state["block_from"] and not gate.is_set():
            return Answer(200, block=gate)  # held until the worker that sent it has been killed
        return Answer(200, b"ok")

    dead_broker = f"127.0.0.1:{free_port()}"
    receiver = Receiver(answer).start()
    try:
        with live_api(
            live_template,
            "webhooks",
            workers=2,
            WEBHOOK_ALLOW_PRIVATE_TARGETS="true",
            KAFKA_BOOTSTRAP_SERVERS=dead_broker,
            KAFKA_DELIVERY_TIMEOUT_MS="3000",
        ) as api:
            alice, bob = api.seed(["alice", "bob"], funds={"USDT": "100"})
            created = api.http.post("/webhooks", {"url": receiver.url, "event_types": ["*"]}, token=alice["token"])
            assert created.status == 201, created.body
            secret = created.json()["secret"]
            relay = start(api.env, "relay_outbox", "--grace", "0", "--interval", "0.2")
            worker = start(api.env, "deliver_webhooks", "--interval", "0.2")
            try:

                def transfer(sender, recipient, amount="1"):
                    reply = api.http.post(
                        "/wallet/transfer",
                        {"to_user_id": recipient["id"], "currency": "USDT", "amount": amount},
                        token=sender["token"],
                    )
                    assert reply.status == 200, reply.body

                transfer(alice, bob)
                transfer(bob, alice)
                hold = api.http.post(
                    "/holds", {"currency": "USDT", "amount": "5", "to_user_id": bob["id"]}, token=alice["token"]
                )
                assert hold.status == 201, hold.body
                assert api.http.post(f"/holds/{hold.json()['id']}/capture", {}, token=bob["token"]).status == 200
                receiver.wait_for(5, timeout=60)  # the seed deposit, two transfers, the hold, its capture

                # The receiver goes down: deliveries fail and are retried; it comes back on the same port.
                receiver.stop()
                transfer(alice, bob)
                transfer(bob, alice)
                time.sleep(3)
                receiver.start()
                receiver.wait_for(7, timeout=60)

                # The worker is killed while the receiver holds its request open.
                state["block_from"] = len(receiver.received)
                transfer(alice, bob)
                wait_until(lambda: len(receiver.received) > state["block_from"], 30, "the blocked request")
                worker.send_signal(signal.SIGKILL)
                worker.wait(10)
                gate.set()
                transfer(bob, alice)  # written while no worker runs
                worker = start(api.env, "deliver_webhooks", "--interval", "0.2")

                expected = {row[0] for row in api.sql(CONCERNS, [alice["id"]])}
                assert len(expected) >= 9  # the seed deposit, 7 transfers or captures, the hold
                wait_until(lambda: set(receiver.event_ids()) >= expected, 60, "every event after the restart")
                assert set(receiver.event_ids()) == expected  # and nothing about anyone else
                assert len(receiver.received) >= len(expected)  # at least once: the killed one maybe twice
                for request in receiver.received:
                    Webhook(secret).verify(request.body, request.headers)
                    assert request.headers["webhook-id"] == request.json()["event_id"]
                # Kafka never took a single event: the broker was down throughout.
                assert api.sql("SELECT count(*) FROM core_outboxevent WHERE state = 'published'") == [(0,)]
                statuses = api.sql("SELECT status, count(*) FROM webhooks_webhookdelivery GROUP BY status")
                assert statuses == [("succeeded", len(expected))]
                # SIGTERM: the worker finishes what it is doing and exits cleanly.
                worker.send_signal(signal.SIGTERM)
                assert worker.wait(15) == 0
            finally:
                for process in (worker, relay):
                    if process.poll() is None:
                        process.kill()
                        process.wait(10)
    finally:
        gate.set()
        receiver.stop()
