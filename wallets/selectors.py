from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import NamedTuple

from django.db import connection
from django.db.models import Count, Min, Q, QuerySet
from django.utils import timezone

from audit.models import BalanceHistory
from currencies.models import Currency
from currencies.money import format_amount
from currencies.money_field import MoneySum
from wallet_project.core import errors
from wallet_project.core.cursor import decode_cursor, encode_cursor
from wallets import sql as wallet_sql
from wallets.models import Wallet

_WINDOW = re.compile(r"^([1-9][0-9]{0,4})([mhd])$", re.ASCII)
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}
MAX_WINDOW = timedelta(days=3660)
# The windows parse_window accepts, as one pattern for the schema: up to 99999m, 87840h, 3660d.
WINDOW_PATTERN = (
    r"^(?:[1-9][0-9]{0,4}m"
    r"|(?:[1-9][0-9]{0,3}|[1-7][0-9]{4}|8[0-6][0-9]{3}|87[0-7][0-9]{2}|878[0-3][0-9]|87840)h"
    r"|(?:[1-9][0-9]{0,2}|[12][0-9]{3}|3[0-5][0-9]{2}|36[0-5][0-9]|3660)d)$"
)


# The holds app's reading of what holds past their expiry still reserve in ``held`` until their release
# is recorded (holds.apps registers it): ``reader(wallet_ids, now) -> {wallet_id: amount}``. A wallet
# shows what a spend may take now; the ledger releases such holds before it would refuse one.
ExpiredHeldReader = Callable[[list[int], datetime], dict[int, Decimal]]
_expired_held_reader: ExpiredHeldReader | None = None


def register_expired_held_reader(reader: ExpiredHeldReader) -> None:
    global _expired_held_reader
    _expired_held_reader = reader


def wallet_documents(wallets: Sequence[Wallet]) -> list[dict]:
    """The wallets as every response shows them: ``held`` counts active holds only, not expired ones."""
    # Only a wallet that holds something can hold something expired: no query for the others.
    holding = [wallet.pk for wallet in wallets if wallet.held > 0]
    expired = _expired_held_reader(holding, timezone.now()) if holding and _expired_held_reader else {}
    return [_document(wallet, held=wallet.held - expired.get(wallet.pk, Decimal(0))) for wallet in wallets]


def wallet_document(wallet: Wallet) -> dict:
    return wallet_documents([wallet])[0]


def _document(wallet: Wallet, *, held: Decimal) -> dict:
    return {
        "id": wallet.pk,
        "user_id": wallet.user_id,
        "currency_id": wallet.currency_id,
        "currency": wallet.currency.code,
        "balance": format_amount(wallet.balance),
        "held": format_amount(held),
        "available": format_amount(wallet.balance - held),
        "created_at": wallet.created_at.isoformat().replace("+00:00", "Z"),
        "updated_at": wallet.updated_at.isoformat().replace("+00:00", "Z"),
    }


def wallet_list(*, user_id: int) -> list[Wallet]:
    return list(Wallet.objects.filter(user_id=user_id).select_related("currency").order_by("currency_id"))


def wallet_get(*, user_id: int, currency: Currency) -> Wallet:
    if connection.vendor == "postgresql":  # one prepared statement, the currency from the caller
        wallet = wallet_sql.wallet_of(user_id, currency.pk)
        if wallet is not None:
            wallet.currency = currency
    else:  # SQLite: the ORM (its money columns convert only there)
        wallet = Wallet.objects.filter(user_id=user_id, currency=currency).select_related("currency").first()
    if wallet is None:
        raise errors.WalletNotFound(f"no {currency.code} wallet for this user")
    return wallet


def parse_window(raw: str | None) -> tuple[str, timedelta]:
    text = "24h" if raw is None else raw  # an empty or padded value is malformed, not the default
    match = _WINDOW.match(text)
    if not match:
        raise errors.InvalidRequest("window must look like 30m, 24h or 7d", errors={"window": ["invalid window"]})
    span = timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    if span > MAX_WINDOW:
        raise errors.InvalidRequest("window is too long (at most 3660d)", errors={"window": ["too long"]})
    return text, span


