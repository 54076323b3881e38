"""Random ledgers built through the services, and a replay of their chains to check readings against.

The replay is deliberately naive: where a wallet stood at an instant is the sum of the deltas of every
entry stamped by then, not the entry the selectors pick, so the two agree only if the chain is in time
order and the selectors read it right.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.utils import timezone

from audit.models import BalanceHistory
from currencies.models import Currency
from holds.models import Hold
from holds.services import hold_capture, hold_create, hold_void
from transactions.models import Transaction
from transactions.services import deposit_create, reversal_create, transfer_create, withdrawal_create
from wallet_project.core import errors
from wallets.models import Wallet

ZERO = Decimal(0)
MICROSECOND = timedelta(microseconds=1)


def amount(rng: random.Random, places: int = 2, most: int = 40) -> Decimal:
    return Decimal(rng.randint(1, most * 10**places)) / 10**places


def build_random_ledger(
    rng: random.Random, users: list, staff, currencies: list[Currency], steps: int
) -> list[datetime]:
    """``steps`` random movements and holds among ``users`` through the services; returns instants taken
    between the steps (refusals, such as a spend beyond what is available, are part of the ledger's life)."""
    marks = [timezone.now()]
    for _ in range(steps):
        currency = rng.choice(currencies)
        payer, payee = rng.sample(users, 2)
        kind = rng.choice(["transfer", "transfer", "deposit", "withdrawal", "hold", "capture", "void", "reversal"])
        try:
            if kind == "transfer":
                transfer_create(sender_id=payer.pk, recipient_id=payee.pk, currency=currency, amount=amount(rng))
            elif kind == "deposit":
                deposit_create(user_id=payer.pk, currency=currency, amount=amount(rng, most=80), created_by_id=staff.pk)
            elif kind == "withdrawal":
                withdrawal_create(user_id=payer.pk, currency=currency, amount=amount(rng), created_by_id=staff.pk)
            elif kind == "hold":
                hold_create(payer_id=payer.pk, payee_id=payee.pk, currency=currency, amount=amount(rng))
            elif kind in ("capture", "void"):
                hold = Hold.objects.filter(status=Hold.Status.ACTIVE).order_by("?").first()
                if hold is None:
                    continue
                if kind == "void":
                    hold_void(hold_id=hold.pk, actor=hold.payer)
                else:
                    part = min(hold.remaining, amount(rng, most=20))
                    hold_capture(hold_id=hold.pk, actor=hold.payee, amount=part)
            else:
                original = (
                    Transaction.objects.exclude(type=Transaction.Type.REVERSAL).order_by("?").select_related("currency")
                ).first()
                if original is None:
                    continue
                part = min(original.amount, amount(rng, most=20))
                reversal_create(original=original, amount=part, memo="random correction", created_by_id=staff.pk)
        except (errors.InsufficientBalance, errors.ReversalExceedsOriginal, errors.AmountExceedsHold):
            pass
        marks.append(timezone.now())
    return marks


@dataclass(frozen=True)
class Replayed:
    balance: Decimal
    held: Decimal


def chain(wallet: Wallet) -> list[BalanceHistory]:
    return list(BalanceHistory.objects.filter(wallet=wallet).select_related("transaction").order_by("seq"))


def replay_at(entries: list[BalanceHistory], at: datetime, *, inclusive: bool = True) -> Replayed:
    """The wallet after every entry stamped at (or, not ``inclusive``, before) ``at``, by adding them up."""
    counted = [e for e in entries if (e.created_at <= at if inclusive else e.created_at < at)]
    return Replayed(sum((e.delta for e in counted), ZERO), sum((e.held_delta for e in counted), ZERO))


@dataclass(frozen=True)
class ReplayedStatement:
    opening: Decimal
    closing: Decimal
    total_in: Decimal
    total_out: Decimal
    transaction_ids: list[int]


def replay_statement(entries: list[BalanceHistory], start: datetime, end: datetime) -> ReplayedStatement:
    legs = [e for e in entries if e.transaction_id is not None and start <= e.created_at < end]
    return ReplayedStatement(
        opening=replay_at(entries, start, inclusive=False).balance,
        closing=replay_at(entries, end, inclusive=False).balance,
        total_in=sum((e.delta for e in legs if e.delta > 0), ZERO),
        total_out=sum((-e.delta for e in legs if e.delta < 0), ZERO),
        transaction_ids=[e.transaction_id for e in legs],
    )


def iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")
