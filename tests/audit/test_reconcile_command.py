"""`manage.py reconcile` proves the ledger adds up, and notices every kind of tampering."""

import json
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from currencies.models import Currency
from transactions.services import transfer_create, withdrawal_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def ledger(user_factory):
    alice, bob = user_factory(balance=100), user_factory(balance=50)
    usdt = Currency.objects.get(code="USDT")
    transfer_create(sender_id=alice.pk, recipient_id=bob.pk, currency=usdt, amount=Decimal("12.5"))
    transfer_create(sender_id=bob.pk, recipient_id=alice.pk, currency=usdt, amount=Decimal("0.000001"))
    withdrawal_create(user_id=bob.pk, currency=usdt, amount=Decimal("10"))
    return alice, bob


def run_reconcile(*args):
    from io import StringIO

    out = StringIO()
    try:
        call_command("reconcile", "--json", *args, stdout=out)
        exit_ok = True
    except CommandError:
        exit_ok = False
    return exit_ok, json.loads(out.getvalue())


def failing_checks(report):
    return {check["name"] for check in report["checks"] if not check["ok"]}


def tamper(sql, params=()):
    """Write around the application, as an attacker with database access would (triggers off)."""
    with connection.cursor() as cursor:
        cursor.execute("SET session_replication_role = replica")
        cursor.execute(sql, params)
        cursor.execute("SET session_replication_role = origin")


def test_clean_ledger_reconciles_with_receipts(ledger):
    ok, report = run_reconcile("--verify-receipts")
    assert ok and report["ok"]
    assert failing_checks(report) == set()
    assert report["supply"]["USDT"]["balances"] == "140.00000000"  # 150 deposited - 10 withdrawn
    checked = {c["name"]: c["checked"] for c in report["checks"]}
    assert checked["legs"] == 5 and checked["chains"] == 7 and checked["receipts"] == 5


def test_a_balance_changed_behind_the_ledger_is_reported(ledger):
    alice, _ = ledger
    tamper("UPDATE wallets_wallet SET balance = balance + 1 WHERE user_id = %s AND currency_id = 1", [alice.pk])
    ok, report = run_reconcile()
    assert not ok
    assert failing_checks(report) == {"balances", "supply"}


def test_an_edited_history_row_breaks_the_chain(ledger):
    _, bob = ledger
    tamper(
        "UPDATE audit_balancehistory SET delta = delta + 1, balance_after = balance_after + 1 "
        "WHERE id = (SELECT MIN(id) FROM audit_balancehistory WHERE user_id = %s)",
        [bob.pk],
    )
    ok, report = run_reconcile()
    assert not ok
    assert "chains" in failing_checks(report)


def test_a_deleted_history_row_is_reported(ledger):
    alice, _ = ledger
    tamper(
        "DELETE FROM audit_balancehistory WHERE id = (SELECT MAX(id) FROM audit_balancehistory WHERE user_id = %s)",
        [alice.pk],
    )
    ok, report = run_reconcile()
    assert not ok
    assert {"balances", "legs"} <= failing_checks(report)


def test_a_wrong_entry_count_on_a_wallet_is_reported(ledger):
    alice, _ = ledger
    tamper("UPDATE wallets_wallet SET entries = entries + 1 WHERE user_id = %s AND currency_id = 1", [alice.pk])
    ok, report = run_reconcile()
    assert not ok
    assert failing_checks(report) == {"balances"}
    assert report["checks"][0]["examples"][0]["history_rows"] == 3


def test_a_renumbered_chain_position_is_reported(ledger):
    _, bob = ledger
    # Bob's chain has four entries; moving the newest to position 6 keeps it unique and positive.
    tamper(
        "UPDATE audit_balancehistory SET seq = 6 "
        "WHERE id = (SELECT MAX(id) FROM audit_balancehistory WHERE user_id = %s)",
        [bob.pk],
    )
    ok, report = run_reconcile()
    assert not ok
    assert failing_checks(report) == {"chains"}
    assert report["checks"][1]["examples"][0]["seq_ok"] is False


def test_an_edited_transaction_amount_is_reported(ledger):
    tamper("UPDATE transactions_transaction SET amount = amount * 2 WHERE type = 'transfer'")
    ok, report = run_reconcile("--verify-receipts")
    assert not ok
    assert {"legs", "receipts"} <= failing_checks(report)


def test_history_tables_reject_updates_without_tampering_rights(ledger):
    from django.db import DatabaseError, transaction

    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("UPDATE audit_balancehistory SET delta = delta")


def test_human_report_names_the_mismatch(ledger, capsys):
    alice, _ = ledger
    tamper("UPDATE wallets_wallet SET balance = 0 WHERE user_id = %s AND currency_id = 1", [alice.pk])
    with pytest.raises(CommandError):
        call_command("reconcile")
    out = capsys.readouterr().out
    assert "MISMATCH balances" in out and "LEDGER DOES NOT RECONCILE" in out
