"""`reconcile`'s holds check: what wallets keep back is what their holds keep back, and every hold adds up
with its captures and its entries in the chain. A DBA's edit of any of them is reported."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from audit.models import BalanceHistory
from holds.models import Hold, HoldCapture
from tests.audit.test_reconcile_command import _wallet, failing_checks, run_reconcile, tamper
from tests.holds.states import holds_in_every_state
from transactions.models import Transaction

pytestmark = pytest.mark.django_db


def holds_check(report):
    return next(check for check in report["checks"] if check["name"] == "holds")


def problems(report):
    return {example["problem"] for example in holds_check(report)["examples"]}


@pytest.fixture
def states():
    return holds_in_every_state()


def reservation(hold: Hold) -> BalanceHistory:
    return BalanceHistory.objects.get(hold_uid=hold.uid, transaction=None, held_delta__gt=0)


def test_a_ledger_with_holds_in_every_state_reconciles(states):
    wallet = _wallet(states.payer)
    assert (wallet.balance, wallet.held) == (Decimal(62), Decimal(26))
    ok, report = run_reconcile("--verify-receipts")
    assert ok and failing_checks(report) == set(), report
    wallets, holds, captures = 3 * 3, Hold.objects.count(), HoldCapture.objects.count()
    assert (holds, captures) == (7, 3)
    assert holds_check(report)["checked"] == wallets + holds + captures
    assert report["supply"]["USDT"]["held"] == "26.00000000"


def test_a_hold_captured_in_full_closes_no_earlier_than_its_transaction(states):
    # The hold's close was stamped before the capture's transaction was made: reconcile saw a capture
    # "after the hold was closed" on every capture in full, until the services took the transaction's time.
    for hold in (states.captured, states.approved.hold):
        hold.refresh_from_db()
        [capture] = HoldCapture.objects.filter(hold=hold).select_related("transaction")
        assert hold.status == "captured"
        assert hold.closed_at >= capture.transaction.created_at
        assert capture.created_at == capture.transaction.created_at


def test_an_edited_captured_is_reported(states):
    tamper("UPDATE holds_hold SET captured = %s WHERE id = %s", [Decimal(5), states.partly_captured.pk])
    ok, report = run_reconcile()
    assert not ok
    assert failing_checks(report) == {"holds"}
    assert problems(report) == {
        "wallet's held is not what its active holds keep back",
        "hold's captured is not the sum of its captures",
        "the chain's capture legs do not release what the hold captured",
        "the hold's entries in the chain do not add up to what it keeps back",
    }
    example = next(e for e in holds_check(report)["examples"] if e["problem"].startswith("hold's captured"))
    assert example == {
        "hold_id": states.partly_captured.pk,
        "status": "active",
        "problem": "hold's captured is not the sum of its captures",
        "captured": "5.00000000",
        "captures_total": "10.00000000",
        "captures": 1,
    }


def test_an_edited_amount_is_reported(states):
    tamper("UPDATE holds_hold SET amount = %s WHERE id = %s", [Decimal(9), states.active.pk])
    ok, report = run_reconcile()
    assert not ok
    assert failing_checks(report) == {"holds"}
    assert problems(report) == {
        "wallet's held is not what its active holds keep back",
        "the chain does not reserve the hold's amount once",
        "the hold's entries in the chain do not add up to what it keeps back",
    }
    example = next(e for e in holds_check(report)["examples"] if "wallet_id" in e)
    assert example["held"] == "26.00000000" and example["active_holds_remaining"] == "29.00000000"


def test_an_active_hold_marked_voided_is_reported(states):
    tamper("UPDATE holds_hold SET status = 'voided', closed_at = %s WHERE id = %s", [timezone.now(), states.active.pk])
    ok, report = run_reconcile()
    assert not ok
    assert failing_checks(report) == {"holds"}
    assert problems(report) == {
        "wallet's held is not what its active holds keep back",
        "the hold's entries in the chain do not add up to what it keeps back",
    }


def test_a_voided_hold_marked_active_again_is_reported(states):
    tamper("UPDATE holds_hold SET status = 'active', closed_at = NULL WHERE id = %s", [states.voided.pk])
    ok, report = run_reconcile()
    assert not ok
    assert failing_checks(report) == {"holds"}
    assert problems(report) == {
        "wallet's held is not what its active holds keep back",
        "the hold's entries in the chain do not add up to what it keeps back",
    }
    example = next(e for e in holds_check(report)["examples"] if e.get("hold_id") == states.voided.pk)
    assert (example["held_in_chain"], example["expected"], example["releases"]) == ("0.00000000", "5.00000000", 1)


def test_an_edited_wallet_held_is_reported(states):
    tamper("UPDATE wallets_wallet SET held = held - 1 WHERE id = %s", [_wallet(states.payer).pk])
    ok, report = run_reconcile()
    assert not ok
    assert failing_checks(report) == {"balances", "holds"}
    [example] = holds_check(report)["examples"]
    assert example == {
        "wallet_id": _wallet(states.payer).pk,
        "problem": "wallet's held is not what its active holds keep back",
        "held": "25.00000000",
        "active_holds_remaining": "26.00000000",
        "active_holds": 2,
    }


def test_an_edited_held_only_entry_is_reported(states):
    entry = reservation(states.partly_captured)
    tamper(
        "UPDATE audit_balancehistory SET held_delta = held_delta - 1, held_after = held_after - 1 WHERE id = %s",
        [entry.pk],
    )
    ok, report = run_reconcile()
    assert not ok
    assert failing_checks(report) == {"chains", "holds"}
    assert problems(report) == {
        "the chain does not reserve the hold's amount once",
        "the hold's entries in the chain do not add up to what it keeps back",
    }
    example = next(e for e in holds_check(report)["examples"] if e["problem"].startswith("the chain does not"))
    assert (example["amount"], example["reserved_in_chain"]) == ("30.00000000", "29.00000000")


def test_a_deleted_capture_is_reported(states):
    tamper("DELETE FROM holds_holdcapture WHERE hold_id = %s", [states.partly_captured.pk])
    ok, report = run_reconcile()
    assert not ok
    assert failing_checks(report) == {"holds"}
    assert problems(report) == {
        "hold's captured is not the sum of its captures",
        "the chain's capture legs do not release what the hold captured",
    }
    example = next(e for e in holds_check(report)["examples"] if e["problem"].startswith("the chain's capture"))
    assert (example["legs"], example["captures"], example["released_by_legs"]) == (1, 0, "10.00000000")


def test_a_capture_pointed_at_another_transaction_is_reported(states):
    deposit = Transaction.objects.get(type="deposit", to_user=states.payer)
    tamper("UPDATE holds_holdcapture SET transaction_id = %s WHERE hold_id = %s", [deposit.pk, states.captured.pk])
    ok, report = run_reconcile()
    assert not ok
    assert failing_checks(report) == {"holds"}
    assert problems(report) == {
        "capture's transaction moved another amount",
        "capture's transaction is not from the hold's payer and wallet",
        "capture's transaction has no leg on the hold's wallet that names the hold",
    }


def test_a_hold_closed_before_its_capture_is_reported(states):
    capture = HoldCapture.objects.select_related("transaction").get(hold=states.captured)
    tamper(
        "UPDATE holds_hold SET closed_at = %s WHERE id = %s",
        [capture.transaction.created_at - timedelta(seconds=1), states.captured.pk],
    )
    ok, report = run_reconcile()
    assert not ok
    assert failing_checks(report) == {"holds"}
    [example] = holds_check(report)["examples"]
    assert example["problem"] == "capture's transaction is later than the hold was closed"
    assert (example["capture_id"], example["transaction_id"]) == (capture.pk, capture.transaction_id)


def test_a_deleted_hold_leaves_entries_that_name_no_hold(states):
    tamper("DELETE FROM holds_hold WHERE id = %s", [states.voided.pk])
    ok, report = run_reconcile()
    assert not ok
    assert failing_checks(report) == {"holds"}
    [example] = holds_check(report)["examples"]
    assert example == {
        "hold_uid": str(states.voided.uid),
        "wallet_id": _wallet(states.payer).pk,
        "problem": "chain entries name a hold that does not exist",
        "held_in_chain": "0.00000000",
        "entries": 2,
    }


def test_a_hold_moved_to_another_wallet_is_reported(states):
    tamper("UPDATE holds_hold SET wallet_id = %s WHERE id = %s", [_wallet(states.payee).pk, states.voided.pk])
    ok, report = run_reconcile()
    assert not ok
    assert failing_checks(report) == {"holds"}
    assert problems(report) == {
        "hold's wallet is not its payer's wallet in its currency",
        "the hold's chain entries are on another wallet than the hold's",
    }
