"""Signed checkpoints anchor the chains outside the database: a rewound tail, a deleted transaction or a
forged row in an old id no longer passes `reconcile`."""

import json
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from audit.models import BalanceHistory, Checkpoint
from audit.receipts import public_key_hex
from currencies.models import Currency
from events.models import OutboxEvent
from tests.audit.test_reconcile_command import _wallet, failing_checks, forge_transfer, run_reconcile, tamper
from transactions.models import Transaction
from transactions.services import transfer_create, withdrawal_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def ledger(user_factory):
    alice, bob = user_factory(balance=100), user_factory(balance=50)
    usdt = Currency.objects.get(code="USDT")
    transfer_create(sender_id=alice.pk, recipient_id=bob.pk, currency=usdt, amount=Decimal("12.5"))
    withdrawal_create(user_id=bob.pk, currency=usdt, amount=Decimal("10"))
    return alice, bob


def take_checkpoint(tmp_path, name="checkpoint.json"):
    out = StringIO()
    path = tmp_path / name
    call_command("checkpoint", "--out", str(path), stdout=out)
    return path, json.loads(out.getvalue())


def by_name(report, name):
    return next(check for check in report["checks"] if check["name"] == name)


def rewind_newest_withdrawal(user):
    """The deleted tail: a DBA rewinds the wallet past its newest entry and deletes the entry, its
    transaction and its outbox row. What is left is a shorter chain that verifies."""
    tx = Transaction.objects.filter(from_user=user, type="withdrawal").latest("id")
    wallet = _wallet(user)
    entry = wallet.history.get(transaction=tx)
    assert entry.seq == wallet.entries  # the newest entry of the wallet
    tamper(
        "UPDATE wallets_wallet SET balance = %s, audit_head = %s, entries = %s, postings = %s, total_out = %s"
        " WHERE id = %s",
        [
            entry.balance_before,
            entry.prev_hash,
            entry.seq - 1,
            entry.posting - 1,
            entry.total_out_after + entry.delta,
            wallet.pk,
        ],
    )
    tamper("DELETE FROM audit_balancehistory WHERE id = %s", [entry.pk])
    tamper("DELETE FROM core_outboxevent WHERE key = %s", [tx.hash])
    tamper("DELETE FROM transactions_transaction WHERE id = %s", [tx.pk])


def test_checkpoint_writes_a_signed_row_an_event_and_a_file(ledger, tmp_path):
    path, printed = take_checkpoint(tmp_path)
    checkpoint = Checkpoint.objects.get()
    document = json.loads(path.read_text())
    fields = json.loads(document["payload"])
    assert document["payload"] == checkpoint.payload and document["signature"] == checkpoint.signature
    assert document["key_id"] == checkpoint.key_id == public_key_hex()
    assert fields["last_transaction_id"] == Transaction.objects.latest("id").pk == printed["last_transaction_id"]
    assert fields["transaction_count"] == Transaction.objects.count() == 4
    assert fields["v"] == 2
    assert fields["last_entry_id"] == BalanceHistory.objects.latest("id").pk == printed["last_entry_id"]
    assert fields["supply"]["USDT"] == {
        "balances": "140.00000000",
        "held": "0.00000000",
        "deposits": "150.00000000",
        "withdrawals": "10.00000000",
        "deposits_reversed": "0.00000000",
        "withdrawals_reversed": "0.00000000",
    }
    assert sorted(w for w, _, _ in document["heads"]) == sorted([_wallet(u).pk for u in ledger])
    assert {(w, n, h) for w, n, h in document["heads"]} == {
        (w.pk, w.entries, w.audit_head) for w in (_wallet(u) for u in ledger)
    }
    event = OutboxEvent.objects.get(topic="ledger.checkpoints")
    assert event.payload["event_type"] == "ledger.checkpoint"
    assert event.payload["payload"] == checkpoint.payload and event.payload["signature"] == checkpoint.signature


def test_checkpoint_rows_are_append_only(ledger, tmp_path):
    from django.db import DatabaseError, transaction

    take_checkpoint(tmp_path)
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM audit_checkpoint")


def test_a_clean_ledger_reconciles_against_its_checkpoint(ledger, tmp_path):
    path, _ = take_checkpoint(tmp_path)
    transfer_create(
        sender_id=ledger[0].pk, recipient_id=ledger[1].pk, currency=Currency.objects.get(code="USDT"), amount=Decimal(1)
    )
    ok, report = run_reconcile("--checkpoint", str(path))
    assert ok and failing_checks(report) == set()
    assert by_name(report, "checkpoint_file")["checked"] > 0
    # Only the transfer after the checkpoint had its signature verified by the routine run.
    assert by_name(report, "receipts")["checked"] == 1