def wallet_stats(*, user_id: int, currency: Currency, window: timedelta) -> dict:
    """Activity of one wallet over a window; never summed across currencies."""
    since = timezone.now() - window
    rows = BalanceHistory.objects.filter(
        user_id=user_id, wallet__currency=currency, created_at__gte=since, transaction__isnull=False
    )
    agg = rows.aggregate(
        count=Count("id"),
        sent=MoneySum("delta", filter=Q(delta__lt=0)),
        received=MoneySum("delta", filter=Q(delta__gt=0)),
        change=MoneySum("delta"),
    )
    zero = Decimal(0)
    return {
        "transaction_count": agg["count"],
        "total_sent": format_amount(-(agg["sent"] or zero)),
        "total_received": format_amount(agg["received"] or zero),
        "balance_change": format_amount(agg["change"] or zero),
    }


# -- The wallet at an instant, and statements ------------------------------------------------------
# Both read the wallet's hash chain (audit's balance history), whose entries are stamped in chain
# order (the ledger re-stamps a movement that waited for the lock): where a wallet stood at an instant
# is its newest entry stamped by then, ties going to the later position, one backward probe of the
# (wallet, created_at, seq) index however long the chain.

MAX_STATEMENT_SPAN = timedelta(days=366)
STATEMENT_CSV_CHUNK = 500
ZERO = Decimal(0)
_ONE_MICROSECOND = timedelta(microseconds=1)


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class ChainPoint:
    """Where a wallet's chain stood at an instant: after entry ``seq`` (0: before its first entry)."""

    seq: int
    balance: Decimal
    held: Decimal
    entry_at: datetime | None  # that entry's time
    # The chain's running totals there: all that came in, all that went out, the movements so far
    # (None: an entry written outside the ledger without them, which reconcile reports).
    total_in: Decimal | None = ZERO
    total_out: Decimal | None = ZERO
    postings: int | None = 0


BEFORE_THE_CHAIN = ChainPoint(0, ZERO, ZERO, None)
_POINT_FIELDS = (
    "seq",
    "balance_after",
    "held_after",
    "created_at",
    "total_in_after",
    "total_out_after",
    "postings_after",
)


def chain_point_query(wallet_id: int, instant: datetime, *, inclusive: bool) -> QuerySet[BalanceHistory]:
    """The wallet's entries stamped at (``inclusive``) or before ``instant``, newest first: the first is
    where the wallet stood (a backward scan of the (wallet, created_at, seq) index)."""
    stamped = Q(created_at__lte=instant) if inclusive else Q(created_at__lt=instant)
    return BalanceHistory.objects.filter(stamped, wallet_id=wallet_id).order_by("-created_at", "-seq")


def _chain_point(wallet_id: int, instant: datetime, *, inclusive: bool) -> ChainPoint:
    """After every entry stamped at (``inclusive``) or before ``instant``."""
    row = chain_point_query(wallet_id, instant, inclusive=inclusive).values_list(*_POINT_FIELDS).first()
    return BEFORE_THE_CHAIN if row is None else ChainPoint(*row)


def wallet_at(*, wallet: Wallet, at: datetime) -> dict:
    """The wallet as it stood at ``at``: its document, ``balance``/``held``/``available`` then, ``as_of``.

    After every entry stamped at or before ``at``; zeros between its opening and its first entry;
    ``updated_at`` is the time of the entry it stood at (its opening, before any). ``held`` is what the
    chain recorded as reserved: a hold past its expiry counts until its release is recorded. A future
    ``at`` answers the wallet as it stands now. Before the wallet was opened: 404 WALLET_NOT_FOUND.
    """
    if wallet.created_at > at:
        raise errors.WalletNotFound(f"no {wallet.currency.code} wallet for this user at that time")
    point = _chain_point(wallet.pk, at, inclusive=True)
    return {
        "id": wallet.pk,
        "user_id": wallet.user_id,
        "currency_id": wallet.currency_id,
        "currency": wallet.currency.code,
        "balance": format_amount(point.balance),
        "held": format_amount(point.held),
        "available": format_amount(point.balance - point.held),
        "created_at": _iso(wallet.created_at),
        "updated_at": _iso(point.entry_at or wallet.created_at),
        "as_of": _iso(at),
    }


