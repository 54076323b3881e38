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
from transactions.services import deposit_create, transfer_create

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


def test_a_checkpoint_waits_for_a_change_of_held_in_flight_with_a_smaller_entry_id(tmp_path, monkeypatch):
    """A hold placed (an entry without a transaction) that took its entry id before a later transfer but
    commits after it must not be left out of a checkpoint that covers the later entry: the checkpoint
    waits for it (SHARE lock on the balance history)."""
    import threading

    from django.db import connections

    import holds.services

    usdt = Currency.objects.get(code="USDT")
    alice, bob, carol, dave = (make_user(balance=100) for _ in range(4))
    inserted, release = threading.Event(), threading.Event()
    path = tmp_path / "checkpoint.json"
    hold_event = holds.services.hold_event

    def pause_before_commit(event_type, hold, **kwargs):  # inside hold_create's transaction, entry written
        if threading.current_thread().name == "slow":
            inserted.set()
            release.wait(30)
        hold_event(event_type, hold, **kwargs)

    monkeypatch.setattr(holds.services, "hold_event", pause_before_commit)

    def slow_hold():
        try:
            holds.services.hold_create(payer_id=alice.pk, payee_id=bob.pk, currency=usdt, amount=Decimal("1"))
        finally:
            connections.close_all()

    def checkpoint():
        try:
            call_command("checkpoint", "--out", str(path), stdout=StringIO())
        finally:
            connections.close_all()

    slow = threading.Thread(target=slow_hold, name="slow")
    slow.start()
    assert inserted.wait(30)
    # Larger entry ids, committed first. In another currency: a change of held locks its currency's row
    # (transactions.services.held_change locks the wallet with select_related and no ``of``).
    btc = Currency.objects.get(code="BTC")
    deposit_create(user_id=carol.pk, currency=btc, amount=Decimal("1"))
    transfer_create(sender_id=carol.pk, recipient_id=dave.pk, currency=btc, amount=Decimal("0.5"))
    taker = threading.Thread(target=checkpoint)
    taker.start()
    taker.join(2)
    still_waiting = taker.is_alive()
    release.set()
    slow.join(30)
    taker.join(30)
    assert still_waiting
    assert json.loads(json.loads(path.read_text())["payload"])["supply"]["USDT"]["held"] == "1.00000000"
    ok, report = run_reconcile("--checkpoint", str(path))
    assert ok, [c for c in report["checks"] if not c["ok"]]


def test_a_checkpoint_that_deadlocks_with_a_spend_releasing_expired_holds_is_taken_again(tmp_path, monkeypatch, caplog):
    """A spend short of money releases its payer's expired holds (balance history) before it writes its
    transaction. A checkpoint that locked the transactions in between waits for the history, the spend
    for the transactions: PostgreSQL ends the checkpoint's snapshot, and the checkpoint takes it again."""
    import logging
    import threading
    from datetime import timedelta

    from django.db import connections
    from django.utils import timezone

    import holds.services
    from holds.models import Hold
    from tests.events.conftest import wait_for

    usdt = Currency.objects.get(code="USDT")
    alice, bob = make_user(balance=10), make_user()
    hold = holds.services.hold_create(payer_id=alice.pk, payee_id=bob.pk, currency=usdt, amount=Decimal("10"))
    Hold.objects.filter(pk=hold.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    released, release = threading.Event(), threading.Event()
    path = tmp_path / "checkpoint.json"
    outcomes: dict[str, object] = {}
    hold_event = holds.services.hold_event

    def pause_after_the_release(event_type, hold, **kwargs):  # the release's entry is written, no transaction yet
        if threading.current_thread().name == "spend":
            released.set()
            release.wait(30)
        hold_event(event_type, hold, **kwargs)

    monkeypatch.setattr(holds.services, "hold_event", pause_after_the_release)
    caplog.set_level(logging.WARNING, logger="audit.checkpoint")

    def run(name, task):
        def target():
            try:
                outcomes[name] = task()
            except Exception as exc:  # noqa: BLE001 - asserted below
                outcomes[name] = exc
            finally:
                connections.close_all()

        thread = threading.Thread(target=target, name=name)
        thread.start()
        return thread

    spend = run(
        "spend", lambda: transfer_create(sender_id=alice.pk, recipient_id=bob.pk, currency=usdt, amount=Decimal("5"))
    )
    assert released.wait(30)
    taker = run("checkpoint", lambda: call_command("checkpoint", "--out", str(path), stdout=StringIO()))

    def checkpoint_waits_for_the_history():
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT COUNT(*) FROM pg_locks WHERE NOT granted AND relation = 'audit_balancehistory'::regclass"
            )
            return cursor.fetchone()[0] == 1

    from django.db import connection

    assert wait_for(checkpoint_waits_for_the_history, timeout=20)
    release.set()  # the spend now needs the transactions, which the checkpoint holds
    spend.join(30)
    taker.join(30)
    assert not isinstance(outcomes["spend"], Exception), outcomes["spend"]
    assert not isinstance(outcomes["checkpoint"], Exception), outcomes["checkpoint"]
    assert [r.message for r in caplog.records if r.name == "audit.checkpoint"] == [
        "checkpoint snapshot deadlocked with a writer; taking it again"
    ]
    ok, report = run_reconcile("--checkpoint", str(path))
    assert ok, [c for c in report["checks"] if not c["ok"]]
    assert json.loads(json.loads(path.read_text())["payload"])["supply"]["USDT"]["balances"] == "10.00000000"


def test_checkpoints_taken_while_holds_are_placed_and_closed_all_reconcile(tmp_path):
    from holds.services import hold_capture, hold_create, hold_void

    usdt = Currency.objects.get(code="USDT")
    users = [make_user(balance=100) for _ in range(6)]

    def hold_then(n):
        payer, payee = users[n % 6], users[(n + 1) % 6]

        def run():
            hold = hold_create(payer_id=payer.pk, payee_id=payee.pk, currency=usdt, amount=Decimal("1"))
            if n % 3 == 0:
                return hold_void(hold_id=hold.pk, actor=payer)
            if n % 3 == 1:
                return hold_capture(hold_id=hold.pk, actor=payee, amount=Decimal("0.5"))
            return hold

        return run

    def transfer(n):
        sender, recipient = users[n % 6], users[(n + 2) % 6]
        return lambda: transfer_create(
            sender_id=sender.pk, recipient_id=recipient.pk, currency=usdt, amount=Decimal("0.25")
        )

    def checkpoint(n):
        return lambda: call_command("checkpoint", "--out", str(tmp_path / f"{n}.json"), stdout=StringIO())

    tasks = []
    for n in range(60):
        tasks += [hold_then(n), transfer(n)]
        if n % 12 == 5:
            tasks.append(checkpoint(n))
    results = run_in_threads(tasks, threads=4)
    assert [r for r in results if isinstance(r, Exception)] == []
    assert Checkpoint.objects.count() == 5
    for path in sorted(tmp_path.glob("*.json")):
        ok, report = run_reconcile("--checkpoint", str(path))
        assert ok, (path.name, [c for c in report["checks"] if not c["ok"]])
