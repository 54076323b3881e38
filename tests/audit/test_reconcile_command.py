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
        # (the running total too: without it the row's own CHECK refuses the edit, see below)
        "UPDATE audit_balancehistory SET delta = delta + 1, balance_after = balance_after + 1, "
        "total_in_after = total_in_after + 1 WHERE id = (SELECT MIN(id) FROM audit_balancehistory WHERE user_id = %s)",
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


def _wallet(user, code="USDT"):
    from wallets.models import Wallet

    return Wallet.objects.get(user=user, currency__code=code)


@pytest.fixture
def two_users(user_factory):
    """Two users with only a USDT wallet each, and history on both."""
    alice = user_factory(balance=100, currencies=("USDT",))
    bob = user_factory(balance=5, currencies=("USDT",))
    usdt = Currency.objects.get(code="USDT")
    transfer_create(sender_id=alice.pk, recipient_id=bob.pk, currency=usdt, amount=Decimal("1"))
    return alice, bob


def swap_wallet_owners(alice, bob):
    """Hand each user the other's USDT wallet, parking one in ETH to get past the unique constraint."""
    victim, attacker = _wallet(alice), _wallet(bob)
    eth = Currency.objects.get(code="ETH").pk
    tamper("UPDATE wallets_wallet SET currency_id = %s WHERE id = %s", [eth, victim.pk])
    tamper("UPDATE wallets_wallet SET user_id = %s WHERE id = %s", [alice.pk, attacker.pk])
    tamper(
        "UPDATE wallets_wallet SET user_id = %s, currency_id = %s WHERE id = %s",
        [bob.pk, victim.currency_id, victim.pk],
    )
    assert _wallet(bob).pk == victim.pk  # the attacker now owns the victim's balance and history


def test_a_wallet_handed_to_another_user_is_reported(two_users):
    alice, bob = two_users
    swap_wallet_owners(alice, bob)
    for args in ((), ("--verify-receipts",)):
        ok, report = run_reconcile(*args)
        assert not ok
        assert failing_checks(report) == {"legs"}
        problems = {e["problem"] for e in report["checks"][2]["examples"]}
        assert problems == {
            "leg's wallet does not belong to the transaction's sender",
            "leg's wallet does not belong to the transaction's recipient",
        }


def test_a_handed_over_wallet_with_rewritten_history_owners_is_reported(two_users):
    alice, bob = two_users
    victim, attacker = _wallet(alice), _wallet(bob)
    swap_wallet_owners(alice, bob)
    # The attacker also re-labels the history, so it agrees with the new owners: the transactions still name
    # the real parties (their user ids are in the signed receipt).
    tamper("UPDATE audit_balancehistory SET user_id = %s WHERE wallet_id = %s", [bob.pk, victim.pk])
    tamper("UPDATE audit_balancehistory SET user_id = %s WHERE wallet_id = %s", [alice.pk, attacker.pk])
    ok, report = run_reconcile()
    assert not ok
    assert failing_checks(report) == {"legs"}
    problems = {e["problem"] for e in report["checks"][2]["examples"]}
    assert problems == {
        "leg's wallet does not belong to the transaction's sender",
        "leg's wallet does not belong to the transaction's recipient",
    }


def test_a_leg_on_a_wallet_in_another_currency_is_reported(two_users):
    alice, _ = two_users
    btc = Currency.objects.get(code="BTC").pk
    tamper("UPDATE wallets_wallet SET currency_id = %s WHERE id = %s", [btc, _wallet(alice).pk])
    ok, report = run_reconcile()
    assert not ok
    assert "legs" in failing_checks(report)
    problems = {e["problem"] for e in report["checks"][2]["examples"]}
    assert problems == {"leg on a wallet in another currency than the transaction"}


def forge_transfer(sender, recipient, amount, *, tx_id=None):
    """Append a victim-to-attacker transfer the way a DBA could: plain INSERTs, a correct receipt hash and
    correctly chained history, wallets moved on. Only the signature cannot be made without the key."""
    import uuid

    from django.utils import timezone

    from audit.chain import entry_hash
    from audit.models import BalanceHistory
    from audit.receipts import transaction_hash
    from transactions.models import Transaction

    usdt = Currency.objects.get(code="USDT")
    source, target = _wallet(sender), _wallet(recipient)
    created_at = timezone.now()
    uid = uuid.uuid4()
    tx_hash = transaction_hash(
        uid=str(uid), type="transfer", from_user_id=sender.pk, to_user_id=recipient.pk, currency="USDT",
        amount=amount, memo="", created_at=created_at,
    )  # fmt: skip
    tx = Transaction.objects.create(
        **({"id": tx_id} if tx_id else {}),
        uid=uid, type="transfer", from_user=sender, to_user=recipient, from_wallet=source, to_wallet=target,
        currency=usdt, amount=amount, hash=tx_hash, signature="ab" * 64, created_at=created_at,
    )  # fmt: skip
    for wallet, delta in ((source, -amount), (target, amount)):
        after = wallet.balance + delta
        head = entry_hash(
            prev_hash=wallet.audit_head, wallet_id=wallet.pk, transaction_hash=tx_hash, delta=delta,
            balance_before=wallet.balance, balance_after=after, created_at=created_at,
        )  # fmt: skip
        BalanceHistory.objects.create(
            wallet=wallet, user_id=wallet.user_id, transaction=tx, delta=delta, balance_before=wallet.balance,
            balance_after=after, prev_hash=wallet.audit_head, entry_hash=head, seq=wallet.entries + 1,
            posting=wallet.postings + 1, total_in_after=wallet.total_in + max(delta, 0),
            total_out_after=wallet.total_out + max(-delta, 0), postings_after=wallet.postings + 1,
            created_at=created_at,
        )  # fmt: skip
        tamper(
            "UPDATE wallets_wallet SET balance = %s, audit_head = %s, entries = entries + 1, postings = postings + 1,"
            " total_in = total_in + GREATEST(%s, 0), total_out = total_out + GREATEST(-%s, 0) WHERE id = %s",
            [after, head, delta, delta, wallet.pk],
        )
    return tx


def test_the_routine_run_catches_a_forged_transfer(two_users):
    alice, bob = two_users
    forge_transfer(alice, bob, Decimal("50"))
    ok, report = run_reconcile()  # no --verify-receipts: the daily run
    assert not ok
    assert failing_checks(report) == {"receipts"}
    assert report["checks"][4]["examples"][0]["hash_ok"] is True  # only the signature gives it away


def test_the_chain_stream_is_planned_for_every_row(ledger):
    # A server-side cursor is planned for its first 10 % of rows (cursor_tuple_fraction 0.1): at 2M
    # history entries that picks an index-ordered nested loop costing twice the server CPU of a
    # hash join and sort. reconcile reads every row, so its transaction plans for all of them.
    from audit.reconcile import reconcile

    assert reconcile().ok
    with connection.cursor() as cursor:  # SET LOCAL lasts until the test's enclosing transaction ends
        cursor.execute("SELECT current_setting('cursor_tuple_fraction')")
        assert cursor.fetchone()[0] == "1"
