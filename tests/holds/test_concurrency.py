"""Holds and withdrawal requests raced by real threads on PostgreSQL: one outcome wins, nothing is lost.

Every test commits for real (``transaction=True``); each worker thread has its own database connection
(``tests.ledger.run_in_threads``, which starts them together at a barrier and joins them with a
timeout). Every test ends with the ledger proven sound: ``reconcile()``, every involved wallet's hash
chain, and each wallet's ``held`` equal to what its active holds have left. A deadlock or a
serialization failure is a failure here even when ``run_in_transaction`` retried it away: the retry is
logged, and each test asserts that nothing was.
"""

import logging
import os
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from functools import partial
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db import IntegrityError, connection, transaction
from django.db.models import Sum
from django.utils import timezone

from audit.models import BalanceHistory
from audit.reconcile import reconcile
from currencies.models import Currency
from events.models import OutboxEvent
from holds.models import Hold, HoldCapture, WithdrawalRequest
from holds.services import (
    hold_capture,
    hold_create,
    hold_void,
    holds_expire_due,
    holds_release_expired,
    withdrawal_request_approve,
    withdrawal_request_cancel,
    withdrawal_request_create,
    withdrawal_request_reject,
)
from tests.conftest import make_user
from tests.ledger import chain_problems, run_in_threads
from transactions.models import Transaction
from transactions.services import held_change, transfer_create
from wallet_project.core import errors
from wallets.models import Wallet

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

logger = logging.getLogger(__name__)
User = get_user_model()
ZERO = Decimal(0)


@pytest.fixture
def rng() -> random.Random:
    seed = int(os.environ.get("CONCURRENCY_SEED") or random.randrange(2**32))
    logger.warning("holds race seed %s (rerun with CONCURRENCY_SEED=%s)", seed, seed)
    return random.Random(seed)


@pytest.fixture
def usdt(transactional_db) -> Currency:
    return Currency.objects.get(code="USDT")


def wallet(user) -> Wallet:
    return Wallet.objects.get(user=user, currency__code="USDT")


def approver():
    staff = make_user(is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="approve_withdrawalrequest"))
    return User.objects.get(pk=staff.pk)  # without the permission cache of the instance above


def held_by_active_holds(w: Wallet) -> Decimal:
    return sum((h.remaining for h in Hold.objects.filter(wallet=w, status=Hold.Status.ACTIVE)), ZERO)


def assert_ledger_sound(*users) -> None:
    for user in users:
        w = wallet(user)
        assert chain_problems(w) == [], f"user {user.pk}"
        assert w.held == held_by_active_holds(w), f"user {user.pk}: held {w.held}"
        assert ZERO <= w.held <= w.balance
    report = reconcile()
    assert report.ok, report.as_dict()


def retries(caplog) -> list[Any]:
    """Deadlocks (40P01) and serialization failures (40001) that ``run_in_transaction`` retried."""
    return [getattr(r, "sqlstate", "?") for r in caplog.records if r.getMessage() == "retrying transaction"]


def unexpected(results: list[Any], *allowed: type[Exception]) -> list[Any]:
    """Exceptions other than the refusals ``allowed``: a deadlock, an IntegrityError, anything else."""
    return [r for r in results if isinstance(r, BaseException) and not isinstance(r, allowed)]


def hold_entries(hold: Hold) -> list[Decimal]:
    """The changes of ``held`` recorded for the hold (placed, captured, released), in order."""
    return list(BalanceHistory.objects.filter(hold_uid=hold.uid).order_by("id").values_list("held_delta", flat=True))


def releases(hold: Hold) -> list[Decimal]:
    """What was released of the hold (void, expiry): its held-only entries that lower ``held``."""
    return list(
        BalanceHistory.objects.filter(hold_uid=hold.uid, transaction__isnull=True, held_delta__lt=0)
        .order_by("id")
        .values_list("held_delta", flat=True)
    )


def hold_events(hold: Hold) -> Counter:
    return Counter(
        OutboxEvent.objects.filter(topic="wallet.events", key=str(hold.pk)).values_list(
            "payload__event_type", flat=True
        )
    )