def statement_window(start: datetime | None, end: datetime | None, *, now: datetime) -> tuple[datetime, datetime]:
    """A statement's [from, to): ``to`` defaults to now, ``from`` to the start of the UTC month before ``to``.

    ``from`` must be earlier than ``to``, by at most 366 days: 400 INVALID_REQUEST otherwise.
    """
    end = (end or now).astimezone(UTC)
    if start is None:
        start = (end - _ONE_MICROSECOND).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    start = start.astimezone(UTC)
    if start >= end:
        raise errors.InvalidRequest("from must be earlier than to", errors={"from": ["must be earlier than to"]})
    if end - start > MAX_STATEMENT_SPAN:
        raise errors.InvalidRequest(
            "a statement covers at most 366 days", errors={"to": ["at most 366 days after from"]}
        )
    return start, end


@dataclass(frozen=True)
class Statement:
    """A wallet's movements in [start, end), between the chain's points at the two ends.

    The entries are the movement legs after ``opening.seq`` up to ``closing.seq``: an unbroken stretch
    of the chain, so opening + total_in - total_out = closing whatever the entries; entries that change
    ``held`` alone lie in the stretch but move no money and are not listed.
    """

    wallet: Wallet
    start: datetime
    end: datetime
    opening: ChainPoint
    closing: ChainPoint
    count: int
    first_posting: int | None
    total_in: Decimal
    total_out: Decimal

    def legs(self, *, after_seq: int | None = None) -> QuerySet[BalanceHistory]:
        """The statement's movement legs (after position ``after_seq``, if given), in chain order."""
        return BalanceHistory.objects.filter(
            wallet_id=self.wallet.pk,
            seq__gt=self.opening.seq if after_seq is None else max(after_seq, self.opening.seq),
            seq__lte=self.closing.seq,
            transaction__isnull=False,
        ).order_by("seq")

    def legs_after(self, after_seq: int | None, limit: int) -> list[StatementLeg]:
        """Up to ``limit`` legs after position ``after_seq`` (from the start, if none), in chain order."""
        if connection.vendor != "postgresql":  # SQLite: the ORM (its money columns convert only there)
            return _leg_rows(self.legs(after_seq=after_seq)[:limit])
        after = self.opening.seq if after_seq is None else max(after_seq, self.opening.seq)
        rows = wallet_sql.legs_after(self.wallet.pk, after_seq=after, last_seq=self.closing.seq, limit=limit)
        return [StatementLeg(*row) for row in rows]


def wallet_statement(*, wallet: Wallet, start: datetime, end: datetime) -> Statement:
    """The statement of ``wallet`` for [start, end) (a window ``statement_window`` accepted).

    ``opening`` is the wallet after every entry stamped before ``start`` (the point in time of ``start``
    less a microsecond: an entry stamped at ``start`` itself is in the statement), ``closing`` after every
    entry stamped before ``end``. The totals are the differences of the two ends' running totals: one
    statement of two index probes on PostgreSQL, whatever the window holds.
    """
    if connection.vendor == "postgresql":
        ends = wallet_sql.statement_ends(wallet.pk, start, end)
        opening, closing = (BEFORE_THE_CHAIN if row is None else ChainPoint(*row) for row in ends)
    else:
        opening = _chain_point(wallet.pk, start, inclusive=False)
        closing = _chain_point(wallet.pk, end, inclusive=False)
    if closing.seq < opening.seq:
        # Only rows stamped before the ledger kept its chains in time order can cross so (a few ms apart
        # at ``start`` and ``end``): the stretch is then empty, and the statement closes where it opened.
        closing = opening
    if (
        opening.total_in is None or opening.total_out is None or opening.postings is None
        or closing.total_in is None or closing.total_out is None or closing.postings is None
    ):  # fmt: skip
        count, first_posting, total_in, total_out = _summed_totals(wallet.pk, opening.seq, closing.seq)
    else:
        count = closing.postings - opening.postings
        first_posting = opening.postings + 1 if count else None  # the legs' postings are consecutive
        total_in, total_out = closing.total_in - opening.total_in, closing.total_out - opening.total_out
    return Statement(
        wallet=wallet,
        start=start,
        end=end,
        opening=opening,
        closing=closing,
        count=count,
        first_posting=first_posting,
        total_in=total_in,
        total_out=total_out,
    )


