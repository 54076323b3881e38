"""Checkpoints cover the entries that change ``held`` alone (no transaction): version 2 cuts the chains at
its last entry id. Checkpoints of version 1, signed before holds, still verify by their transaction cut."""

import json
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.core.management.base import CommandError
from django.db import connection

from audit import receipts
from audit.checkpoint import _heads
from audit.models import BalanceHistory, Checkpoint
from audit.reconcile import supply_totals
from audit.signed import canonical, heads_digest
from currencies.models import Currency
from events.models import OutboxEvent
from holds.models import Hold
from holds.services import hold_create, hold_void
from tests.audit.test_checkpoint import by_name, rewind_newest_withdrawal, take_checkpoint
from tests.audit.test_reconcile_command import _wallet, failing_checks, run_reconcile, tamper
from tests.holds.states import holds_in_every_state
from transactions.services import transfer_create, withdrawal_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def states():
    return holds_in_every_state()


def rewind_newest_hold(hold: Hold) -> None:
    """The deleted tail, for a hold: a DBA rewinds the wallet past the hold's reservation (its newest entry)
    and deletes the entry, the hold and its event. The ledger that is left is consistent on its own."""
    wallet = _wallet(hold.payer)
    entry = BalanceHistory.objects.get(hold_uid=hold.uid)
    assert entry.seq == wallet.entries and entry.transaction_id is None
    tamper(
        "UPDATE wallets_wallet SET held = %s, audit_head = %s, entries = %s WHERE id = %s",
        [entry.held_before, entry.prev_hash, entry.seq - 1, wallet.pk],
    )
    tamper("DELETE FROM audit_balancehistory WHERE id = %s", [entry.pk])
    events = OutboxEvent.objects.filter(key=str(hold.pk), payload__event_type__startswith="hold.")
    assert events.exists()
    tamper("DELETE FROM core_outboxevent WHERE id = ANY(%s)", [list(events.values_list("id", flat=True))])
    tamper("DELETE FROM holds_hold WHERE id = %s", [hold.pk])


def test_a_checkpoint_taken_while_holds_exist_reconciles(states, tmp_path):
    assert _wallet(states.payer).history.order_by("seq").last().transaction_id is None  # a hold is the newest
    path, printed = take_checkpoint(tmp_path)
    fields = json.loads(Checkpoint.objects.get().payload)
    assert fields["last_entry_id"] == BalanceHistory.objects.latest("id").pk
    assert fields["supply"]["USDT"]["held"] == "26.00000000"
    # More changes of held alone after it, and a movement.
    usdt = Currency.objects.get(code="USDT")
    later = hold_create(payer_id=states.payer.pk, currency=usdt, amount=Decimal("1"))
    hold_void(hold_id=states.active.pk, actor=states.payer)
    transfer_create(sender_id=states.payee.pk, recipient_id=states.payer.pk, currency=usdt, amount=Decimal("2"))
    assert later.pk
    ok, report = run_reconcile("--checkpoint", str(path))
    assert ok, [c for c in report["checks"] if not c["ok"]]
    assert report["checkpoints"]["file"]["version"] == 2
    assert report["checkpoints"]["file"]["last_entry_id"] == fields["last_entry_id"]
    assert by_name(report, "receipts")["checked"] == 1  # the transfer after it


def test_a_rewound_hold_is_caught_by_the_checkpoint_file(states, tmp_path):
    path, _ = take_checkpoint(tmp_path)
    rewind_newest_hold(states.active)
    tamper("DELETE FROM audit_checkpoint")  # the DBA removes the in-database anchor too
    ok, report = run_reconcile()
    assert ok, [c for c in report["checks"] if not c["ok"]]  # from the database alone, all is consistent
    ok, report = run_reconcile("--checkpoint", str(path))
    assert not ok
    assert failing_checks(report) == {"checkpoint_file"}
    examples = by_name(report, "checkpoint_file")["examples"]
    missing = next(e for e in examples if "wallet_id" in e)
    assert missing["problem"] == "entries the checkpoint committed to are missing or changed"
    assert missing["wallet_id"] == _wallet(states.payer).pk
    assert missing["found_length"] == missing["committed_length"] - 1


def test_a_rewound_hold_is_caught_by_the_routine_run_while_the_checkpoint_row_is_there(states, tmp_path):
    take_checkpoint(tmp_path)
    rewind_newest_hold(states.active)
    ok, report = run_reconcile()
    assert not ok
    assert failing_checks(report) == {"checkpoint"}
    assert {e["problem"] for e in by_name(report, "checkpoint")["examples"]} == {
        "chain heads at the checkpoint differ (an entry it covered was deleted or rewritten)"
    }