def sleep_until(moment) -> None:
    delay = (moment - timezone.now()).total_seconds()
    if delay > 0:
        time.sleep(delay)


def at(moment, fn: Callable[..., Any], **kwargs: Any) -> Callable[[], Any]:
    """A task: ``fn(**kwargs)`` once ``moment`` has come (the threads start together, then wait for it)."""

    def run() -> Any:
        sleep_until(moment)
        return fn(**kwargs)

    return run


# -- 1. capture vs void vs expiry of one hold ---------------------------------------------------------


def expire_until(*, deadline, wallet_id: int | None) -> int:
    """Expire until something is released, or until ``deadline`` has passed with nothing left due: the
    sweeper (``holds_expire_due``) or, with ``wallet_id``, a spend's lazy release under the wallet lock.

    Both skip a hold another transaction has locked (a capture or a void, even one about to refuse
    because the hold has expired): such a hold is released by the next try, as by the next sweep."""
    give_up = time.monotonic() + 15
    while time.monotonic() < give_up:
        if wallet_id is None:
            released = holds_expire_due()
        else:
            with transaction.atomic():
                Wallet.objects.select_for_update(of=("self",)).get(pk=wallet_id)
                released = int(holds_release_expired(wallet_id))
        now = timezone.now()
        if released or (now > deadline and not Hold.objects.filter(status="active", expires_at__lte=now).exists()):
            return released
        time.sleep(0.002)
    raise AssertionError("an expired hold was never released")


def test_capture_void_and_expiry_race_for_one_hold_and_exactly_one_wins(caplog, usdt, rng):
    alice, bob = make_user(balance=1000), make_user()
    alice_wallet = wallet(alice)
    rounds, winners, amount = 24, Counter(), Decimal(10)
    by_kind: dict[int, Counter] = {0: Counter(), 1: Counter(), 2: Counter()}
    for round_ in range(rounds):
        hold = hold_create(payer_id=alice.pk, payee_id=bob.pk, currency=usdt, amount=amount, expires_in=60)
        race_at = timezone.now() + timedelta(milliseconds=40)
        kind = round_ % 3
        if kind == 0:  # capture against void (expiry is an hour away: the sweeper finds nothing)
            expires_at, deadline = race_at + timedelta(hours=1), race_at + timedelta(milliseconds=30)
        elif kind == 1:  # at the stroke of expiry
            expires_at = race_at + timedelta(microseconds=rng.randint(-5000, 25000))
            deadline = max(expires_at, race_at) + timedelta(milliseconds=50)
        else:  # expired a moment before: capture and void must refuse whether or not the release ran yet
            expires_at = race_at - timedelta(milliseconds=1)
            deadline = race_at + timedelta(milliseconds=50)
        Hold.objects.filter(pk=hold.pk).update(expires_at=expires_at)
        lazily = round_ % 2 == 1  # odd rounds: a spend's release under the wallet lock; even: the sweeper

        capture, void, expire = run_in_threads(
            [
                at(race_at, hold_capture, hold_id=hold.pk, actor=bob),
                at(race_at, hold_void, hold_id=hold.pk, actor=alice),
                at(race_at, expire_until, deadline=deadline, wallet_id=alice_wallet.pk if lazily else None),
            ],
            threads=3,
            timeout=20,
        )

        assert unexpected([capture, void, expire], errors.HoldNotActive) == [], f"round {round_}"
        hold.refresh_from_db()
        won = {
            "captured": not isinstance(capture, Exception),
            "voided": not isinstance(void, Exception),
            "expired": expire == 1,
        }
        assert sum(won.values()) == 1, f"round {round_}: {won}, hold {hold.status}"
        assert won[hold.status], f"round {round_}: hold is {hold.status}, {won}"
        winners[hold.status] += 1
        by_kind[kind][hold.status] += 1
        assert hold_entries(hold) == [amount, -amount], f"round {round_}"
        expected_event = {"captured": "hold.captured", "voided": "hold.voided", "expired": "hold.expired"}
        assert hold_events(hold) == Counter(["hold.created", expected_event[hold.status]]), f"round {round_}"
        if kind == 2:
            assert hold.status == "expired"
        if kind == 0:
            assert hold.status in ("captured", "voided")

    logger.warning("capture/void/expiry winners over %s rounds: %s", rounds, {k: dict(c) for k, c in by_kind.items()})
    captured = amount * winners["captured"]
    assert wallet(bob).balance == captured
    assert (wallet(alice).balance, wallet(alice).held) == (1000 - captured, ZERO)
    assert Transaction.objects.filter(type="transfer").count() == winners["captured"]
    assert HoldCapture.objects.count() == winners["captured"]
    assert_ledger_sound(alice, bob)
    assert retries(caplog) == [], "a deadlock or serialization failure happened (and was retried)"


