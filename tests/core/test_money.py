"""The money suite: every amount is exact, whichever database the service runs on.

It runs on PostgreSQL with the rest of the suite and, through ``test_the_money_suite_passes_on_sqlite``,
once more in a subprocess on SQLite, the embedded default of ``make run`` (the conftest lets exactly
this module run there). SQLite holds numbers as 64-bit floats, 15 significant digits; a
``numeric(20, 8)`` amount needs 20.
"""

import os
import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from audit.models import BalanceHistory
from audit.reconcile import reconcile
from currencies.models import Currency
from currencies.money import MAX_AMOUNT
from tests.ledger import balance, flushable_append_only_tables
from transactions.models import Transaction
from transactions.services import deposit_create, transfer_create, withdrawal_create
from wallet_project.core import errors
from wallets.models import Wallet

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
UNIT = Decimal("0.00000001")


@pytest.fixture(scope="module", autouse=True)
def _flushable_append_only_tables():
    """The migration test is transactional and ends with a flush, which the append-only triggers reject."""
    with flushable_append_only_tables():
        yield


@pytest.fixture
def eth(db):
    return Currency.objects.get(code="ETH")


def deposit(user, currency, amount: str) -> Transaction:
    return deposit_create(user_id=user.pk, currency=currency, amount=Decimal(amount))


def bare_deposit(user, wallet_id: int, currency, *, amount: Decimal, key: str) -> Transaction:
    """A transaction row written directly, as a faulty writer or a tampering hand would."""
    return Transaction.objects.create(
        type="deposit", to_user=user, to_wallet_id=wallet_id, currency=currency, amount=amount, hash=key * 64,
        signature="x", created_at=timezone.now(),
    )  # fmt: skip


def stored_legs(tx: Transaction) -> list[tuple[Decimal, Decimal, Decimal]]:
    return list(
        BalanceHistory.objects.filter(transaction_id=tx.pk)
        .order_by("id")
        .values_list("delta", "balance_before", "balance_after")
    )


def test_a_deposit_of_sixteen_significant_digits_is_stored_exactly(user_factory, cashier_factory, client_for, eth):
    staff, bob = cashier_factory(), user_factory()

    response = client_for(staff).post(
        "/deposits", {"user_id": bob.pk, "currency": "ETH", "amount": "12345678.12345678"}, format="json"
    )

    assert response.status_code == 201, response.content
    assert response.json()["amount"] == "12345678.12345678"
    assert client_for(bob).get(f"/wallet/{bob.pk}", {"currency": "ETH"}).json()["balance"] == "12345678.12345678"
    assert balance(bob, "ETH") == Decimal("12345678.12345678")
    tx = Transaction.objects.get(pk=response.json()["id"])
    assert tx.amount == Decimal("12345678.12345678")
    assert stored_legs(tx) == [(Decimal("12345678.12345678"), 0, Decimal("12345678.12345678"))]


def test_a_one_unit_transfer_between_large_balances_debits_the_sender_and_credits_the_recipient(user_factory, eth):
    alice, bob = user_factory(), user_factory()
    deposit(alice, eth, "999999999.99999999")
    deposit(bob, eth, "12345678.12345678")

    tx = transfer_create(sender_id=alice.pk, recipient_id=bob.pk, currency=eth, amount=UNIT)

    assert balance(alice, "ETH") == Decimal("999999999.99999998")
    assert balance(bob, "ETH") == Decimal("12345678.12345679")
    assert stored_legs(tx) == [
        (-UNIT, Decimal("999999999.99999999"), Decimal("999999999.99999998")),
        (UNIT, Decimal("12345678.12345678"), Decimal("12345678.12345679")),
    ]
    assert reconcile().ok


