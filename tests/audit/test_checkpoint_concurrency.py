"""Checkpoints taken while transfers commit are consistent snapshots: each one reconciles afterwards."""

import json
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command

from audit.models import Checkpoint
from currencies.models import Currency
from tests.audit.test_reconcile_command import run_reconcile
from tests.conftest import make_user
from tests.ledger import run_in_threads
from transactions.services import transfer_create

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def test_checkpoints_taken_during_transfers_all_reconcile(tmp_path):
    usdt = Currency.objects.get(code="USDT")
    users = [make_user(balance=100) for _ in range(6)]

    def transfer(n):
        sender, recipient = users[n % 6], users[(n * 5 + 1) % 6]
        if sender == recipient:
            recipient = users[(n + 1) % 6]
        return lambda: transfer_create(
            sender_id=sender.pk, recipient_id=recipient.pk, currency=usdt, amount=Decimal("0.5")
        )

    def checkpoint(n):
        def run():
            out = StringIO()
            call_command("checkpoint", "--out", str(tmp_path / f"{n}.json"), stdout=out)
            return json.loads(out.getvalue())

        return run

    tasks = []
    for n in range(90):
        tasks.append(transfer(n))
        if n % 15 == 7:
            tasks.append(checkpoint(n))
    results = run_in_threads(tasks, threads=4)
    failures = [r for r in results if isinstance(r, Exception)]
    assert failures == []
    assert Checkpoint.objects.count() == 6
    for path in sorted(tmp_path.glob("*.json")):
        ok, report = run_reconcile("--checkpoint", str(path))
        assert ok, (path.name, [c for c in report["checks"] if not c["ok"]])


def test_a_checkpoint_waits_for_a_transfer_in_flight_with_a_smaller_id(tmp_path, monkeypatch):
    """A transfer that took its id before a later one but commits after it must not be left out of a
    checkpoint that covers the later id: the checkpoint waits for it (SHARE lock on the transactions)."""
    import threading

    from django.db import connections

    import transactions.services

    usdt = Currency.objects.get(code="USDT")
    alice, bob, carol, dave = (make_user(balance=100) for _ in range(4))
    inserted, release = threading.Event(), threading.Event()
    path = tmp_path / "checkpoint.json"

    publish_on_commit = transactions.services.publish_on_commit

    def pause_before_commit(event):  # runs inside the transfer's transaction, after its rows are written
        if threading.current_thread().name == "slow":
            inserted.set()
            release.wait(30)
        publish_on_commit(event)

    monkeypatch.setattr(transactions.services, "publish_on_commit", pause_before_commit)

    def slow_transfer():
        try:
            transfer_create(sender_id=alice.pk, recipient_id=bob.pk, currency=usdt, amount=Decimal("1"))
        finally:
            connections.close_all()

    def checkpoint():
        try:
            call_command("checkpoint", "--out", str(path), stdout=StringIO())
        finally:
            connections.close_all()

    slow = threading.Thread(target=slow_transfer, name="slow")
    slow.start()
    assert inserted.wait(30)
    # A larger id, committed before the slow one (other wallets: no row lock to wait for).
    transfer_create(sender_id=carol.pk, recipient_id=dave.pk, currency=usdt, amount=Decimal("2"))
    taker = threading.Thread(target=checkpoint)
    taker.start()
    taker.join(2)
    still_waiting = taker.is_alive()
    release.set()
    slow.join(30)
    taker.join(30)
    assert still_waiting
    ok, report = run_reconcile("--checkpoint", str(path))
    assert ok, [c for c in report["checks"] if not c["ok"]]