# -- 2. many partial captures of one hold ------------------------------------------------------------


def test_50_concurrent_partial_captures_of_1_on_a_hold_of_30_capture_exactly_30(caplog, usdt):
    alice, bob = make_user(balance=100), make_user()
    hold = hold_create(payer_id=alice.pk, payee_id=bob.pk, currency=usdt, amount=Decimal(30))

    results = run_in_threads(
        [lambda: hold_capture(hold_id=hold.pk, actor=bob, amount=Decimal(1))] * 50, threads=10, timeout=30
    )

    assert unexpected(results, errors.AmountExceedsHold, errors.HoldNotActive) == []
    captured = [r for r in results if isinstance(r, tuple)]
    refused = Counter(r.code for r in results if isinstance(r, errors.ApiError))
    assert len(captured) == 30
    assert sum(refused.values()) == 20 and set(refused) <= {"AMOUNT_EXCEEDS_HOLD", "HOLD_NOT_ACTIVE"}
    assert len({tx.pk for _, tx in captured}) == 30
    hold.refresh_from_db()
    assert (hold.status, hold.captured, hold.remaining) == ("captured", Decimal(30), ZERO)
    assert wallet(bob).balance == 30
    assert (wallet(alice).balance, wallet(alice).held) == (Decimal(70), ZERO)
    assert HoldCapture.objects.filter(hold=hold).aggregate(t=Sum("amount"))["t"] == 30
    assert hold_entries(hold) == [Decimal(30)] + [Decimal(-1)] * 30
    assert hold_events(hold) == Counter({"hold.created": 1, "hold.captured": 30})
    assert_ledger_sound(alice, bob)
    assert retries(caplog) == []


# -- 3. transfers and new holds on one wallet --------------------------------------------------------


