"""transfer_batch_create: several transfers from one sender, all or nothing, in one database transaction."""

import time
from collections import Counter
from decimal import Decimal

import pytest

from audit.models import BalanceHistory
from audit.reconcile import reconcile
from currencies.models import Currency
from events.models import OutboxEvent
from holds.models import Hold
from holds.services import hold_create
from tests.conftest import make_user
from tests.ledger import chain_problems, ledger_state, ledger_state_with_keys, run_in_threads
from transactions.models import IdempotencyKey, Transaction, TransferBatch
from transactions.services import (
    BATCH_MAX_ITEMS,
    BatchTransfer,
    Idempotency,
    deposit_create,
    transfer_batch_create,
    transfer_create,
)
from wallet_project.core import errors
from wallets.models import Wallet

pytestmark = pytest.mark.django_db


@pytest.fixture
def usdt(db):
    return Currency.objects.get(code="USDT")


@pytest.fixture
def btc(db):
    return Currency.objects.get(code="BTC")


@pytest.fixture
def people(db, btc):
    """Alice has 100 USDT and 1 BTC; Bob and Carol have wallets and nothing in them."""
    alice, bob, carol = make_user(balance=100), make_user(), make_user()
    deposit_create(user_id=alice.pk, currency=btc, amount=Decimal(1))
    return alice, bob, carol


def item(recipient, currency, amount, **kwargs) -> BatchTransfer:
    return BatchTransfer(recipient_id=recipient.pk, currency=currency, amount=Decimal(amount), **kwargs)


def wallet(user, currency) -> Wallet:
    return Wallet.objects.get(user=user, currency=currency)


def assert_reconciles():
    report = reconcile(verify_receipts=True)
    assert report.ok, [(c.name, c.examples) for c in report.checks if not c.ok]


def key(name="batch-1", fingerprint="f") -> Idempotency:
    return Idempotency(key=name, scope="transfer_batch", fingerprint=fingerprint)


# --- success --------------------------------------------------------------------------------------


def test_a_batch_posts_every_item_in_order_across_currencies_and_chains_a_repeated_wallet(people, usdt, btc):
    alice, bob, carol = people
    before = ledger_state()

    result = transfer_batch_create(
        sender_id=alice.pk,
        transfers=[
            item(bob, usdt, "10", memo="one"),
            item(carol, usdt, "5"),
            item(bob, btc, "0.1"),
            item(bob, usdt, "2.5", memo="again"),  # Bob, and Alice's USDT wallet, a second time
        ],
    )

    txs = result.transactions
    assert [(t.to_user_id, t.currency.code, t.amount, t.memo) for t in txs] == [
        (bob.pk, "USDT", Decimal(10), "one"),
        (carol.pk, "USDT", Decimal(5), ""),
        (bob.pk, "BTC", Decimal("0.1"), ""),
        (bob.pk, "USDT", Decimal("2.5"), "again"),
    ]
    assert all(t.type == "transfer" and t.from_user_id == alice.pk and not t.replayed for t in txs)
    assert [t.pk for t in txs] == sorted(t.pk for t in txs)
    assert [(b.currency.code, b.after.balance, b.after.available) for b in result.balances] == [
        ("USDT", Decimal("82.5"), Decimal("82.5")),
        ("BTC", Decimal("0.9"), Decimal("0.9")),
    ]
    assert wallet(alice, usdt).balance == Decimal("82.5") and wallet(alice, btc).balance == Decimal("0.9")
    assert wallet(bob, usdt).balance == Decimal("12.5") and wallet(bob, btc).balance == Decimal("0.1")
    assert wallet(carol, usdt).balance == 5

    # Alice's USDT legs follow one another: each one's before is the previous one's after.
    legs = BalanceHistory.objects.filter(wallet=wallet(alice, usdt), transaction__in=txs).order_by("seq")
    assert [(leg.balance_before, leg.balance_after) for leg in legs] == [
        (Decimal(100), Decimal(90)),
        (Decimal(90), Decimal(85)),
        (Decimal(85), Decimal("82.5")),
    ]
    seqs = [leg.seq for leg in legs]
    assert seqs == list(range(seqs[0], seqs[0] + 3))
    after = ledger_state()
    assert after["transactions"] - before["transactions"] == 4
    assert after["history"] - before["history"] == 8
    events = OutboxEvent.objects.order_by("-id")[:4]
    assert sorted(e.payload["transaction"]["id"] for e in events) == [t.pk for t in txs]
    assert {e.payload["event_type"] for e in events} == {"tx.created"}
    batch = TransferBatch.objects.get(pk=result.batch_id)
    assert batch.sender_id == alice.pk
    assert list(batch.items.order_by("position").values_list("position", "transaction_id")) == list(
        enumerate(t.pk for t in txs)
    )
    assert [p for w in Wallet.objects.filter(user__in=people) for p in chain_problems(w)] == []
    assert_reconciles()


