"""The database holds the invariants even when the service is bypassed (PostgreSQL only)."""

import uuid
from decimal import Decimal

import pytest
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.utils import timezone

from audit.models import BalanceHistory
from transactions.models import Transaction
from transactions.services import transfer_create
from wallets.models import Wallet

pytestmark = pytest.mark.django_db


@pytest.fixture
def moved(user_factory, usdt):
    alice, bob = user_factory(balance=100), user_factory()
    tx = transfer_create(sender_id=alice.pk, recipient_id=bob.pk, currency=usdt, amount=Decimal(10))
    return alice, bob, tx


def rejected(fn, error=DatabaseError):
    """Run ``fn`` in a savepoint; True when the database refused it."""
    try:
        with transaction.atomic():
            fn()
    except error:
        return True
    return False


def raw(sql, params=()):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE transactions_transaction SET amount = amount + 1 WHERE id = %s",
        "UPDATE transactions_transaction SET memo = 'edited' WHERE id = %s",
        "DELETE FROM transactions_transaction WHERE id = %s",
        "UPDATE audit_balancehistory SET delta = delta WHERE transaction_id = %s",
        "DELETE FROM audit_balancehistory WHERE transaction_id = %s",
    ],
)
def test_transactions_and_history_are_append_only(moved, sql):
    _, _, tx = moved
    assert rejected(lambda: raw(sql, [tx.pk]))
    assert Transaction.objects.filter(pk=tx.pk, amount=10, memo="").exists()
    assert BalanceHistory.objects.filter(transaction=tx).count() == 2


@pytest.mark.parametrize("table", ["transactions_transaction", "audit_balancehistory"])
def test_truncate_is_rejected(moved, table):
    assert rejected(lambda: raw(f"TRUNCATE {table} CASCADE"))


def test_the_orm_cannot_edit_or_delete_either(moved):
    _, _, tx = moved

    def edit():
        tx.memo = "edited"
        tx.save()

    assert rejected(edit)
    assert rejected(lambda: Transaction.objects.filter(pk=tx.pk).delete())
    assert rejected(lambda: BalanceHistory.objects.filter(transaction=tx).update(delta=Decimal(1)))


def test_a_balance_can_never_go_negative(moved):
    alice, _, _ = moved
    assert rejected(lambda: Wallet.objects.filter(user=alice, currency_id=1).update(balance=Decimal("-0.00000001")))


def test_one_wallet_per_user_and_currency(moved):
    alice, _, _ = moved
    assert rejected(lambda: Wallet.objects.create(user=alice, currency_id=1), IntegrityError)


def transaction_row(tx, **overrides):
    fields = {
        "uid": uuid.uuid4(),
        "type": "transfer",
        "from_user_id": tx.from_user_id,
        "to_user_id": tx.to_user_id,
        "from_wallet_id": tx.from_wallet_id,
        "to_wallet_id": tx.to_wallet_id,
        "currency_id": tx.currency_id,
        "amount": Decimal(1),
        "hash": uuid.uuid4().hex * 2,
        "signature": "00" * 64,
        "created_at": timezone.now(),
        **overrides,
    }
    return Transaction(**fields)


def test_a_valid_hand_made_row_is_accepted(moved):
    """The control for the rejections below: each differs from this row in one way."""
    _, _, tx = moved
    assert not rejected(lambda: transaction_row(tx).save(force_insert=True))


@pytest.mark.parametrize(
    "overrides",
    [
        {"amount": Decimal(0)},
        {"amount": Decimal(-1)},
        {"type": "deposit"},  # a deposit has no source wallet
        {"type": "withdrawal"},  # a withdrawal has no target wallet
        {"to_wallet_id": None},
        {"hash": "same"},
    ],
)
def test_transaction_constraints(moved, overrides):
    _, _, tx = moved
    if overrides.get("hash") == "same":
        overrides = {"hash": tx.hash}
    assert rejected(lambda: transaction_row(tx, **overrides).save(force_insert=True), IntegrityError)


def test_a_transfer_to_the_same_wallet_is_rejected(moved):
    _, _, tx = moved
    row = transaction_row(tx, to_wallet_id=tx.from_wallet_id, to_user_id=tx.from_user_id)
    assert rejected(lambda: row.save(force_insert=True), IntegrityError)


def test_history_rows_must_add_up_and_cannot_fork(moved):
    alice, _, tx = moved
    wallet = Wallet.objects.get(user=alice, currency_id=1)
    last = BalanceHistory.objects.filter(wallet=wallet).latest("id")

    def entry(**overrides):
        fields = {
            "wallet": wallet,
            "user_id": alice.pk,
            "transaction": transaction_row(tx),
            "delta": Decimal(-1),
            "balance_before": Decimal(90),
            "balance_after": Decimal(89),
            "prev_hash": uuid.uuid4().hex * 2,
            "entry_hash": uuid.uuid4().hex * 2,
            "seq": last.seq + 1,
            "posting": last.posting + 1,
            "created_at": timezone.now(),
            **overrides,
        }
        fields["transaction"].save(force_insert=True)
        return BalanceHistory(**fields).save(force_insert=True)

    assert not rejected(entry)  # control
    assert rejected(lambda: entry(balance_after=Decimal(88)), IntegrityError)  # before + delta != after
    assert rejected(lambda: entry(delta=Decimal(0), balance_after=Decimal(90)), IntegrityError)
    assert rejected(lambda: entry(delta=Decimal(-91), balance_after=Decimal(-1)), IntegrityError)  # negative after
    assert rejected(lambda: entry(prev_hash=last.prev_hash), IntegrityError)  # a second successor: a fork
    assert rejected(lambda: entry(seq=last.seq), IntegrityError)  # two entries at one chain position
    assert rejected(lambda: entry(seq=0), IntegrityError)  # positions start at 1
