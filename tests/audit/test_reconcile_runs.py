"""Every reconcile run is a record: the command writes one, the console queues one, the worker runs it."""

from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test import Client

from audit.models import ReconcileRun
from audit.services import reconcile_run_claim, reconcile_run_queue
from currencies.models import Currency
from tests.accounts.factories import UserFactory
from tests.ledger import run_in_threads
from transactions.services import transfer_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def ledger(user_factory):
    alice, bob = user_factory(balance=100), user_factory(balance=50)
    usdt = Currency.objects.get(code="USDT")
    transfer_create(sender_id=alice.pk, recipient_id=bob.pk, currency=usdt, amount=Decimal("12.5"))
    return alice, bob


def tamper(sql, params=()):
    with connection.cursor() as cursor:
        cursor.execute("SET session_replication_role = replica")
        cursor.execute(sql, params)
        cursor.execute("SET session_replication_role = origin")


def test_a_clean_run_is_recorded_as_passed_with_its_checks_and_supply(ledger):
    out = StringIO()
    call_command("reconcile", stdout=out)

    run = ReconcileRun.objects.get()
    assert (run.state, run.outcome, run.trigger, run.mismatch_count) == ("done", "pass", "command", 0)
    assert run.started_at <= run.finished_at and run.duration_seconds >= 0
    assert {check["name"] for check in run.checks} >= {"balances", "chains", "legs", "supply", "holds"}
    assert run.supply["USDT"]["balances"] == "150.00000000" and run.mismatches == {}
    assert f"recorded as run {run.pk}" in out.getvalue()


def test_a_failing_run_keeps_its_mismatches(ledger):
    alice, _ = ledger
    tamper("UPDATE wallets_wallet SET balance = balance + 1 WHERE user_id = %s AND currency_id = 1", [alice.pk])

    with pytest.raises(CommandError):
        call_command("reconcile", stdout=StringIO())

    run = ReconcileRun.objects.get()
    assert run.outcome == "fail" and run.mismatch_count >= 1
    assert run.mismatches["balances"][0]["wallet_id"] and "supply" in run.mismatches


def test_an_unreadable_checkpoint_file_is_recorded_as_an_error(ledger, tmp_path):
    bad = tmp_path / "nope.json"
    bad.write_text("{}")
    with pytest.raises(CommandError):
        call_command("reconcile", "--checkpoint", str(bad), stdout=StringIO())
    run = ReconcileRun.objects.get()
    assert run.outcome == "error" and "cannot read checkpoint file" in run.error
    assert run.scope == {"verify_receipts": False, "checkpoint_file": str(bad)}


@pytest.mark.django_db(
    transaction=True, serialized_rollback=True
)  # the worker closes its connections, as in production
def test_the_worker_runs_what_the_console_queued_then_exits(ledger):
    staff = UserFactory(is_staff=True)
    first = reconcile_run_queue(requested_by_id=staff.pk)
    second = reconcile_run_queue(requested_by_id=staff.pk, verify_receipts=True)

    out = StringIO()
    call_command("reconcile", "--queued", stdout=out)

    first.refresh_from_db(), second.refresh_from_db()
    assert (first.state, first.outcome, second.state, second.outcome) == ("done", "pass", "done", "pass")
    assert second.scope["verify_receipts"] is True and first.started_at <= second.started_at
    assert out.getvalue().count('"outcome": "pass"') == 2
    assert ReconcileRun.objects.count() == 2  # the worker adds no run of its own


def test_the_console_button_queues_a_run_only_with_the_permission(ledger):
    from django.contrib.auth.models import Permission

    viewer = UserFactory(is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_reconcilerun"))
    client = Client()
    client.force_login(viewer)
    assert 'id="queue-reconcile"' not in client.get("/admin/audit/reconcilerun/").content.decode()
    assert client.post("/admin/audit/reconcilerun/queue/").status_code == 403
    assert not ReconcileRun.objects.exists()

    viewer.user_permissions.add(Permission.objects.get(codename="queue_reconcilerun"))
    assert client.get("/admin/audit/reconcilerun/queue/").status_code == 405
    page = client.post("/admin/audit/reconcilerun/queue/", follow=True)
    run = ReconcileRun.objects.get()
    assert (run.state, run.trigger, run.requested_by_id, run.outcome) == ("queued", "console", viewer.pk, "")
    assert f"Reconcile run {run.pk} queued" in page.content.decode()
    # The run is read-only: no add, change or delete in the admin.
    assert client.post(f"/admin/audit/reconcilerun/{run.pk}/delete/", {"post": "yes"}).status_code == 403


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_workers_never_claim_the_same_run(user_factory):
    staff = UserFactory(is_staff=True)
    queued = {reconcile_run_queue(requested_by_id=staff.pk).pk for _ in range(3)}

    claims = run_in_threads([reconcile_run_claim for _ in range(6)], threads=6)

    assert not [c for c in claims if isinstance(c, Exception)]
    claimed = [c.pk for c in claims if c is not None]
    assert sorted(claimed) == sorted(queued)  # each queued run exactly once, the other claims empty
    assert set(ReconcileRun.objects.values_list("state", flat=True)) == {"running"}