def test_the_largest_balance_round_trips_and_one_unit_more_is_refused(user_factory, eth):
    alice = user_factory()

    deposit(alice, eth, f"{MAX_AMOUNT}")
    assert balance(alice, "ETH") == Decimal("999999999999.99999999")
    with pytest.raises(errors.AmountExceedsLimit):
        deposit(alice, eth, "0.00000001")
    withdrawal_create(user_id=alice.pk, currency=eth, amount=UNIT)

    assert balance(alice, "ETH") == Decimal("999999999999.99999998")
    assert Transaction.objects.filter(to_user=alice).get().amount == MAX_AMOUNT
    assert reconcile().ok


def test_stats_add_large_and_tiny_amounts_exactly(user_factory, client_for, eth):
    alice, bob = user_factory(), user_factory()
    deposit(alice, eth, "999999999999.99999990")
    for _ in range(3):
        deposit(alice, eth, "0.00000001")
    transfer_create(sender_id=alice.pk, recipient_id=bob.pk, currency=eth, amount=UNIT)
    transfer_create(sender_id=alice.pk, recipient_id=bob.pk, currency=eth, amount=Decimal("9999.99999999"))

    stats = client_for(alice).get(f"/wallet/{alice.pk}/stats", {"currency": "ETH"}).json()

    assert (stats["transaction_count"], stats["total_received"], stats["total_sent"], stats["balance_change"]) == (
        6,
        "999999999999.99999993",
        "10000.00000000",
        "999999989999.99999993",
    )
    assert balance(alice, "ETH") == Decimal("999999989999.99999993")


def test_reconcile_sees_a_balance_one_unit_off_a_large_total(user_factory, eth):
    alice, bob = user_factory(), user_factory()
    deposit(alice, eth, "999999999999.99999998")
    deposit(bob, eth, "1")
    transfer_create(sender_id=alice.pk, recipient_id=bob.pk, currency=eth, amount=UNIT)
    report = reconcile()
    assert report.ok, report.as_dict()
    assert report.supply["ETH"]["balances"] == "1000000000000.99999998"

    Wallet.objects.filter(user=alice, currency=eth).update(balance=Decimal("999999999999.99999998"))
    report = reconcile()

    failed = {check.name: check.mismatches for check in report.checks if not check.ok}
    assert failed == {"balances": 1, "supply": 1}


def test_a_leg_one_unit_short_of_its_amount_is_reported(user_factory, eth):
    alice = user_factory()
    tx = deposit(alice, eth, "999999999999.99999998")
    short = bare_deposit(alice, tx.to_wallet_id, eth, amount=MAX_AMOUNT, key="f")
    BalanceHistory.objects.create(
        wallet_id=tx.to_wallet_id, user=alice, transaction=short, delta=MAX_AMOUNT - UNIT, balance_before=0,
        balance_after=MAX_AMOUNT - UNIT, prev_hash="f" * 64, entry_hash="f" * 64, seq=2, posting=2,
        created_at=timezone.now(),
    )  # fmt: skip

    legs = next(check for check in reconcile().checks if check.name == "legs")

    assert (legs.checked, legs.mismatches) == (2, 1)
    assert legs.examples[0]["amount"] == "999999999999.99999999"


def test_holds_reconcile_to_the_unit_on_large_amounts(user_factory, eth):
    from holds.models import Hold
    from holds.services import hold_capture, hold_create, withdrawal_request_create

    alice, bob = user_factory(), user_factory()
    deposit(alice, eth, "999999999999.99999999")
    # A user's request is bounded by the currency's limit: lift it to reach the large amounts.
    Currency.objects.filter(pk=eth.pk).update(max_transfer_amount=MAX_AMOUNT)
    eth.refresh_from_db()
    withdrawal_request_create(user_id=alice.pk, currency=eth, amount=Decimal("999999999.99999999"), address="0xabc")
    hold = hold_create(payer_id=alice.pk, payee_id=bob.pk, currency=eth, amount=Decimal("9999.99999999"))
    hold_capture(hold_id=hold.pk, actor=bob, amount=UNIT)
    assert Wallet.objects.get(user=alice, currency=eth).held == Decimal("1000009999.99999997")
    report = reconcile()
    assert report.ok, report.as_dict()
    assert report.supply["ETH"]["held"] == "1000009999.99999997"

    Hold.objects.filter(pk=hold.pk).update(captured=2 * UNIT)  # one unit more than its captures
    holds = next(check for check in reconcile().checks if check.name == "holds")

    problems = {example["problem"]: example for example in holds.examples}
    assert problems["wallet's held is not what its active holds keep back"]["active_holds_remaining"] == (
        "1000009999.99999996"
    )
    assert problems["hold's captured is not the sum of its captures"]["captures_total"] == "0.00000001"