def test_the_balances_say_what_is_left_available_besides_the_holds(people, usdt):
    alice, bob, _ = people
    hold_create(payer_id=alice.pk, currency=usdt, amount=Decimal(30), expires_in=600)

    result = transfer_batch_create(sender_id=alice.pk, transfers=[item(bob, usdt, "50"), item(bob, usdt, "20")])

    (usdt_balance,) = result.balances
    assert (usdt_balance.after.balance, usdt_balance.after.available) == (Decimal(30), Decimal(0))


def test_expired_holds_are_released_when_they_stand_in_the_way(people, usdt):
    alice, bob, _ = people
    hold = hold_create(payer_id=alice.pk, currency=usdt, amount=Decimal(60), expires_in=600)
    Hold.objects.filter(pk=hold.pk).update(expires_at=hold.created_at)  # lapsed, not yet swept

    transfer_batch_create(sender_id=alice.pk, transfers=[item(bob, usdt, "50"), item(bob, usdt, "30")])

    assert (wallet(alice, usdt).balance, wallet(alice, usdt).held) == (Decimal(20), Decimal(0))
    assert Hold.objects.get(pk=hold.pk).status == "expired"
    assert chain_problems(wallet(alice, usdt)) == []


def test_a_batch_of_100_takes_well_under_a_second(people, usdt):
    alice, bob, carol = people
    transfers = [item(bob if n % 2 else carol, usdt, "0.5") for n in range(BATCH_MAX_ITEMS)]

    started = time.perf_counter()
    result = transfer_batch_create(sender_id=alice.pk, transfers=transfers)
    elapsed = time.perf_counter() - started

    assert len(result.transactions) == 100 and wallet(alice, usdt).balance == 50
    assert elapsed < 1.0, f"{elapsed:.3f} s"
    assert chain_problems(wallet(alice, usdt)) == []


# --- refusals: the item named, nothing written ----------------------------------------------------


def refused(sender, transfers, **kwargs) -> errors.ApiError:
    before = ledger_state_with_keys()
    with pytest.raises(errors.ApiError) as caught:
        transfer_batch_create(sender_id=sender.pk, transfers=transfers, **kwargs)
    after = ledger_state_with_keys()
    if "idempotency" in kwargs:  # the refusal is recorded against the key, nothing else
        after["idempotency_keys"] -= 1
    assert after == before
    assert TransferBatch.objects.count() == 0
    return caught.value


def test_the_item_that_runs_the_wallet_dry_refuses_the_batch(people, usdt):
    alice, bob, carol = people
    # Each fits on its own; together the third is 10 short.
    error = refused(alice, [item(bob, usdt, "60"), item(carol, usdt, "30"), item(bob, usdt, "20")])

    assert error.code == "INSUFFICIENT_BALANCE" and error.status_code == 400
    assert set(error.errors) == {"transfers[2].amount"}
    assert "insufficient" in error.message and error.message.startswith("transfers[2].amount: ")


def test_held_money_is_not_available_to_a_batch(people, usdt):
    alice, bob, _ = people
    hold_create(payer_id=alice.pk, currency=usdt, amount=Decimal(50), expires_in=600)
    error = refused(alice, [item(bob, usdt, "40"), item(bob, usdt, "20")])
    assert (error.code, set(error.errors)) == ("INSUFFICIENT_BALANCE", {"transfers[1].amount"})