def _summed_totals(wallet_id: int, after_seq: int, last_seq: int) -> tuple[int, int | None, Decimal, Decimal]:
    """The totals summed over the legs (after_seq, last_seq]: for an end whose entry lacks its running
    totals (written outside the ledger: reconcile reports it), so the statement stays right meanwhile."""
    totals = BalanceHistory.objects.filter(
        wallet_id=wallet_id, seq__gt=after_seq, seq__lte=last_seq, transaction__isnull=False
    ).aggregate(
        count=Count("id"),
        first_posting=Min("posting"),
        total_in=MoneySum("delta", filter=Q(delta__gt=0)),
        total_out=MoneySum("delta", filter=Q(delta__lt=0)),
    )
    return totals["count"], totals["first_posting"], totals["total_in"] or ZERO, -(totals["total_out"] or ZERO)


_LEG_FIELDS = (
    "seq",
    "delta",
    "balance_after",
    "held_after",
    "transaction_id",
    "transaction__hash",
    "transaction__type",
    "transaction__status",
    "transaction__amount",
    "transaction__memo",
    "transaction__from_user_id",
    "transaction__to_user_id",
    "transaction__created_at",
    "transaction__reverses__hash",
)


class StatementLeg(NamedTuple):
    """One movement leg of a statement, as read (``_LEG_FIELDS``)."""

    seq: int
    delta: Decimal
    balance_after: Decimal
    held_after: Decimal
    transaction_id: int
    hash: str
    type: str
    status: str
    amount: Decimal
    memo: str
    from_user_id: int | None
    to_user_id: int | None
    created_at: datetime
    reverses_hash: str | None

    @property
    def direction(self) -> str:
        return "sent" if self.delta < 0 else "received"

    @property
    def counterparty_user_id(self) -> int | None:
        """The other party of a transfer (or of its reversal); none for money entering or leaving."""
        return self.to_user_id if self.delta < 0 else self.from_user_id


def _leg_rows(legs: QuerySet[BalanceHistory]) -> list[StatementLeg]:
    return [StatementLeg(*row) for row in legs.values_list(*_LEG_FIELDS)]


def statement_page(statement: Statement, *, page: int, page_size: int) -> tuple[list[StatementLeg], dict]:
    """Page ``page`` of the legs, and the seed's page envelope: one range of the wallet's postings."""
    offset = (page - 1) * page_size
    rows: list[StatementLeg] = []
    if offset < statement.count and statement.first_posting is not None:
        first = statement.first_posting + offset  # the legs' postings are consecutive (a stretch of the chain)
        if connection.vendor == "postgresql":
            opening, closing = statement.opening.seq, statement.closing.seq
            found = wallet_sql.legs_posted(
                statement.wallet.pk, after_seq=opening, last_seq=closing, first_posting=first, limit=page_size
            )
            rows = [StatementLeg(*row) for row in found]
        else:  # SQLite: the ORM (its money columns convert only there)
            legs = statement.legs().filter(posting__gte=first, posting__lt=first + page_size).order_by("posting")
            rows = _leg_rows(legs)
    pagination = {
        "page": page,
        "page_size": page_size,
        "total": statement.count,
        "total_pages": (statement.count + page_size - 1) // page_size,
    }
    return rows, pagination


def statement_scope(wallet_id: int, start: datetime | None, end: datetime | None) -> str:
    """The list a statement's cursor belongs to: the wallet and the window as asked (blank: defaulted)."""
    return f"statement:{wallet_id}:{_iso(start) if start else ''}:{_iso(end) if end else ''}"


@dataclass(frozen=True)
class StatementCursor:
    """A decoded cursor: the last leg's position, and the window of the statement it pages through."""

    after_seq: int
    start: datetime
    end: datetime


def statement_cursor_decode(text: str, *, scope: str) -> StatementCursor:
    """The cursor ``text`` of the list ``scope``; 400 INVALID_REQUEST naming ``cursor`` for anything else."""
    position = decode_cursor(text, scope=scope)
    try:
        return StatementCursor(
            int(position["seq"]), datetime.fromisoformat(position["from"]), datetime.fromisoformat(position["to"])
        )
    except (KeyError, TypeError, ValueError):  # (signed by this server: only another version's could be)
        raise errors.InvalidRequest("cursor is not valid for this list", errors={"cursor": ["invalid cursor"]})


