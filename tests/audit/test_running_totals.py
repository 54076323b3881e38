"""The running totals on every balance-history entry (``total_in_after``, ``total_out_after``,
``postings_after``) and on the wallet (``total_in``, ``total_out``): written by every path that appends
to a chain, raced by real threads, backfilled by ``audit/0009``, guarded by CHECKs and by reconcile,
and what a statement's totals are read from."""

import importlib
import random
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from audit.models import BalanceHistory
from audit.reconcile import reconcile
from currencies.models import Currency
from holds.models import Hold
from holds.services import hold_capture, hold_create, holds_expire_due
from tests.audit.test_reconcile_command import failing_checks, run_reconcile, tamper
from tests.conftest import make_user
from tests.ledger import chain_problems, flushable_append_only_tables, run_in_threads
from tests.wallets.statements import build_random_ledger, chain, replay_statement
from transactions.services import BatchTransfer, reversal_create, transfer_batch_create, transfer_create
from wallets import sql as wallet_sql
from wallets.models import Wallet
from wallets.selectors import wallet_statement

ZERO = Decimal(0)


def expected_totals(wallet: Wallet) -> list[tuple[int, Decimal, Decimal, int]]:
    """(seq, total in, total out, movements) after each entry of the chain, summed from the deltas."""
    total_in = total_out = ZERO
    postings = 0
    out = []
    for entry in BalanceHistory.objects.filter(wallet=wallet).order_by("seq"):
        total_in += max(entry.delta, ZERO)
        total_out += max(-entry.delta, ZERO)
        postings += entry.transaction_id is not None
        out.append((entry.seq, total_in, total_out, postings))
    return out


def stored_totals(wallet: Wallet) -> list[tuple[int, Decimal, Decimal, int]]:
    rows = BalanceHistory.objects.filter(wallet=wallet).order_by("seq")
    return list(rows.values_list("seq", "total_in_after", "total_out_after", "postings_after"))


def assert_totals_hold(wallets) -> None:
    for wallet in wallets:
        wallet.refresh_from_db()
        expected = expected_totals(wallet)
        assert stored_totals(wallet) == expected, wallet.pk
        last = expected[-1] if expected else (0, ZERO, ZERO, 0)
        assert (wallet.total_in, wallet.total_out, wallet.postings) == last[1:], wallet.pk
        assert wallet.total_in - wallet.total_out == wallet.balance


@pytest.mark.django_db
def test_every_path_that_appends_to_a_chain_writes_its_running_totals(user_factory, cashier_factory):
    """Transfers, deposits, withdrawals, reversals, holds placed, captured and voided (the random
    ledger), a batch, and holds expired by the sweep: every entry's totals are its chain's sums."""
    rng = random.Random(16)
    users = [user_factory(balance=300) for _ in range(4)]
    currencies = list(Currency.objects.filter(code__in=["USDT", "BTC"]))
    cashier = cashier_factory()
    build_random_ledger(rng, users, cashier, currencies, steps=80)
    usdt = Currency.objects.get(code="USDT")
    alice, bob, carol = users[:3]
    result = transfer_batch_create(
        sender_id=alice.pk,
        transfers=[BatchTransfer(bob.pk, usdt, Decimal("1.5")), BatchTransfer(carol.pk, usdt, Decimal("2")),
                   BatchTransfer(bob.pk, usdt, Decimal("0.25"))],
    )  # fmt: skip
    reversal_create(original=result.transactions[0], memo="refund", created_by_id=cashier.pk)
    held = hold_create(payer_id=bob.pk, payee_id=carol.pk, currency=usdt, amount=Decimal(3), expires_in=1)
    Hold.objects.filter(pk=held.pk).update(expires_at=timezone.now())
    assert holds_expire_due() == 1
    captured = hold_create(payer_id=carol.pk, payee_id=alice.pk, currency=usdt, amount=Decimal(4))
    hold_capture(hold_id=captured.pk, actor=alice, amount=Decimal(1))

    wallets = list(Wallet.objects.filter(user__in=users))
    kinds = set(BalanceHistory.objects.filter(wallet__in=wallets).values_list("transaction__type", flat=True))
    assert {"transfer", "deposit", "withdrawal", "reversal", None} <= kinds  # None: changes of held alone
    assert_totals_hold(wallets)
    assert reconcile().ok


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_totals_stay_exact_when_threads_race_on_one_wallet():
    """40 transfers into and out of one wallet and 10 holds on it, from 8 threads at once: each entry
    was chained under the wallet's lock, so its totals follow the one before it whatever the order."""
    with flushable_append_only_tables():
        usdt = Currency.objects.get(code="USDT")
        hub = make_user(balance=100)
        others = [make_user(balance=100) for _ in range(4)]
        tasks = []
        for n in range(40):
            other = others[n % 4]
            sender, recipient = (hub, other) if n % 2 else (other, hub)
            tasks.append(
                lambda s=sender, r=recipient, n=n: transfer_create(
                    sender_id=s.pk, recipient_id=r.pk, currency=usdt, amount=Decimal(n + 1) / 8
                )
            )
        for n in range(10):
            tasks.append(
                lambda n=n: hold_create(payer_id=hub.pk, payee_id=others[n % 4].pk, currency=usdt, amount=Decimal(1))
            )
        results = run_in_threads(tasks, threads=8)
        assert not [r for r in results if isinstance(r, Exception)], results
        wallets = list(Wallet.objects.filter(user__in=[hub, *others], currency=usdt))
        assert_totals_hold(wallets)
        assert all(chain_problems(wallet) == [] for wallet in wallets)
        assert reconcile().ok