def test_holds_in_every_state_reconcile(db):
    from tests.holds.states import holds_in_every_state

    holds_in_every_state()
    report = reconcile()
    assert report.ok, report.as_dict()
    assert next(check for check in report.checks if check.name == "holds").checked == 9 + 7 + 3


def test_the_database_refuses_a_negative_balance_by_one_unit(user_factory, eth):
    alice = user_factory()
    deposit(alice, eth, "1")

    with pytest.raises(IntegrityError), transaction.atomic():
        Wallet.objects.filter(user=alice, currency=eth).update(balance=-UNIT)
    assert balance(alice, "ETH") == 1


def test_the_database_refuses_a_zero_amount(user_factory, eth):
    alice = user_factory()
    wallet = Wallet.objects.get(user=alice, currency=eth)

    with pytest.raises(IntegrityError), transaction.atomic():
        Transaction.objects.create(
            type="deposit", to_user=alice, to_wallet=wallet, currency=eth, amount=Decimal("0.00000000"),
            hash="e" * 64, signature="x", created_at=timezone.now(),
        )  # fmt: skip


def test_the_database_refuses_a_history_row_whose_after_is_one_unit_off(user_factory, eth):
    alice = user_factory()
    wallet_id = deposit(alice, eth, "1").to_wallet_id

    def leg(key: str, delta: Decimal, before: Decimal, after: Decimal) -> BalanceHistory:
        return BalanceHistory.objects.create(
            wallet_id=wallet_id, user=alice, transaction=bare_deposit(alice, wallet_id, eth, amount=UNIT, key=key),
            delta=delta, balance_before=before, balance_after=after, prev_hash=key * 64, entry_hash=key * 64,
            seq=ord(key), posting=ord(key), created_at=timezone.now(),
        )  # fmt: skip

    with pytest.raises(IntegrityError), transaction.atomic():
        leg("a", UNIT, MAX_AMOUNT - UNIT, MAX_AMOUNT - UNIT)
    with pytest.raises(IntegrityError), transaction.atomic():
        leg("b", -UNIT, MAX_AMOUNT, MAX_AMOUNT)
    with pytest.raises(IntegrityError), transaction.atomic():
        leg("c", Decimal("-0.1"), Decimal("0.3"), Decimal("0.1"))
    # The ones that add up are accepted, down to the unit and across the whole range.
    leg("d", UNIT, MAX_AMOUNT - UNIT, MAX_AMOUNT)
    leg("e", -MAX_AMOUNT, MAX_AMOUNT, Decimal(0))
    leg("f", Decimal("0.2"), Decimal("0.1"), Decimal("0.3"))
    leg("g", Decimal("-0.00000011"), Decimal("1.00000010"), Decimal("0.99999999"))
    leg("h", Decimal("999999999999"), Decimal("0.99999999"), MAX_AMOUNT)


