"""A wallet's entries never go back in time along its chain, however many movements race for it.

A movement is stamped before it waits for the wallet lock, so one that waited can be older than one
that committed meanwhile; the ledger stamps it again under the lock (ledger_post, held_change).
Real threads on real PostgreSQL, committing for real.
"""

import json
import random
from decimal import Decimal

import pytest

from audit.models import BalanceHistory
from audit.receipts import transaction_hash, verify
from currencies.models import Currency
from events.models import OutboxEvent
from holds.services import hold_capture, hold_create, hold_void
from tests.conftest import make_user
from tests.ledger import chain_problems, run_in_threads
from transactions import services
from transactions.events import transaction_document
from transactions.models import Transaction
from transactions.services import deposit_create, transfer_create, withdrawal_create
from wallets.models import Wallet

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

THREADS = 8
TASKS = 160


def out_of_order_entries() -> list[tuple[int, int, str, str]]:
    """(wallet, seq, created_at, previous created_at) wherever an entry is older than the one before it."""
    found = []
    previous: dict[int, tuple] = {}
    for wallet_id, seq, created_at in BalanceHistory.objects.order_by("wallet_id", "seq").values_list(
        "wallet_id", "seq", "created_at"
    ):
        before = previous.get(wallet_id)
        if before is not None and created_at < before:
            found.append((wallet_id, seq, created_at.isoformat(), before.isoformat()))
        previous[wallet_id] = created_at
    return found


def test_racing_movements_and_holds_on_one_wallet_stamp_its_chain_in_order(monkeypatch):
    usdt = Currency.objects.get(code="USDT")
    hot = make_user(balance=10_000)
    others = [make_user(balance=1_000) for _ in range(4)]
    staff = make_user(is_staff=True)
    restamped = []
    original = services._not_before_the_chains

    def observed(draft, locked):  # counts the rare path, which stays the ledger's own
        result = original(draft, locked)
        if result is not draft:
            restamped.append(result.tx.uid)
        return result

    monkeypatch.setattr(services, "_not_before_the_chains", observed)
    rng = random.Random(16)

    def task(n: int):
        kind = rng.choice(["out", "in", "hold", "deposit", "withdrawal"])
        other = rng.choice(others)
        amount = Decimal(rng.randint(1, 300)) / 100
        if kind == "out":
            return lambda: transfer_create(sender_id=hot.pk, recipient_id=other.pk, currency=usdt, amount=amount)
        if kind == "in":
            return lambda: transfer_create(sender_id=other.pk, recipient_id=hot.pk, currency=usdt, amount=amount)
        if kind == "deposit":
            return lambda: deposit_create(user_id=hot.pk, currency=usdt, amount=amount, created_by_id=staff.pk)
        if kind == "withdrawal":
            return lambda: withdrawal_create(user_id=hot.pk, currency=usdt, amount=amount, created_by_id=staff.pk)

        def hold_then_close():  # a held-only entry, then a capture (a movement) or a void (held-only again)
            hold = hold_create(payer_id=hot.pk, payee_id=other.pk, currency=usdt, amount=amount)
            if n % 2:
                return hold_capture(hold_id=hold.pk, actor=other, amount=amount / 2)
            return hold_void(hold_id=hold.pk, actor=hot)

        return hold_then_close

    results = run_in_threads([task(n) for n in range(TASKS)], threads=THREADS)

    assert [r for r in results if isinstance(r, Exception)] == []
    assert out_of_order_entries() == []
    assert restamped, "no movement waited behind a newer one: the race this test is about never happened"
    assert [p for wallet in Wallet.objects.all() for p in chain_problems(wallet)] == []
    # What covers the time was derived again: the receipt recomputes and verifies, the event says the same.
    for tx in Transaction.objects.filter(uid__in=restamped).select_related("currency", "reverses"):
        assert tx.hash == transaction_hash(
            uid=str(tx.uid), type=tx.type, from_user_id=tx.from_user_id, to_user_id=tx.to_user_id,
            currency=tx.currency.code, amount=tx.amount, memo=tx.memo, created_at=tx.created_at,
        )  # fmt: skip
        assert verify(tx.hash, tx.signature)
        event = OutboxEvent.objects.get(key=tx.hash).payload
        assert event["transaction"] == json.loads(json.dumps(transaction_document(tx, currency_code="USDT")))
        assert event["occurred_at"] == event["timestamp"] == event["transaction"]["created_at"]
        assert set(tx.history.values_list("created_at", flat=True)) == {tx.created_at}
    # A wallet's updated_at is its newest entry's time, the floor the next movement is stamped against.
    for wallet in Wallet.objects.filter(entries__gt=0):
        newest = BalanceHistory.objects.filter(wallet=wallet).order_by("-seq").values_list("created_at", flat=True)[0]
        assert wallet.updated_at == newest