@pytest.mark.django_db
def test_the_migration_backfills_the_totals_the_ledger_writes(user_factory, cashier_factory):
    """``audit/0009``'s backfill, run again over rows whose totals were erased, writes back exactly what
    the ledger wrote (batches of whole wallets: a batch size of one entry makes every wallet its own)."""
    rng = random.Random(8)
    users = [user_factory(balance=200) for _ in range(3)]
    build_random_ledger(rng, users, cashier_factory(), list(Currency.objects.filter(code="USDT")), steps=40)
    wallets = list(Wallet.objects.filter(user__in=users))
    written = {wallet.pk: stored_totals(wallet) for wallet in wallets}
    wallet_totals = {wallet.pk: (wallet.total_in, wallet.total_out) for wallet in Wallet.objects.filter(user__in=users)}
    tamper("UPDATE audit_balancehistory SET total_in_after = NULL, total_out_after = NULL, postings_after = NULL")
    tamper("UPDATE wallets_wallet SET total_in = 0, total_out = 0")
    migration = importlib.import_module("audit.migrations.0009_running_totals")
    with connection.cursor() as cursor:  # (the test's deferred foreign-key checks, before an ALTER TABLE)
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    for batch in (1, 10**9):
        migration.BATCH_ENTRIES, saved = batch, migration.BATCH_ENTRIES
        try:
            with connection.schema_editor() as editor:
                migration.backfill(None, editor)
        finally:
            migration.BATCH_ENTRIES = saved
        assert {wallet.pk: stored_totals(wallet) for wallet in wallets} == written
        refreshed = {wallet.pk: (wallet.total_in, wallet.total_out) for wallet in Wallet.objects.filter(user__in=users)}
        assert refreshed == wallet_totals
    with connection.cursor() as cursor:  # the trigger is back on
        cursor.execute("SELECT tgenabled FROM pg_trigger WHERE tgname = 'audit_balancehistory_append_only'")
        assert cursor.fetchone()[0] == "O"
    assert reconcile().ok


@pytest.fixture
def two(user_factory):
    alice, bob = user_factory(balance=100), user_factory(balance=50)
    usdt = Currency.objects.get(code="USDT")
    transfer_create(sender_id=alice.pk, recipient_id=bob.pk, currency=usdt, amount=Decimal("12.5"))
    transfer_create(sender_id=bob.pk, recipient_id=alice.pk, currency=usdt, amount=Decimal("2"))
    return alice, bob