def test_amounts_sort_and_filter_by_value(user_factory, eth):
    alice = user_factory()
    for amount in ("10", "9.99999999", "0.5", "100000.00000001", "999999999.99999999", "0.00000001"):
        deposit(alice, eth, amount)
    transfer_create(sender_id=alice.pk, recipient_id=user_factory().pk, currency=eth, amount=Decimal("2"))
    mine = Transaction.objects.filter(currency=eth)

    assert list(mine.order_by("amount").values_list("amount", flat=True)) == [
        Decimal(a) for a in ("0.00000001", "0.5", "2", "9.99999999", "10", "100000.00000001", "999999999.99999999")
    ]
    assert mine.filter(amount__gt=Decimal("9.99999999")).count() == 3
    assert mine.filter(amount__lte=Decimal("9.99999999")).count() == 4
    assert mine.filter(amount=Decimal("100000.00000001")).count() == 1
    history = BalanceHistory.objects.filter(wallet__currency=eth, user=alice)
    assert history.filter(delta__lt=0).get().delta == Decimal("-2")
    assert history.filter(delta__gt=0).count() == 6


def test_the_money_suite_passes_on_sqlite(tmp_path):
    tests = [name for name in globals() if name.startswith("test_") and name != "test_the_money_suite_passes_on_sqlite"]
    env = {
        **os.environ,
        "MONEY_SUITE_ON_SQLITE": "1",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'money.sqlite3'}",
    }
    run = subprocess.run(
        [sys.executable, "-m", "pytest", __file__, "-q", "-p", "no:randomly", "--create-db",
         "-k", "not test_the_money_suite_passes_on_sqlite"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip

    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert re.search(rf"\b{len(tests)} passed\b", run.stdout), run.stdout[-2000:]


BEFORE_EXACT_MONEY = [
    ("audit", "0003_history_seq"),
    ("currencies", "0002_seed_currencies"),
    ("transactions", "0002_append_only"),
    ("wallets", "0002_wallet_entries"),
]


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_migrating_a_database_of_the_previous_schema_keeps_every_amount(user_factory, eth):
    alice, bob = user_factory(), user_factory()
    for amount in ("12345678.5", "0.125", "1024.25"):
        deposit(alice, eth, amount)
    deposit(bob, eth, "0.00000001")
    transfer_create(sender_id=alice.pk, recipient_id=bob.pk, currency=eth, amount=Decimal("0.5"))
    money = [
        *Wallet.objects.order_by("id").values_list("balance"),
        *Transaction.objects.order_by("id").values_list("amount"),
        *BalanceHistory.objects.order_by("id").values_list("delta", "balance_before", "balance_after"),
        *Currency.objects.order_by("id").values_list("max_transfer_amount"),
    ]

    MigrationExecutor(connection).migrate(BEFORE_EXACT_MONEY)  # on SQLite: back to float columns
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

    assert [
        *Wallet.objects.order_by("id").values_list("balance"),
        *Transaction.objects.order_by("id").values_list("amount"),
        *BalanceHistory.objects.order_by("id").values_list("delta", "balance_before", "balance_after"),
        *Currency.objects.order_by("id").values_list("max_transfer_amount"),
    ] == money
    assert reconcile().ok
    transfer_create(sender_id=bob.pk, recipient_id=alice.pk, currency=eth, amount=UNIT)
    assert (balance(alice, "ETH"), balance(bob, "ETH")) == (Decimal("12346702.37500001"), Decimal("0.50000000"))
    with pytest.raises(IntegrityError), transaction.atomic():  # the CHECKs are back on
        Wallet.objects.filter(user=bob, currency=eth).update(balance=-UNIT)


def test_the_sqlite_spelling_is_fixed_width_and_refuses_what_it_cannot_hold_exactly():
    from django.db import DataError

    from currencies.money_field import to_sqlite_text

    assert to_sqlite_text(MAX_AMOUNT) == "0999999999999.99999999"
    assert to_sqlite_text(Decimal("-0.00000001")) == "-0000000000000.00000001"
    assert to_sqlite_text(Decimal("-0")) == to_sqlite_text(Decimal(0)) == "0000000000000.00000000"
    for unfit in (Decimal("0.000000001"), Decimal("1E+13"), Decimal("NaN")):
        with pytest.raises(DataError):
            to_sqlite_text(unfit)
    with pytest.raises(DataError):
        to_sqlite_text(MAX_AMOUNT + UNIT, max_digits=20)