def test_a_deleted_tail_is_caught_by_the_checkpoint_file(ledger, tmp_path):
    _, bob = ledger
    path, _ = take_checkpoint(tmp_path)
    rewind_newest_withdrawal(bob)
    tamper("DELETE FROM audit_checkpoint")  # the DBA removes the in-database anchor too
    ok, report = run_reconcile()
    assert ok  # from the database alone, the shortened ledger is consistent
    ok, report = run_reconcile("--checkpoint", str(path))
    assert not ok
    assert failing_checks(report) == {"checkpoint_file"}
    problems = {e["problem"] for e in by_name(report, "checkpoint_file")["examples"]}
    assert "transactions up to the checkpoint's last id were deleted or inserted" in problems
    assert "entries the checkpoint committed to are missing or changed" in problems
    missing = next(e for e in by_name(report, "checkpoint_file")["examples"] if "wallet_id" in e)
    assert missing["wallet_id"] == _wallet(bob).pk and missing["found_length"] == missing["committed_length"] - 1


def test_a_deleted_tail_is_caught_by_the_routine_run_while_the_checkpoint_row_is_there(ledger, tmp_path):
    _, bob = ledger
    take_checkpoint(tmp_path)
    rewind_newest_withdrawal(bob)
    ok, report = run_reconcile()
    assert not ok
    assert failing_checks(report) == {"checkpoint"}


def test_a_forged_transfer_after_a_checkpoint_is_caught_by_the_routine_run(ledger, tmp_path):
    alice, bob = ledger
    take_checkpoint(tmp_path)
    forge_transfer(alice, bob, Decimal("50"))
    ok, report = run_reconcile()
    assert not ok
    assert failing_checks(report) == {"receipts"}
    assert by_name(report, "receipts")["checked"] == 1


def test_a_forged_transfer_in_an_old_id_is_caught_by_the_checkpoint(ledger, tmp_path):
    alice, bob = ledger
    with connection.cursor() as cursor:  # an id the sequence handed out and nobody used (a rolled-back insert)
        cursor.execute("SELECT nextval(pg_get_serial_sequence('transactions_transaction', 'id'))")
        gap = cursor.fetchone()[0]
    transfer_create(
        sender_id=alice.pk, recipient_id=bob.pk, currency=Currency.objects.get(code="USDT"), amount=Decimal(1)
    )
    path, printed = take_checkpoint(tmp_path)
    assert printed["last_transaction_id"] > gap
    forge_transfer(alice, bob, Decimal("50"), tx_id=gap)
    for args in ((), ("--checkpoint", str(path))):
        ok, report = run_reconcile(*args)
        assert not ok
        assert "checkpoint" in failing_checks(report)


def test_a_forged_checkpoint_row_is_reported_and_not_trusted(ledger, tmp_path):
    alice, bob = ledger
    take_checkpoint(tmp_path)
    genuine = Checkpoint.objects.get()
    fields = json.loads(genuine.payload)
    fields["last_transaction_id"] += 1000  # would exempt everything forged later from signature checks
    Checkpoint.objects.create(
        created_at=genuine.created_at, last_transaction_id=fields["last_transaction_id"], transaction_count=0,
        wallet_count=0, heads_digest="0" * 64, supply={}, payload=json.dumps(fields), signature=genuine.signature,
        key_id=genuine.key_id,
    )  # fmt: skip
    forge_transfer(alice, bob, Decimal("50"))
    ok, report = run_reconcile()
    assert not ok
    assert failing_checks(report) == {"checkpoint", "receipts"}
    assert report["checkpoints"]["database"]["last_transaction_id"] == genuine.last_transaction_id


def test_a_checkpoint_file_with_a_bad_signature_is_refused(ledger, tmp_path):
    path, _ = take_checkpoint(tmp_path)
    document = json.loads(path.read_text())
    fields = json.loads(document["payload"])
    fields["transaction_count"] -= 1
    document["payload"] = json.dumps(fields, sort_keys=True, separators=(",", ":"))
    path.write_text(json.dumps(document))
    with pytest.raises(CommandError) as raised:
        call_command("reconcile", "--checkpoint", str(path), stdout=StringIO())
    assert raised.value.returncode == 2


def test_a_checkpoint_file_whose_heads_were_edited_is_refused(ledger, tmp_path):
    path, _ = take_checkpoint(tmp_path)
    document = json.loads(path.read_text())
    document["heads"][0][1] -= 1
    path.write_text(json.dumps(document))
    with pytest.raises(CommandError) as raised:
        call_command("reconcile", "--checkpoint", str(path), stdout=StringIO())
    assert raised.value.returncode == 2


