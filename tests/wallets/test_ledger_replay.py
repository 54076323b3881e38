"""Point-in-time answers and statements of random ledgers, against a replay of every entry.

Seeded random transfers, deposits, withdrawals, holds, captures, voids and reversals through the
services; then every wallet at many instants (each entry's own time, a microsecond either side,
instants taken between the steps, before the wallet existed, far in the future) and statements over
random windows, each compared with a sum over the chain's entries.
"""

import os
import random
from datetime import timedelta
from decimal import Decimal

import pytest

from currencies.models import Currency
from currencies.money import format_amount
from tests.wallets.statements import MICROSECOND, build_random_ledger, chain, iso, replay_at, replay_statement
from wallet_project.core import errors
from wallets.models import Wallet
from wallets.selectors import statement_page, wallet_at, wallet_statement

pytestmark = pytest.mark.django_db

SEED = int(os.environ.get("LEDGER_SEED", "1616"))


@pytest.fixture
def ledger(user_factory, cashier_factory):
    rng = random.Random(SEED)
    users = [user_factory(balance=200) for _ in range(4)]
    currencies = list(Currency.objects.filter(code__in=["USDT", "BTC"]))
    marks = build_random_ledger(rng, users, cashier_factory(), currencies, steps=120)
    wallets = list(Wallet.objects.filter(user__in=users, currency__in=currencies).select_related("currency"))
    return rng, wallets, marks


def instants(wallet, entries, marks):
    times = {wallet.created_at, *marks, wallet.created_at + timedelta(days=3650)}
    for entry in entries:
        times |= {entry.created_at - MICROSECOND, entry.created_at, entry.created_at + MICROSECOND}
    return sorted(t for t in times if t >= wallet.created_at)


def test_every_wallet_at_every_instant_is_its_replayed_chain(ledger):
    _, wallets, marks = ledger
    kinds = set()
    checked = 0
    for wallet in wallets:
        entries = chain(wallet)
        kinds |= {e.transaction.type if e.transaction else "hold" for e in entries}
        assert [e.created_at for e in entries] == sorted(e.created_at for e in entries), "the chain is in time order"
        for at in instants(wallet, entries, marks):
            expected = replay_at(entries, at)
            answer = wallet_at(wallet=wallet, at=at)
            assert (answer["balance"], answer["held"], answer["available"]) == (
                format_amount(expected.balance),
                format_amount(expected.held),
                format_amount(expected.balance - expected.held),
            ), (wallet.pk, at)
            assert answer["as_of"] == iso(at)
            checked += 1
        with pytest.raises(errors.WalletNotFound):
            wallet_at(wallet=wallet, at=wallet.created_at - MICROSECOND)
    # The ledger had every kind of entry, and the check covered many instants.
    assert {"transfer", "deposit", "withdrawal", "reversal", "hold"} <= kinds
    assert checked > 1000


def test_every_statement_over_random_windows_is_its_replayed_chain(ledger):
    rng, wallets, marks = ledger
    with_holds = with_reversals = 0
    for wallet in wallets:
        entries = chain(wallet)
        times = instants(wallet, entries, marks)
        windows = [(times[0], times[-1])] + [tuple(sorted(rng.sample(times, 2))) for _ in range(25)]
        for start, end in windows:
            statement = wallet_statement(wallet=wallet, start=start, end=end)
            expected = replay_statement(entries, start, end)
            assert (statement.opening.balance, statement.closing.balance) == (expected.opening, expected.closing)
            assert (statement.total_in, statement.total_out) == (expected.total_in, expected.total_out)
            assert statement.opening.balance + statement.total_in - statement.total_out == statement.closing.balance
            assert statement.count == len(expected.transaction_ids)
            rows, pagination = statement_page(statement, page=1, page_size=100)
            assert [row.transaction_id for row in rows] == expected.transaction_ids[:100]
            assert pagination["total"] == statement.count
            in_window = [e for e in entries if start <= e.created_at < end]
            with_holds += any(e.transaction_id is None for e in in_window)
            with_reversals += any(e.transaction and e.transaction.type == "reversal" for e in in_window)
    assert with_holds and with_reversals, "some windows must hold hold-only entries and reversals"


def test_statement_pages_and_cursors_walk_the_same_entries(ledger, client_for):
    _, wallets, _ = ledger
    wallet = max(wallets, key=lambda w: w.postings)
    owner = wallet.user
    client = client_for(owner)
    end = wallet.updated_at + MICROSECOND
    window = {"currency": wallet.currency.code, "from": iso(wallet.created_at), "to": iso(end)}
    expected = replay_statement(chain(wallet), wallet.created_at, end).transaction_ids
    assert len(expected) > 7

    paged, page = [], 1
    while True:
        body = client.get(f"/wallet/{owner.pk}/statement", {**window, "page": page, "page_size": 7}).json()
        paged += [entry["id"] for entry in body["data"]]
        if page >= body["pagination"]["total_pages"]:
            break
        page += 1
    walked, cursor = [], None
    while True:
        query = {**window, "limit": 7, **({"cursor": cursor} if cursor else {})}
        body = client.get(f"/wallet/{owner.pk}/statement", query).json()
        walked += [entry["id"] for entry in body["data"]]
        assert body["count"] == len(expected)
        if not body["pagination"]["has_more"]:
            assert body["pagination"]["next_cursor"] is None
            break
        cursor = body["pagination"]["next_cursor"]
    assert paged == walked == expected
    assert Decimal(body["opening_balance"]) + Decimal(body["total_in"]) - Decimal(body["total_out"]) == Decimal(
        body["closing_balance"]
    )