def test_the_newest_checkpoint_is_the_one_with_the_newest_entry(states, tmp_path):
    take_checkpoint(tmp_path)
    hold_create(payer_id=states.payer.pk, currency=Currency.objects.get(code="USDT"), amount=Decimal("1"))
    take_checkpoint(tmp_path, "second.json")  # the same last transaction, one more entry
    first, second = (json.loads(c.payload) for c in Checkpoint.objects.order_by("id"))
    assert first["last_transaction_id"] == second["last_transaction_id"]
    assert second["last_entry_id"] == first["last_entry_id"] + 1
    ok, report = run_reconcile()
    assert ok
    assert report["checkpoints"]["database"]["last_entry_id"] == second["last_entry_id"]


def test_a_checkpoint_is_refused_when_entries_the_previous_one_covered_are_gone(states, tmp_path):
    take_checkpoint(tmp_path)
    rewind_newest_hold(states.active)
    with pytest.raises(CommandError, match="covers balance-history entries that are gone"):
        take_checkpoint(tmp_path, "second.json")
    hold_create(payer_id=states.payer.pk, currency=Currency.objects.get(code="USDT"), amount=Decimal("1"))
    with pytest.raises(CommandError, match="chain heads at the previous checkpoint changed"):
        take_checkpoint(tmp_path, "second.json")
    assert Checkpoint.objects.count() == 1


# -- Version 1 ------------------------------------------------------------------------------------------


def sign_version_1(path):
    """A checkpoint as version 1 wrote it (row and file): no last entry id, chains cut at the last transaction."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*), COALESCE(MAX(id), 0) FROM transactions_transaction")
        count, last_id = cursor.fetchone()
        cursor.execute("SELECT COUNT(*) FROM wallets_wallet")
        (wallet_count,) = cursor.fetchone()
    heads = _heads()
    fields = {
        "v": 1,
        "uid": str(uuid.uuid4()),
        "created_at": datetime.now(UTC).isoformat(),
        "last_transaction_id": last_id,
        "transaction_count": count,
        "wallet_count": wallet_count,
        "heads_digest": heads_digest(heads),
        "wallets_with_history": len(heads),
        "supply": {
            code: {key: totals[key] for key in ("balances", "deposits", "withdrawals")}
            for code, totals in supply_totals(last_id).items()
        },
    }
    payload = canonical(fields)
    signature = receipts.sign_message(payload.encode())
    Checkpoint.objects.create(
        created_at=datetime.fromisoformat(fields["created_at"]), last_transaction_id=last_id, transaction_count=count,
        wallet_count=wallet_count, heads_digest=fields["heads_digest"], supply=fields["supply"], payload=payload,
        signature=signature, key_id=receipts.public_key_hex(),
    )  # fmt: skip
    document = {
        "format": "wallet-ledger-checkpoint",
        "payload": payload,
        "signature": signature,
        "key_id": receipts.public_key_hex(),
        "heads": [list(head) for head in heads],
    }
    path.write_text(json.dumps(document))
    return path


@pytest.fixture
def before_holds(user_factory):
    alice, bob = user_factory(balance=100), user_factory(balance=50)
    usdt = Currency.objects.get(code="USDT")
    transfer_create(sender_id=alice.pk, recipient_id=bob.pk, currency=usdt, amount=Decimal("12.5"))
    withdrawal_create(user_id=bob.pk, currency=usdt, amount=Decimal("10"))
    return alice, bob


def test_a_version_1_checkpoint_still_verifies_by_its_transaction_cut(before_holds, tmp_path):
    alice, bob = before_holds
    path = sign_version_1(tmp_path / "v1.json")
    usdt = Currency.objects.get(code="USDT")
    hold = hold_create(payer_id=alice.pk, payee_id=bob.pk, currency=usdt, amount=Decimal("5"))
    hold_void(hold_id=hold.pk, actor=alice)
    hold_create(payer_id=bob.pk, currency=usdt, amount=Decimal("1"))
    ok, report = run_reconcile("--checkpoint", str(path))
    assert ok, [c for c in report["checks"] if not c["ok"]]
    assert report["checkpoints"]["database"]["version"] == report["checkpoints"]["file"]["version"] == 1
    assert report["checkpoints"]["file"]["last_entry_id"] is None
    # The next checkpoint is of version 2 and extends the old one by the old one's rule.
    second, _ = take_checkpoint(tmp_path, "v2.json")
    ok, report = run_reconcile("--checkpoint", str(second))
    assert ok and report["checkpoints"]["database"]["version"] == 2
    ok, report = run_reconcile("--checkpoint", str(path))
    assert ok


def test_a_version_1_checkpoint_still_catches_a_deleted_tail(before_holds, tmp_path):
    _, bob = before_holds
    path = sign_version_1(tmp_path / "v1.json")
    rewind_newest_withdrawal(bob)
    ok, report = run_reconcile("--checkpoint", str(path))
    assert not ok
    assert failing_checks(report) == {"checkpoint", "checkpoint_file"}