@pytest.mark.parametrize(
    "make, code, status, field",
    [
        (lambda a, b, c, usdt, btc: item(a, usdt, "1", recipient_field="to_username"), "SAME_ACCOUNT_TRANSFER", 400,
         "to_username"),
        (lambda a, b, c, usdt, btc: item(a, usdt, "1"), "SAME_ACCOUNT_TRANSFER", 400, "to_user_id"),
        (lambda a, b, c, usdt, btc: BatchTransfer(recipient_id=2**62, currency=usdt, amount=Decimal(1)),
         "RECIPIENT_NOT_FOUND", 404, "to_user_id"),
        (lambda a, b, c, usdt, btc: item(make_user(is_active=False), usdt, "1"), "RECIPIENT_NOT_FOUND", 404,
         "to_user_id"),
        (lambda a, b, c, usdt, btc: item(make_user(currencies=("BTC",)), usdt, "1", recipient_field="to_username"),
         "RECIPIENT_NOT_FOUND", 404, "to_username"),
        (lambda a, b, c, usdt, btc: item(b, Currency.objects.get(code="ETH"), "1", currency_field="currency"),
         "SENDER_WALLET_NOT_FOUND", 404, "currency"),
        (lambda a, b, c, usdt, btc: item(b, usdt, "0.0000001"), "INVALID_DECIMALS", 400, "amount"),
        (lambda a, b, c, usdt, btc: item(b, usdt, "0"), "AMOUNT_NOT_POSITIVE", 400, "amount"),
        (lambda a, b, c, usdt, btc: item(b, usdt, "-1"), "AMOUNT_NOT_POSITIVE", 400, "amount"),
        (lambda a, b, c, usdt, btc: item(b, usdt, "1000000.000001"), "AMOUNT_EXCEEDS_LIMIT", 400, "amount"),
        (lambda a, b, c, usdt, btc: item(b, usdt, "100.000001"), "INSUFFICIENT_BALANCE", 400, "amount"),
        (lambda a, b, c, usdt, btc: item(b, btc, "1.00000001"), "INSUFFICIENT_BALANCE", 400, "amount"),
    ],
)  # fmt: skip
def test_a_bad_item_is_named_by_its_index_and_refuses_the_batch(people, usdt, btc, make, code, status, field):
    alice, bob, carol = people
    bad = make(alice, bob, carol, usdt, btc)
    Wallet.objects.filter(user=alice, currency__code="ETH").delete()  # Alice has no ETH wallet

    error = refused(alice, [item(bob, usdt, "1"), item(carol, btc, "0.5"), item(carol, usdt, "1"), bad])

    assert (error.code, error.status_code) == (code, status)
    assert list(error.errors) == [f"transfers[3].{field}"]


@pytest.mark.parametrize("size", [0, BATCH_MAX_ITEMS + 1])
def test_an_empty_or_oversized_batch_is_refused(people, usdt, size):
    alice, bob, _ = people
    error = refused(alice, [item(bob, usdt, "0.01")] * size)
    assert (error.code, list(error.errors)) == ("INVALID_REQUEST", ["transfers"])


def test_a_recipient_overflowing_the_largest_balance_is_named(people, usdt):
    alice, bob, carol = people
    rich = make_user()
    deposit_create(user_id=rich.pk, currency=usdt, amount=Decimal("999999999999.5"))
    deposit_create(user_id=alice.pk, currency=usdt, amount=Decimal(900))
    error = refused(alice, [item(bob, usdt, "1"), item(rich, usdt, "1")])
    assert (error.code, list(error.errors)) == ("AMOUNT_EXCEEDS_LIMIT", ["transfers[1].amount"])


# --- idempotency ------------------------------------------------------------------------------------


def test_one_key_replays_the_whole_batch_with_the_balances_it_left(people, usdt, btc):
    alice, bob, carol = people
    transfers = [item(bob, usdt, "10"), item(carol, btc, "0.25"), item(carol, usdt, "1")]
    first = transfer_batch_create(sender_id=alice.pk, transfers=transfers, idempotency=key())
    deposit_create(user_id=alice.pk, currency=usdt, amount=Decimal(7))  # the wallet moves on
    before = ledger_state_with_keys()

    again = transfer_batch_create(sender_id=alice.pk, transfers=transfers, idempotency=key())

    assert ledger_state_with_keys() == before
    assert again.replayed and not first.replayed and again.batch_id == first.batch_id
    assert [t.pk for t in again.transactions] == [t.pk for t in first.transactions]
    assert all(t.replayed for t in again.transactions)
    assert again.balances == first.balances  # as the batch left them, not as they are now
    assert [(b.currency.code, b.after.balance) for b in again.balances] == [
        ("USDT", Decimal(89)),
        ("BTC", Decimal("0.75")),
    ]
    record = IdempotencyKey.objects.get(key="batch-1")
    assert (record.scope, record.transaction_id, record.resource_id) == (
        "transfer_batch",
        first.transactions[0].pk,
        first.batch_id,
    )


def test_a_refused_batch_replays_its_refusal_even_once_it_would_fit(people, usdt):
    alice, bob, _ = people
    transfers = [item(bob, usdt, "80"), item(bob, usdt, "30")]
    error = refused(alice, transfers, idempotency=key())
    deposit_create(user_id=alice.pk, currency=usdt, amount=Decimal(50))

    with pytest.raises(errors.InsufficientBalance) as again:
        transfer_batch_create(sender_id=alice.pk, transfers=transfers, idempotency=key())

    assert again.value.message == error.message and "transfers[1].amount" in again.value.message
    assert again.value.headers == {"Idempotent-Replayed": "true"}
    assert Transaction.objects.filter(type="transfer").count() == 0


def test_the_key_with_another_batch_is_a_mismatch(people, usdt):
    alice, bob, _ = people
    transfer_batch_create(sender_id=alice.pk, transfers=[item(bob, usdt, "1")], idempotency=key())
    with pytest.raises(errors.IdempotencyKeyMismatch):
        transfer_batch_create(sender_id=alice.pk, transfers=[item(bob, usdt, "2")], idempotency=key(fingerprint="g"))
    assert wallet(bob, usdt).balance == 1