@pytest.mark.django_db
def test_the_database_refuses_totals_that_do_not_add_up(two):
    """What came in less what went out is the balance, and a movement's position is the count so far:
    an edit of one without the other is refused by the row's own CHECKs (even with triggers off)."""
    alice, _ = two
    entry = BalanceHistory.objects.filter(user=alice).latest("seq")
    for edit in (
        "total_in_after = total_in_after + 1",
        "balance_after = balance_after + 1, delta = delta + 1",
        "total_out_after = -1, total_in_after = balance_after - 1",
        "postings_after = postings_after + 1",
    ):
        with pytest.raises(IntegrityError), transaction.atomic():
            tamper(f"UPDATE audit_balancehistory SET {edit} WHERE id = %s", [entry.pk])  # noqa: S608 (fixed edits)


@pytest.mark.django_db
def test_reconcile_finds_totals_edited_behind_the_service(two):
    """Both totals moved by the same amount satisfy the CHECK and no hash covers them: the recomputation
    along the chain finds the entry, and the wallet whose totals were edited."""
    alice, bob = two
    first = BalanceHistory.objects.filter(user=alice).earliest("seq")
    tamper(
        "UPDATE audit_balancehistory SET total_in_after = total_in_after + 5, total_out_after = total_out_after + 5"
        " WHERE id = %s",
        [first.pk],
    )
    ok, report = run_reconcile()
    assert not ok and failing_checks(report) == {"chains"}
    (example,) = next(c for c in report["checks"] if c["name"] == "chains")["examples"]
    assert example["entry_id"] == first.pk and example["totals_ok"] is False and example["hash_ok"] is True

    tamper(
        "UPDATE audit_balancehistory SET total_in_after = total_in_after - 5, total_out_after = total_out_after - 5"
        " WHERE id = %s",
        [first.pk],
    )
    assert run_reconcile()[0]
    tamper(
        "UPDATE wallets_wallet SET total_out = total_out + 1, total_in = total_in + 1 WHERE user_id = %s"
        " AND currency_id = (SELECT id FROM currencies_currency WHERE code = 'USDT')",
        [bob.pk],
    )
    ok, report = run_reconcile()
    assert not ok and failing_checks(report) == {"balances"}
    (example,) = report["checks"][0]["examples"]
    assert example["totals_match"] is False


@pytest.mark.django_db
def test_a_statement_over_an_entry_without_totals_sums_its_stretch(two):
    """An entry written outside the ledger without its totals (reconcile reports it): a statement that
    ends on it sums the legs of its stretch instead, and stays what the chain says."""
    alice, _ = two
    wallet = Wallet.objects.get(user=alice, currency__code="USDT")
    entries = chain(wallet)
    newest = entries[-1]
    tamper(
        "UPDATE audit_balancehistory SET total_in_after = NULL, total_out_after = NULL, postings_after = NULL"
        " WHERE id = %s",
        [newest.pk],
    )
    start, end = entries[0].created_at, newest.created_at + timedelta(seconds=1)
    statement = wallet_statement(wallet=wallet, start=start, end=end)
    assert statement.closing.total_in is None  # the fallback was taken
    expected = replay_statement(entries, start, end)
    assert (statement.total_in, statement.total_out, statement.count) == (
        expected.total_in,
        expected.total_out,
        len(expected.transaction_ids),
    )
    ok, report = run_reconcile()
    assert not ok and "chains" in failing_checks(report)


@pytest.mark.django_db
def test_a_statements_ends_are_two_index_probes_and_its_totals_no_scan(two):
    """The ends' statement as the selector sends it: two backward probes of (wallet, created_at, seq),
    one row each, and no aggregate over the stretch between them, however long."""
    alice, _ = two
    wallet = Wallet.objects.get(user=alice, currency__code="USDT")
    now = timezone.now()
    with connection.cursor() as cursor:
        # A test table is tiny and its statistics are whatever other tests left: the planner may as well
        # sort it. Without that choice, the plan the index gives (the one it picks by itself at
        # 1,000,000 entries: docs/benchmarks.md).
        for method in ("seqscan", "sort", "bitmapscan"):
            cursor.execute(f"SET LOCAL enable_{method} = off")
        cursor.execute(
            "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) " + wallet_sql.ENDS_SQL,
            [wallet.pk, now - timedelta(days=1), wallet.pk, now],
        )
        plan = [row[0] for row in cursor.fetchall()]
    assert sum("Index Scan Backward using history_wallet_time" in line for line in plan) == 2, plan
    assert not any("Aggregate" in line or "Sort" in line or "Seq Scan" in line for line in plan), plan