@pytest.mark.parametrize("expired_held", [0, 40], ids=["nothing-held", "40-held-by-expired-holds"])
def test_transfers_and_new_holds_racing_on_one_wallet_never_spend_more_than_it_has(caplog, usdt, rng, expired_held):
    """With ``expired_held``, 40 of the 100 are held by holds already past their expiry that no sweeper
    has released: transfers and new holds alike release them when they need the money (under the
    wallet lock), so all 100 can still be spent, and each of those holds is released once."""
    alice, bob = make_user(balance=100), make_user()
    alice_wallet = wallet(alice)
    five = Decimal(5)
    stale = [
        hold_create(payer_id=alice.pk, payee_id=bob.pk, currency=usdt, amount=Decimal(10))
        for _ in range(expired_held // 10)
    ]
    Hold.objects.filter(pk__in=[h.pk for h in stale]).update(expires_at=timezone.now() - timedelta(seconds=1))
    kinds = ["transfer", "hold"] * 20
    rng.shuffle(kinds)
    done = threading.Event()
    finished = Counter()
    finished_lock = threading.Lock()
    lowest: list[Decimal] = []

    def task(kind: str) -> Callable[[], Any]:
        def run() -> Any:
            try:
                if kind == "transfer":
                    return transfer_create(sender_id=alice.pk, recipient_id=bob.pk, currency=usdt, amount=five)
                return hold_create(payer_id=alice.pk, payee_id=bob.pk, currency=usdt, amount=five)
            finally:
                with finished_lock:
                    finished["n"] += 1
                    if finished["n"] == len(kinds):
                        done.set()

        return run

    def watch() -> None:
        """Reads the wallet over and over while the others race: available never goes below zero."""
        give_up = time.monotonic() + 30
        while not done.is_set() and time.monotonic() < give_up:
            balance, held = Wallet.objects.values_list("balance", "held").get(pk=alice_wallet.pk)
            lowest.append(balance - held)
            time.sleep(0.001)

    results = run_in_threads([watch, *(task(kind) for kind in kinds)], threads=9, timeout=40)

    outcomes = results[1:]
    assert unexpected(outcomes, errors.InsufficientBalance) == [], "a refusal must be INSUFFICIENT_BALANCE"
    assert not any(isinstance(r, IntegrityError) for r in outcomes)
    transfers = [r for r in outcomes if isinstance(r, Transaction)]
    holds = [r for r in outcomes if isinstance(r, Hold)]
    refused = [r for r in outcomes if isinstance(r, errors.InsufficientBalance)]
    assert {r.code for r in refused} <= {"INSUFFICIENT_BALANCE"}
    assert (len(transfers) + len(holds)) * five <= 100
    assert len(transfers) + len(holds) == 20  # each success takes 5 of exactly 100; a refusal only at 0
    assert lowest and min(lowest) >= 0
    w = wallet(alice)
    assert (w.balance, w.held, w.available) == (100 - five * len(transfers), five * len(holds), ZERO)
    assert wallet(bob).balance == five * len(transfers)
    assert Hold.objects.filter(wallet=w, status="active").count() == len(holds)
    for hold in stale:
        hold.refresh_from_db()
        assert hold.status == "expired" and releases(hold) == [Decimal(-10)]
        assert hold_events(hold) == Counter({"hold.created": 1, "hold.expired": 1})
    assert_ledger_sound(alice, bob)
    assert retries(caplog) == [], "a deadlock or serialization failure happened (and was retried)"


# -- 4. withdrawal requests decided at once ----------------------------------------------------------


def test_ten_staff_approving_one_withdrawal_request_at_once_make_one_withdrawal(caplog, usdt):
    alice = make_user(balance=100)
    staff = [approver() for _ in range(10)]
    request = withdrawal_request_create(user_id=alice.pk, currency=usdt, amount=Decimal(60), address="0xabc")

    results = run_in_threads(
        [(lambda s=s: withdrawal_request_approve(request_id=request.pk, actor=s)) for s in staff],
        threads=10,
        timeout=30,
    )

    assert unexpected(results, errors.WithdrawalRequestNotPending) == []
    approved = [r for r in results if isinstance(r, WithdrawalRequest)]
    assert len(approved) == 1
    assert [r.code for r in results if isinstance(r, errors.ApiError)] == ["WITHDRAWAL_REQUEST_NOT_PENDING"] * 9
    request.refresh_from_db()
    assert request.status == "completed" and request.transaction_id == approved[0].transaction.pk
    assert Transaction.objects.filter(type="withdrawal").count() == 1
    assert (wallet(alice).balance, wallet(alice).held) == (Decimal(40), ZERO)
    decisions = OutboxEvent.objects.filter(topic="wallet.events", key=str(request.pk))
    assert sorted(decisions.values_list("payload__event_type", flat=True)) == [
        "withdrawal.approved", "withdrawal.requested"
    ]  # fmt: skip
    assert_ledger_sound(alice, *staff)
    assert retries(caplog) == []


def test_approve_reject_and_cancel_racing_on_one_request_leave_exactly_one_final_status(caplog, usdt):
    alice = make_user(balance=1000)
    staff = [approver() for _ in range(4)]
    amount, rounds, finals = Decimal(10), 15, Counter()
    for round_ in range(rounds):
        request = withdrawal_request_create(user_id=alice.pk, currency=usdt, amount=amount, address="0xabc")
        owner = User.objects.get(pk=alice.pk)
        tasks: list[tuple[str, Callable[[], Any]]] = [
            ("completed", partial(withdrawal_request_approve, request_id=request.pk, actor=staff[0])),
            ("completed", partial(withdrawal_request_approve, request_id=request.pk, actor=staff[1])),
            ("rejected", partial(withdrawal_request_reject, request_id=request.pk, actor=staff[2], reason="no")),
            ("rejected", partial(withdrawal_request_reject, request_id=request.pk, actor=staff[3], reason="no")),
            ("cancelled", partial(withdrawal_request_cancel, request_id=request.pk, actor=owner)),
            ("cancelled", partial(withdrawal_request_cancel, request_id=request.pk, actor=owner)),
        ]
        order = list(range(len(tasks)))
        random.Random(round_).shuffle(order)

        results = run_in_threads([tasks[i][1] for i in order], threads=6, timeout=20)

        assert unexpected(results, errors.WithdrawalRequestNotPending) == [], f"round {round_}"
        won = [tasks[i][0] for i, r in zip(order, results, strict=True) if isinstance(r, WithdrawalRequest)]
        assert len(won) == 1, f"round {round_}: {won}"
        request.refresh_from_db()
        assert request.status == won[0]
        assert (request.transaction_id is not None) == (request.status == "completed")
        hold = Hold.objects.get(pk=request.hold_id)
        assert hold.status == ("captured" if request.status == "completed" else "voided")
        assert hold_entries(hold) == [amount, -amount]
        finals[request.status] += 1
        events = OutboxEvent.objects.filter(topic="wallet.events", key=str(request.pk))
        assert events.count() == 2, f"round {round_}: one withdrawal.requested and one decision"

    logger.warning("approve/reject/cancel winners over %s rounds: %s", rounds, dict(finals))
    assert Transaction.objects.filter(type="withdrawal").count() == finals["completed"]
    assert (wallet(alice).balance, wallet(alice).held) == (1000 - amount * finals["completed"], ZERO)
    assert WithdrawalRequest.objects.filter(status="pending").count() == 0
    assert_ledger_sound(alice, *staff)
    assert retries(caplog) == []


# -- 5. sweepers running while many holds are captured -----------------------------------------------


def test_sweepers_expiring_holds_during_their_captures_lose_and_double_nothing(caplog, usdt, rng):
    payers = [make_user(balance=100) for _ in range(4)]
    payees = [make_user() for _ in range(4)]
    holds = []
    for payer in payers:
        for _ in range(10):
            payee = rng.choice(payees)
            holds.append(hold_create(payer_id=payer.pk, payee_id=payee.pk, currency=usdt, amount=Decimal(10)))
    rng.shuffle(holds)
    payee_of = {hold.pk: User.objects.get(pk=hold.payee_id) for hold in holds}

    # A schedule that does not depend on how fast the machine is, set once the threads have started:
    # hold i is captured in two parts (4, then 6) about 25*i ms after the start, and falls due 0-200 ms
    # after that moment: some expire before a capture, some between the two, some after both.
    def ms(low: int, high: int) -> timedelta:
        return timedelta(microseconds=rng.randint(low * 1000, high * 1000))

    offsets = {hold.pk: (timedelta(milliseconds=25 * i), ms(0, 200)) for i, hold in enumerate(holds)}
    captures = sorted(
        [(offsets[hold.pk][0] + ms(-10, 10), hold, Decimal(4)) for hold in holds]
        + [(offsets[hold.pk][0] + ms(10, 60), hold, Decimal(6)) for hold in holds],
        key=lambda c: c[0],
    )
    scheduled = threading.Event()
    schedule: dict[str, Any] = {}

    def kick_off() -> None:
        start = timezone.now() + timedelta(milliseconds=50)
        for hold in holds:
            hold.expires_at = start + sum(offsets[hold.pk], timedelta())
        Hold.objects.bulk_update(holds, ["expires_at"])
        schedule.update(start=start, last_due=max(hold.expires_at for hold in holds))
        scheduled.set()

    captures_done = threading.Event()
    pending = Counter(n=len(captures))
    pending_lock = threading.Lock()

    def capture(offset: timedelta, hold: Hold, part: Decimal) -> Callable[[], Any]:
        def run() -> Any:
            try:
                assert scheduled.wait(timeout=20)
                moment = schedule["start"] + offset
                sleep_until(moment)
                return hold_capture(hold_id=hold.pk, actor=payee_of[hold.pk], amount=part)
            finally:
                with pending_lock:
                    pending["n"] -= 1
                    if pending["n"] == 0:
                        captures_done.set()

        return run

    def sweeper() -> int:
        """``expire_holds`` in a loop until the captures are over and nothing is left to expire."""
        released, give_up = 0, time.monotonic() + 40
        assert scheduled.wait(timeout=20)
        while time.monotonic() < give_up:
            released += holds_expire_due(limit=5)
            if (
                captures_done.is_set()
                and timezone.now() > schedule["last_due"]
                and not Hold.objects.filter(status="active", expires_at__lte=timezone.now()).exists()
            ):
                return released
            time.sleep(0.003)
        raise AssertionError("the sweeper gave up")

    results = run_in_threads(
        [kick_off, sweeper, sweeper, sweeper, *(capture(*c) for c in captures)], threads=8, timeout=60
    )

    assert results[0] is None
    swept, captured = results[1:4], results[4:]
    assert unexpected(swept) == []
    assert unexpected(captured, errors.HoldNotActive, errors.AmountExceedsHold) == []
    statuses = Counter()
    for hold in holds:
        hold.refresh_from_db()
        statuses[hold.status] += 1
        assert hold.status in ("captured", "expired"), f"hold {hold.pk} is {hold.status}"
        taken = HoldCapture.objects.filter(hold=hold).aggregate(t=Sum("amount"))["t"] or ZERO
        assert taken == hold.captured
        released = releases(hold)
        assert taken - sum(released) == hold.amount, f"hold {hold.pk}: captured {taken}, released {released}"
        assert len(released) == (1 if hold.status == "expired" else 0), f"hold {hold.pk}: released {released}"
        assert hold_entries(hold)[0] == hold.amount and sum(hold_entries(hold)) == 0
        events = hold_events(hold)
        assert events["hold.expired"] == (1 if hold.status == "expired" else 0), f"hold {hold.pk}: {events}"
        assert events["hold.captured"] == HoldCapture.objects.filter(hold=hold).count()
        assert events["hold.created"] == 1 and events["hold.voided"] == 0
    assert sum(swept) == statuses["expired"], "each expired hold released by exactly one sweeper"
    successes = [r for r in captured if isinstance(r, tuple)]
    assert len(successes) == HoldCapture.objects.count()
    midway = Hold.objects.filter(pk__in=[h.pk for h in holds], status="expired", captured__gt=0).count()
    logger.warning("holds: %s (%s expired after a capture); %s captures succeeded; sweepers released %s",
                   dict(statuses), midway, len(successes), swept)  # fmt: skip
    total_captured = HoldCapture.objects.aggregate(t=Sum("amount"))["t"] or ZERO
    assert sum(wallet(p).balance for p in payees) == total_captured
    assert sum(wallet(p).balance for p in payers) == 400 - total_captured
    assert all(wallet(p).held == 0 for p in payers)
    assert_ledger_sound(*payers, *payees)
    assert retries(caplog) == [], "a deadlock or serialization failure happened (and was retried)"


# -- 6. a spend's lazy release racing a capture ------------------------------------------------------


def test_a_spend_releasing_expired_holds_races_their_captures_without_deadlock_or_double_release(caplog, usdt, rng):
    rounds, quarter = 8, Decimal(25)
    outcomes = Counter()
    everyone = []
    for round_ in range(rounds):
        alice, bob, carol = make_user(balance=100), make_user(), make_user()
        everyone += [alice, bob, carol]
        holds = [hold_create(payer_id=alice.pk, payee_id=bob.pk, currency=usdt, amount=quarter) for _ in range(4)]
        race_at = timezone.now() + timedelta(milliseconds=40)

        def ms(low: int, high: int) -> timedelta:
            return timedelta(microseconds=rng.randint(low * 1000, high * 1000))

        # All of alice's balance is held. The two holds bob captures fall due just after the race starts
        # (within 10 ms in even rounds, 60 in odd ones), the other two just before it: a spend needing
        # more than is available releases them (or skips one a capture has locked).
        spread = 10 if round_ % 2 == 0 else 60
        for hold, expires_at in zip(holds, [race_at + ms(0, spread), race_at + ms(0, spread), race_at - ms(0, 5),
                                            race_at - ms(0, 5)], strict=True):  # fmt: skip
            Hold.objects.filter(pk=hold.pk).update(expires_at=expires_at)

        spend = {"sender_id": alice.pk, "recipient_id": carol.pk, "currency": usdt, "amount": Decimal(30)}
        tasks = [
            at(race_at, transfer_create, **spend),
            at(race_at, hold_capture, hold_id=holds[0].pk, actor=bob),
            at(race_at + ms(0, spread), hold_capture, hold_id=holds[1].pk, actor=bob),
            at(race_at + ms(0, spread), transfer_create, **spend),
        ]
        results = run_in_threads(tasks, threads=4, timeout=20)  # a deadlock fails here: "a worker thread hung"

        assert unexpected(results, errors.HoldNotActive, errors.InsufficientBalance) == [], f"round {round_}"
        for hold in holds:
            hold.refresh_from_db()
            entries = hold_entries(hold)
            assert entries[0] == quarter and len(releases(hold)) <= 1, f"round {round_}: hold {hold.pk} {entries}"
            if hold.status == "active":  # skipped while a capture had it locked: still held, expired by the clock
                assert sum(entries) == quarter and hold.captured == 0
            else:
                assert hold.status in ("captured", "expired") and sum(entries) == 0
            assert hold_events(hold)["hold.expired"] == (1 if hold.status == "expired" else 0)
        moved = Transaction.objects.filter(from_user_id=alice.pk, to_user_id=carol.pk).count()
        captured = Hold.objects.filter(pk__in=[h.pk for h in holds], status="captured").count()
        assert moved == sum(isinstance(r, Transaction) for r in results)
        assert captured == sum(isinstance(r, tuple) for r in results)
        assert wallet(carol).balance == 30 * moved and wallet(bob).balance == quarter * captured
        assert wallet(alice).balance == 100 - 30 * moved - quarter * captured
        skipped = Hold.objects.filter(pk__in=[h.pk for h in holds], status="active").count()
        outcomes[(moved, captured, skipped)] += 1
        for user in (alice, bob, carol):
            assert chain_problems(wallet(user)) == [] and wallet(user).held == held_by_active_holds(wallet(user))

    logger.warning("(transfers, captures, holds left active) per round: %s", dict(outcomes))
    holds_expire_due()
    assert not Hold.objects.filter(status="active").exists()
    assert_ledger_sound(*everyone)
    assert retries(caplog) == [], "a deadlock or serialization failure happened (and was retried)"


# -- 7. a change of held locks its wallet, nothing every other movement needs -------------------------


def test_a_change_of_held_on_one_wallet_does_not_stall_a_transfer_between_two_others(usdt):
    """``held_change`` runs inside the caller's transaction (a hold placed, voided, expired or released),
    which stays open until the caller commits. Meanwhile a transfer between two other users must go
    through: it shares no wallet with it. (It shares the currency row, which every transaction's
    foreign key references: its commit takes FOR KEY SHARE on it, which a FOR UPDATE would block.)"""
    alice, bob, carol = make_user(balance=100), make_user(balance=100), make_user()
    changed, transferred = threading.Event(), threading.Event()

    def hold_placed_on_alice_in_a_transaction_still_open() -> None:
        with transaction.atomic():
            held_change(wallet_id=wallet(alice).pk, delta=Decimal(5), hold_uid=uuid.uuid4(), created_at=timezone.now())
            changed.set()
            assert transferred.wait(timeout=15)
            transaction.set_rollback(True)

    def transfer_from_bob_to_carol() -> Any:
        assert changed.wait(timeout=15)
        try:
            with connection.cursor() as cursor:  # this thread's own connection, closed when it ends
                cursor.execute("SET lock_timeout = '2s'")
            return transfer_create(sender_id=bob.pk, recipient_id=carol.pk, currency=usdt, amount=Decimal(1))
        finally:
            transferred.set()

    _, transfer = run_in_threads(
        [hold_placed_on_alice_in_a_transaction_still_open, transfer_from_bob_to_carol], threads=2, timeout=30
    )

    assert isinstance(transfer, Transaction), f"the transfer waited on a lock it does not need: {transfer!r}"
    assert (wallet(alice).held, wallet(bob).balance, wallet(carol).balance) == (ZERO, Decimal(99), Decimal(1))
    assert_ledger_sound(alice, bob, carol)
