"""Real threads against real PostgreSQL: money is never created or lost, nothing deadlocks.

Every test here commits for real (``transaction=True``); each worker thread has its own database
connection and closes it when done (``tests.ledger.run_in_threads``).
"""

import logging
import os
import random
import threading
import time
from collections import Counter
from decimal import Decimal

import pytest
from django.db import transaction
from django.db.models import Sum
from rest_framework.test import APIClient

from accounts.services import _issue_tokens
from audit.models import BalanceHistory
from currencies.models import Currency
from events.models import OutboxEvent
from tests.conftest import make_user
from tests.ledger import chain_problems, run_in_threads
from transactions.models import Transaction
from transactions.services import deposit_create, transfer_create
from wallets.models import Wallet

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

logger = logging.getLogger(__name__)


def client_for(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {_issue_tokens(user).access}")
    return client


def post_transfer(token_client: APIClient, body: dict, **headers):
    """Build a fresh client per call (a test client is not meant to be shared across threads)."""
    client = APIClient()
    client.credentials(**token_client._credentials)
    response = client.post("/wallet/transfer", body, format="json", **headers)
    return response.status_code, response.json(), response.get("Idempotent-Replayed")


def supply(code: str) -> Decimal:
    return Wallet.objects.filter(currency__code=code).aggregate(total=Sum("balance"))["total"] or Decimal(0)


def retries_logged(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage() == "retrying transaction"]


def assert_every_chain_sound():
    problems = [p for wallet in Wallet.objects.all() for p in chain_problems(wallet)]
    assert problems == []


def test_random_concurrent_transfers_conserve_every_currency(caplog):
    seed = int(os.environ.get("CONCURRENCY_SEED") or random.randrange(2**32))
    logger.warning("random transfer seed %s (rerun with CONCURRENCY_SEED=%s)", seed, seed)
    rng = random.Random(seed)
    usdt, btc = Currency.objects.get(code="USDT"), Currency.objects.get(code="BTC")
    users = [make_user(balance=100) for _ in range(10)]
    for user in users:
        deposit_create(user_id=user.pk, currency=btc, amount=Decimal("1"))
    clients = {user.pk: client_for(user) for user in users}
    supply_before = {"USDT": supply("USDT"), "BTC": supply("BTC")}
    transactions_before = Transaction.objects.count()

    def random_transfer():
        sender, recipient = rng.sample(users, 2)
        currency, places = rng.choice([(usdt, 6), (btc, 8)])
        amount = Decimal(rng.randint(1, 4 * 10**places)) / 10**places  # up to 40 USDT / 0.4 BTC
        body = {"to_user_id": recipient.pk, "currency": currency.code, "amount": str(amount)}
        return lambda: post_transfer(clients[sender.pk], body)

    results = run_in_threads([random_transfer() for _ in range(160)], threads=8)

    assert not [r for r in results if isinstance(r, Exception)], f"seed {seed}"
    outcomes = Counter(status if status == 200 else body["code"] for status, body, _ in results)
    assert set(outcomes) <= {200, "INSUFFICIENT_BALANCE"}, f"seed {seed}: {outcomes}"
    assert outcomes[200] > 60, f"seed {seed}: {outcomes}"
    assert {"USDT": supply("USDT"), "BTC": supply("BTC")} == supply_before, f"seed {seed}"
    assert not Wallet.objects.filter(balance__lt=0).exists()
    assert Transaction.objects.count() == transactions_before + outcomes[200]
    assert BalanceHistory.objects.filter(transaction__type="transfer").count() == 2 * outcomes[200]
    assert OutboxEvent.objects.count() == Transaction.objects.count()
    assert_every_chain_sound()
    assert retries_logged(caplog) == [], "a deadlock or serialization failure happened (and was retried)"


def test_opposite_transfers_at_the_same_time_never_deadlock(caplog):
    alice, bob = make_user(balance=1000), make_user(balance=1000)
    to_bob, to_alice = client_for(alice), client_for(bob)
    tasks = []
    for _ in range(40):
        tasks.append(lambda: post_transfer(to_bob, {"to_user_id": bob.pk, "amount": "3"}))
        tasks.append(lambda: post_transfer(to_alice, {"to_user_id": alice.pk, "amount": "2"}))

    results = run_in_threads(tasks, threads=8)

    assert [r for r in results if isinstance(r, Exception) or r[0] != 200] == []
    balances = dict(Wallet.objects.filter(currency__code="USDT").values_list("user_id", "balance"))
    assert balances == {alice.pk: Decimal(1000 - 120 + 80), bob.pk: Decimal(1000 + 120 - 80)}
    assert_every_chain_sound()
    assert retries_logged(caplog) == []


def test_a_wallet_with_exactly_100_survives_200_concurrent_transfers_of_1():
    payer = make_user(balance=100)
    payees = [make_user() for _ in range(4)]
    client = client_for(payer)
    tasks = [
        (lambda payee=payee: post_transfer(client, {"to_user_id": payee.pk, "amount": "1"})) for payee in payees * 50
    ]

    results = run_in_threads(tasks, threads=16)

    assert not [r for r in results if isinstance(r, Exception)]
    outcomes = Counter(status if status == 200 else body["code"] for status, body, _ in results)
    assert outcomes == {200: 100, "INSUFFICIENT_BALANCE": 100}
    assert Wallet.objects.get(user=payer, currency__code="USDT").balance == 0
    received = Wallet.objects.filter(user__in=payees, currency__code="USDT").aggregate(t=Sum("balance"))["t"]
    assert received == 100
    assert_every_chain_sound()


def test_one_idempotency_key_sent_by_20_threads_at_once_moves_money_once():
    alice, bob = make_user(balance=100), make_user()
    client = client_for(alice)
    body = {"to_user_id": bob.pk, "amount": "7", "memo": "once"}

    results = run_in_threads(
        [lambda: post_transfer(client, body, HTTP_IDEMPOTENCY_KEY="pay-bob-once")] * 20, threads=20
    )

    assert not [r for r in results if isinstance(r, Exception)]
    originals = [b for status, b, replayed in results if status == 200 and replayed is None]
    replays = [b for status, b, replayed in results if status == 200 and replayed == "true"]
    in_use = [b for status, b, _ in results if status == 409]
    assert len(originals) == 1
    assert len(originals) + len(replays) + len(in_use) == 20
    assert all(b == originals[0] for b in replays)
    assert all(b["code"] == "IDEMPOTENCY_KEY_IN_USE" for b in in_use)
    assert Transaction.objects.filter(type="transfer").count() == 1
    assert Wallet.objects.get(user=bob, currency__code="USDT").balance == 7
    assert Wallet.objects.get(user=alice, currency__code="USDT").balance == 93


# --- why the lock is there -------------------------------------------------------------------------


def wallet_id(user) -> int:
    return Wallet.objects.get(user=user, currency__code="USDT").pk


def test_demonstration_without_the_row_lock_concurrent_transfers_create_money():
    """The hazard the service's SELECT ... FOR UPDATE prevents, reproduced with plain ORM code.

    Two transfers out of the same wallet both read its balance before either writes; each writes
    "what I read minus my amount", so one debit is lost while both credits land.
    """
    payer, bob, carol = make_user(balance=100), make_user(), make_user()
    both_read = threading.Barrier(2)

    def unlocked_transfer(recipient) -> None:
        with transaction.atomic():
            source = Wallet.objects.get(pk=wallet_id(payer))  # no select_for_update
            target = Wallet.objects.get(pk=wallet_id(recipient))
            both_read.wait(timeout=10)
            time.sleep(0.05)
            Wallet.objects.filter(pk=source.pk).update(balance=source.balance - 10)
            Wallet.objects.filter(pk=target.pk).update(balance=target.balance + 10)

    run_in_threads([lambda: unlocked_transfer(bob), lambda: unlocked_transfer(carol)], threads=2)

    assert Wallet.objects.get(pk=wallet_id(payer)).balance == 90  # debited once, not twice
    assert supply("USDT") == 110  # 10 USDT created out of thin air


def test_the_locked_service_path_conserves_money_in_the_same_race():
    payer, bob, carol = make_user(balance=100), make_user(), make_user()
    usdt = Currency.objects.get(code="USDT")
    held = threading.Event()
    waited = []

    def hold_the_payer_wallet() -> None:
        # Keeps both transfers in flight at the same moment, as the barrier did above.
        with transaction.atomic():
            Wallet.objects.select_for_update().get(pk=wallet_id(payer))
            held.set()
            time.sleep(0.3)

    def locked_transfer(recipient) -> None:
        assert held.wait(timeout=10)
        started = time.monotonic()
        transfer_create(sender_id=payer.pk, recipient_id=recipient.pk, currency=usdt, amount=Decimal(10))
        waited.append(time.monotonic() - started)

    results = run_in_threads(
        [hold_the_payer_wallet, lambda: locked_transfer(bob), lambda: locked_transfer(carol)], threads=3
    )

    assert results == [None, None, None]
    assert min(waited) > 0.15, "both transfers should have queued behind the held row lock"
    assert Wallet.objects.get(pk=wallet_id(payer)).balance == 80
    assert supply("USDT") == 100
    assert_every_chain_sound()