def statement_cursor_page(
    statement: Statement, *, scope: str, after_seq: int | None, limit: int
) -> tuple[list[StatementLeg], dict]:
    """The ``limit`` legs after chain position ``after_seq`` (keyset), and ``{next_cursor, has_more}``.

    The cursor carries the last leg's position and the window, so that the pages of a window that
    defaulted (``to`` = now) are pages of one statement.
    """
    rows = statement.legs_after(after_seq, limit + 1)
    has_more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = None
    if has_more:
        position = {"seq": rows[-1].seq, "from": _iso(statement.start), "to": _iso(statement.end)}
        next_cursor = encode_cursor(position, scope=scope)
    return rows, {"next_cursor": next_cursor, "has_more": has_more}


def statement_leg_document(leg: StatementLeg) -> dict:
    document = {
        "id": leg.transaction_id,
        "hash": leg.hash,
        "type": leg.type,
        "status": leg.status,
        "amount": format_amount(leg.amount),
        "memo": leg.memo,
        "created_at": _iso(leg.created_at),
        "direction": leg.direction,
        "counterparty_user_id": leg.counterparty_user_id,
        "delta": format_amount(leg.delta),
        "balance_after": format_amount(leg.balance_after),
        "held_after": format_amount(leg.held_after),
    }
    if leg.reverses_hash is not None:  # a reversal names what it takes back, as its transaction does
        document["reverses"] = leg.reverses_hash
    return document


def statement_document(statement: Statement, legs: Sequence[StatementLeg], pagination: dict) -> dict:
    return {
        "wallet_id": statement.wallet.pk,
        "currency": statement.wallet.currency.code,
        "from": _iso(statement.start),
        "to": _iso(statement.end),
        "opening_balance": format_amount(statement.opening.balance),
        "closing_balance": format_amount(statement.closing.balance),
        "total_in": format_amount(statement.total_in),
        "total_out": format_amount(statement.total_out),
        "count": statement.count,
        "data": [statement_leg_document(leg) for leg in legs],
        "pagination": pagination,
    }


STATEMENT_CSV_HEADER = (
    "created_at", "type", "transaction_id", "hash", "direction", "counterparty_user_id", "amount", "delta",
    "balance_after", "held_after", "memo", "reverses",
)  # fmt: skip


def statement_csv_rows(statement: Statement) -> Iterator[list[str]]:
    """The statement as CSV rows: the header, an ``opening_balance`` row at ``from``, every leg in chain
    order (all of them, read in keyset chunks while the rows stream), a ``closing_balance`` row at ``to``."""
    yield list(STATEMENT_CSV_HEADER)
    yield [_iso(statement.start), "opening_balance", "", "", "", "", "", "", format_amount(statement.opening.balance)]
    after: int | None = None
    while True:
        chunk = statement.legs_after(after, STATEMENT_CSV_CHUNK)
        for leg in chunk:
            document = statement_leg_document(leg)
            yield [
                document["created_at"], leg.type, str(leg.transaction_id), leg.hash, leg.direction,
                "" if leg.counterparty_user_id is None else str(leg.counterparty_user_id), document["amount"],
                document["delta"], document["balance_after"], document["held_after"], leg.memo,
                leg.reverses_hash or "",
            ]  # fmt: skip
        if len(chunk) < STATEMENT_CSV_CHUNK:
            break
        after = chunk[-1].seq
    yield [_iso(statement.end), "closing_balance", "", "", "", "", "", "", format_amount(statement.closing.balance)]


def statement_filename(statement: Statement) -> str:
    def stamp(value: datetime) -> str:
        return value.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")

    wallet = statement.wallet
    return f"statement-{wallet.user_id}-{wallet.currency.code}-{stamp(statement.start)}-{stamp(statement.end)}.csv"


class CurrencySupply(NamedTuple):
    """Per currency, what its wallets hold in all: ``balance`` and the recorded ``held`` (as reconcile sums them)."""

    currency_id: int
    code: str
    balances: Decimal
    held: Decimal


def supply_by_currency() -> list[CurrencySupply]:
    """Every currency with the sum of its wallets' balances and ``held`` (zero without wallets), by id."""
    sums = {
        currency_id: (balances or Decimal(0), held or Decimal(0))
        for currency_id, balances, held in Wallet.objects.values_list("currency_id")
        .annotate(balances=MoneySum("balance"), held=MoneySum("held"))
        .order_by()
    }
    return [
        CurrencySupply(pk, code, *sums.get(pk, (Decimal(0), Decimal(0))))
        for pk, code in Currency.objects.order_by("id").values_list("id", "code")
    ]