def test_a_checkpoint_signed_with_a_retired_key_still_verifies(ledger, tmp_path, settings):
    from audit import receipts

    path, _ = take_checkpoint(tmp_path)
    old_public = public_key_hex()
    settings.RECEIPT_SIGNING_KEY = "11" * 32
    receipts._signing_key.cache_clear()
    try:
        with pytest.raises(CommandError):  # not trusted until the retired key is listed
            call_command("reconcile", "--checkpoint", str(path), stdout=StringIO())
        settings.RECEIPT_PREVIOUS_PUBLIC_KEYS = [old_public]
        ok, report = run_reconcile("--checkpoint", str(path), "--verify-receipts")
    finally:
        receipts._signing_key.cache_clear()
    assert by_name(report, "checkpoint_file")["ok"] and by_name(report, "checkpoint")["ok"]
    # The receipts themselves were signed with the old key, which --verify-receipts does not take yet.
    assert not ok and failing_checks(report) == {"receipts"}


def test_checkpoint_refuses_to_sign_a_ledger_whose_heads_do_not_match(ledger, tmp_path):
    alice, _ = ledger
    tamper("UPDATE wallets_wallet SET audit_head = %s WHERE id = %s", ["f" * 64, _wallet(alice).pk])
    with pytest.raises(CommandError):
        take_checkpoint(tmp_path)
    assert not Checkpoint.objects.exists()


def test_staff_see_checkpoints_read_only_in_the_console(ledger, tmp_path):
    from django.test import Client

    from tests.accounts.factories import UserFactory

    take_checkpoint(tmp_path)
    checkpoint = Checkpoint.objects.get()
    console = Client()
    console.force_login(UserFactory(username="ops", is_staff=True, is_superuser=True))
    assert console.get("/admin/audit/checkpoint/").status_code == 200
    detail = console.get(f"/admin/audit/checkpoint/{checkpoint.pk}/change/")
    assert detail.status_code == 200 and checkpoint.signature in detail.content.decode()
    assert console.get("/admin/audit/checkpoint/add/").status_code == 403
    assert console.post(f"/admin/audit/checkpoint/{checkpoint.pk}/delete/", {"post": "yes"}).status_code == 403


def test_a_checkpoint_does_not_vouch_for_a_transfer_forged_since_the_previous_one(ledger, tmp_path):
    alice, bob = ledger
    take_checkpoint(tmp_path)
    forge_transfer(alice, bob, Decimal("50"))
    with pytest.raises(CommandError, match="receipt does not verify"):
        take_checkpoint(tmp_path, "second.json")
    assert Checkpoint.objects.count() == 1
    ok, report = run_reconcile()  # the forged row is still after the newest checkpoint
    assert not ok and failing_checks(report) == {"receipts"}


def test_the_first_checkpoint_verifies_every_receipt(ledger, tmp_path):
    alice, bob = ledger
    forge_transfer(alice, bob, Decimal("50"))
    with pytest.raises(CommandError, match="receipt does not verify"):
        take_checkpoint(tmp_path)
    assert not Checkpoint.objects.exists()


def test_a_checkpoint_is_refused_when_the_ledger_before_the_previous_one_changed(ledger, tmp_path):
    alice, bob = ledger
    take_checkpoint(tmp_path)
    rewind_newest_withdrawal(bob)
    with pytest.raises(CommandError, match="covers transactions that are gone"):
        take_checkpoint(tmp_path, "second.json")
    usdt = Currency.objects.get(code="USDT")
    transfer_create(sender_id=alice.pk, recipient_id=bob.pk, currency=usdt, amount=Decimal(1))  # a newer last id
    with pytest.raises(CommandError, match="previous checkpoint changed"):
        take_checkpoint(tmp_path, "second.json")
    assert Checkpoint.objects.count() == 1


def test_a_second_checkpoint_extends_the_first(ledger, tmp_path):
    alice, bob = ledger
    take_checkpoint(tmp_path)
    transfer_create(
        sender_id=alice.pk, recipient_id=bob.pk, currency=Currency.objects.get(code="USDT"), amount=Decimal(2)
    )
    path, printed = take_checkpoint(tmp_path, "second.json")
    assert Checkpoint.objects.count() == 2
    ok, report = run_reconcile("--checkpoint", str(path))
    assert ok
    assert report["checkpoints"]["database"]["last_transaction_id"] == printed["last_transaction_id"]
    assert by_name(report, "receipts")["checked"] == 0