# --- concurrency: real threads, real PostgreSQL ----------------------------------------------------

concurrent = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def supply() -> dict[str, Decimal]:
    totals: dict[str, Decimal] = {}
    for code, amount in Wallet.objects.values_list("currency__code", "balance"):
        totals[code] = totals.get(code, Decimal(0)) + amount
    return totals


def retries_logged(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage() == "retrying transaction"]


@concurrent
def test_batches_and_single_transfers_crossing_each_other_never_deadlock(caplog):
    """A and C send batches to the other two (items in descending wallet order, both currencies) while
    single transfers run between the same wallets: every wallet is taken in ascending primary key, so
    nothing waits in a cycle and PostgreSQL never has to break a deadlock (which the ledger would retry
    and log)."""
    usdt, btc = Currency.objects.get(code="USDT"), Currency.objects.get(code="BTC")
    a, b, c = (make_user(balance=1000) for _ in range(3))  # wallets: a's < b's < c's
    for user in (a, b, c):
        deposit_create(user_id=user.pk, currency=btc, amount=Decimal(10))
    before = supply()

    def from_a():
        items = [item(c, usdt, "1"), item(b, usdt, "1"), item(c, btc, "0.01"), item(b, btc, "0.01")]
        return transfer_batch_create(sender_id=a.pk, transfers=items)

    def from_c():
        items = [item(b, btc, "0.01"), item(a, usdt, "1"), item(b, usdt, "1"), item(a, btc, "0.01")]
        return transfer_batch_create(sender_id=c.pk, transfers=items)

    tasks = []
    for _ in range(20):
        tasks += [
            from_a,
            from_c,
            lambda: transfer_create(sender_id=b.pk, recipient_id=a.pk, currency=usdt, amount=Decimal(1)),
            lambda: transfer_create(sender_id=c.pk, recipient_id=a.pk, currency=btc, amount=Decimal("0.01")),
            lambda: transfer_create(sender_id=a.pk, recipient_id=c.pk, currency=usdt, amount=Decimal(1)),
        ]

    results = run_in_threads(tasks, threads=10)

    assert [r for r in results if isinstance(r, Exception)] == []
    assert retries_logged(caplog) == [], "a deadlock (or serialization failure) was broken and retried"
    assert supply() == before
    # Per round: a -2 -1 +1 +1 +1 USDT ... (a sends 2 by batch and 1 alone, receives 1 from c's batch and 1 from b).
    assert wallet(a, usdt).balance == 1000 + 20 * (-2 + 1 + 1 - 1)
    assert wallet(b, usdt).balance == 1000 + 20 * (1 + 1 - 1)
    assert wallet(c, usdt).balance == 1000 + 20 * (1 - 2 + 1)
    assert wallet(a, btc).balance == Decimal(10) + 20 * Decimal("0.01") * (-2 + 1 + 1)
    assert wallet(c, btc).balance == Decimal(10) + 20 * Decimal("0.01") * (1 - 2 - 1)
    assert TransferBatch.objects.count() == 40
    assert [p for w in Wallet.objects.all() for p in chain_problems(w)] == []
    assert_reconciles()


@concurrent
def test_batches_draining_one_wallet_at_once_never_spend_more_than_is_available():
    usdt = Currency.objects.get(code="USDT")
    alice, bob, carol = make_user(balance=100), make_user(), make_user()
    hold_create(payer_id=alice.pk, currency=usdt, amount=Decimal(10), expires_in=600)  # 90 available

    def batch():
        return transfer_batch_create(sender_id=alice.pk, transfers=[item(bob, usdt, "10"), item(carol, usdt, "25")])

    results = run_in_threads([batch] * 8, threads=8)

    # Two fit in the 90 (70); after them 20 are left, enough for the first item of a third, not its second.
    outcomes = Counter(type(r).__name__ for r in results)
    assert outcomes == {"TransferBatchResult": 2, "InsufficientBalance": 6}, results
    assert {tuple(r.errors) for r in results if isinstance(r, errors.ApiError)} == {("transfers[1].amount",)}
    source = wallet(alice, usdt)
    assert (source.balance, source.held, source.available) == (Decimal(30), Decimal(10), Decimal(20))
    legs = BalanceHistory.objects.filter(wallet=source)
    assert all(leg.balance_after - leg.held_after >= 0 for leg in legs)
    assert (wallet(bob, usdt).balance, wallet(carol, usdt).balance) == (20, 50)
    assert [p for w in Wallet.objects.all() for p in chain_problems(w)] == []
    assert_reconciles()
