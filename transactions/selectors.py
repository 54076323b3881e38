from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from string import hexdigits
from typing import NamedTuple

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser, AnonymousUser
from django.db import connection
from django.db.models import Count, QuerySet
from django.db.models.functions import TruncDate

from audit.models import BalanceHistory
from audit.receipts import canonical_transaction
from currencies.money import format_amount
from currencies.money_field import MoneySum
from transactions import sql
from transactions.events import reversed_hash, transaction_document
from transactions.models import Transaction
from wallet_project.core import errors
from wallet_project.core.pagination import CursorWindow, invalid_cursor, keyset_page, paginate
from wallets.models import Wallet


def recipient_id_by_username(username: str) -> int:
    """The active account a transfer by ``to_username`` goes to (the user table by its setting:
    the ledger sits below accounts); the same lookup as ``accounts.selectors.user_get_by_username``."""
    user = get_user_model().objects.filter(username__iexact=username.strip(), is_active=True).only("id").first()
    if user is None:
        raise errors.RecipientNotFound()
    return user.pk


class BalancesAfter(NamedTuple):
    """A wallet as a movement left it: the replies' ``balance_after`` and ``available_after``."""

    balance: Decimal
    available: Decimal

    def document(self) -> dict[str, str]:
        return {"balance_after": format_amount(self.balance), "available_after": format_amount(self.available)}


def sender_balances_after(tx: Transaction) -> BalancesAfter | None:
    """The sender's wallet as ``tx`` left it (not as it is now); None for a movement without a sender.

    The ledger sets it on the transaction it posts, from the write itself: no query. A transaction
    loaded otherwise (the original of an idempotent replay) reads its sender's leg as stored, one
    read of the (wallet, transaction) index, so a replay answers with the figures of the first reply.
    """
    balance = getattr(tx, "sender_balance_after", None)
    if balance is not None:
        return BalancesAfter(balance, tx.sender_available_after)
    if tx.from_wallet_id is None:
        return None
    leg = (
        BalanceHistory.objects.filter(wallet_id=tx.from_wallet_id, transaction_id=tx.pk)
        .values_list("balance_after", "held_after")
        .first()
    )
    if leg is None:
        return None
    tx.sender_balance_after, tx.sender_available_after = leg[0], leg[0] - leg[1]
    return BalancesAfter(tx.sender_balance_after, tx.sender_available_after)


def history_queryset(
    *,
    user_id: int,
    currency_id: int | None = None,
    direction: str | None = None,
    tx_type: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
) -> QuerySet[BalanceHistory]:
    """A user's transactions, newest first (each appears once: a user never pays themselves).

    Read from the user's balance-history legs, so the direction is the sign of the leg and the
    whole page is one range scan of (user, id).
    """
    # Movement legs only: an entry that changes ``held`` alone is in the audit trail, not the history.
    qs = BalanceHistory.objects.filter(user_id=user_id, transaction__isnull=False)
    if currency_id is not None:
        qs = qs.filter(wallet__currency_id=currency_id)
    if direction == "sent":
        qs = qs.filter(delta__lt=0)
    elif direction == "received":
        qs = qs.filter(delta__gt=0)
    if tx_type:
        qs = qs.filter(transaction__type=tx_type)
    if created_after:
        qs = qs.filter(created_at__gte=created_after)
    if created_before:
        qs = qs.filter(created_at__lt=created_before)
    return qs.select_related("transaction", "transaction__currency", "transaction__reverses").order_by("-id")


def history_page(
    *,
    user_id: int,
    currency_id: int | None = None,
    direction: str | None = None,
    tx_type: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    page: int,
    page_size: int,
) -> dict:
    """One page of a user's history (``{data, pagination}``), newest first.

    Unfiltered, or filtered by currency alone, the total is the sum of the wallets' ``postings`` (no
    count over the rows), and when that history lives in one wallet, as most do, page N is a range
    of the wallet's posting positions: as cheap at page 5,000 as at page 1. Other filters count and skip.
    """

    def filtered() -> QuerySet[BalanceHistory]:  # built only off the fast path (building one has a cost)
        return history_queryset(
            user_id=user_id,
            currency_id=currency_id,
            direction=direction,
            tx_type=tx_type,
            created_after=created_after,
            created_before=created_before,
        )

    if any(value is not None for value in (direction, tx_type, created_after, created_before)):
        return paginate(filtered(), history_item, page=page, page_size=page_size)
    chains = _user_chains(user_id, currency_id=currency_id)
    total = sum(entries for _, entries in chains)
    if len(chains) != 1:
        return paginate(filtered(), history_item, page=page, page_size=page_size, total=total)
    ((wallet_id, entries),) = chains
    return paginate(
        BalanceHistory.objects.none(),  # unused: total and rows are given
        _position_item if connection.vendor == "postgresql" else history_item,
        page=page,
        page_size=page_size,
        total=total,
        page_rows=lambda offset, limit: _position_rows(wallet_id, newest=entries - offset, limit=limit),
    )


def history_cursor_page(
    *,
    user_id: int,
    currency_id: int | None = None,
    direction: str | None = None,
    tx_type: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    window: CursorWindow,
) -> dict:
    """One cursor page of a user's history (``{data, pagination: {next_cursor, has_more}}``), newest first.

    When the history lives in one wallet (unfiltered, or filtered by currency alone) a page is the next
    range of that wallet's posting positions below the cursor's (``{"w": wallet, "p": posting}``), the
    same two prepared statements as the page-number fast path; positions run 1..postings without gaps,
    so the range's size is the page's and position 1 ends the list. Otherwise a page is the user's legs
    below the cursor's entry id (``{"id": ...}``), one backward range of the (user, id) index. A cursor
    of one wallet's positions whose user has since gained a second wallet's history goes on by id from
    the same entry: within a wallet, entries are numbered in the order of their ids.
    """
    if all(value is None for value in (direction, tx_type, created_after, created_before)):
        chains = _user_chains(user_id, currency_id=currency_id)
        if not chains:
            return window.envelope([], None)
        if len(chains) == 1 and (window.after is None or window.after.get("w") == chains[0][0]):
            ((wallet_id, postings),) = chains
            posting = window.key("p")
            newest = postings if posting is None else posting - 1
            rows = _position_rows(wallet_id, newest=newest, limit=window.limit) if newest > 0 else []
            oldest = newest - len(rows) + 1
            render = _position_item if connection.vendor == "postgresql" else history_item
            more = bool(rows) and oldest > 1
            return window.envelope([render(row) for row in rows], {"w": wallet_id, "p": oldest} if more else None)
    if window.after is not None and "p" in window.after:
        entry = BalanceHistory.objects.filter(wallet_id=window.value("w"), posting=window.value("p"))
        entry_id = entry.values_list("id", flat=True).first()
        if entry_id is None:  # not this ledger's (a cursor of a database since replaced)
            raise invalid_cursor()
        window = window.starting_after({"id": entry_id})
    queryset = history_queryset(
        user_id=user_id,
        currency_id=currency_id,
        direction=direction,
        tx_type=tx_type,
        created_after=created_after,
        created_before=created_before,
    )
    return keyset_page(queryset, history_item, window)


class _TransactionRow(NamedTuple):
    """The attributes ``transaction_document`` reads, straight from a row."""

    pk: int
    hash: str
    signature: str
    status: str
    type: str
    from_user_id: int | None
    to_user_id: int | None
    currency_id: int
    amount: Decimal
    memo: str
    created_at: datetime
    reverses_hash: str | None  # a reversal's original


def _user_chains(user_id: int, *, currency_id: int | None = None) -> list[tuple[int, int]]:
    """(wallet id, postings) of the user's wallets that have a history (in one currency, if given)."""
    if connection.vendor == "postgresql":
        return sql.user_chains(user_id, currency_id=currency_id)
    wallets = Wallet.objects.filter(user_id=user_id, postings__gt=0)
    if currency_id is not None:
        wallets = wallets.filter(currency_id=currency_id)
    return list(wallets.values_list("id", "postings"))


def _position_rows(wallet_id: int, *, newest: int, limit: int) -> list:
    if connection.vendor == "postgresql":
        return sql.position_rows(wallet_id, newest=newest, limit=limit)
    # SQLite hands back text for these columns: let the ORM convert
    return list(
        BalanceHistory.objects.filter(wallet_id=wallet_id, posting__lte=newest, posting__gt=newest - limit)
        .select_related("transaction", "transaction__currency", "transaction__reverses")
        .order_by("-posting")
    )


def _position_item(row: tuple) -> dict:
    document = transaction_document(_TransactionRow._make((*row[:11], row[13])), currency_code=row[11])
    document["direction"] = "sent" if row[12] < 0 else "received"
    return document


def history_item(entry: BalanceHistory) -> dict:
    tx = entry.transaction
    assert tx is not None  # the history reads movement entries only
    document = transaction_document(tx, currency_code=tx.currency.code)
    document["direction"] = "sent" if entry.delta < 0 else "received"
    return document


def transaction_get_by_hash(*, tx_hash: str) -> Transaction:
    tx = (
        Transaction.objects.select_related("currency", "reverses").filter(hash=tx_hash.lower()).first()
        if len(tx_hash) == 64 and all(c in hexdigits for c in tx_hash)
        else None
    )
    if tx is None:
        raise errors.TransactionNotFound()
    return tx


def _timestamp(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def receipt_document(tx: Transaction, *, viewer: AbstractUser | AnonymousUser | None) -> dict:
    """The public receipt of ``tx``; its parties and staff also see who and the canonical encoding.

    A reversal names what it takes back (``reverses``); any other transaction shows what of it was
    reversed (``reversed_amount``, ``reversals``, oldest first), zero and none for most.
    """
    document: dict = {
        "hash": tx.hash,
        "signature": tx.signature,
        "status": tx.status,
        "type": tx.type,
        "currency": tx.currency.code,
        "amount": format_amount(tx.amount),
        "created_at": _timestamp(tx.created_at),
    }
    reverses = None
    if tx.type == Transaction.Type.REVERSAL:
        reverses = document["reverses"] = reversed_hash(tx)
    else:
        reversals = list(
            Transaction.objects.filter(reverses_id=tx.pk).order_by("id").values_list("hash", "amount", "created_at")
        )
        document["reversals"] = [
            {"hash": hash_, "amount": format_amount(amount), "created_at": _timestamp(created_at)}
            for hash_, amount, created_at in reversals
        ]
        document["reversed_amount"] = format_amount(sum((amount for _, amount, _ in reversals), Decimal(0)))
    if (
        viewer is not None
        and viewer.is_authenticated
        and (viewer.is_staff or viewer.pk in (tx.from_user_id, tx.to_user_id))
    ):
        document["from_user_id"] = tx.from_user_id
        document["to_user_id"] = tx.to_user_id
        # What a party needs to recompute the hash itself: sha256(canonical) == hash.
        document["uid"] = str(tx.uid)
        document["memo"] = tx.memo
        document["canonical"] = canonical_transaction(
            uid=str(tx.uid),
            type=tx.type,
            from_user_id=tx.from_user_id,
            to_user_id=tx.to_user_id,
            currency=tx.currency.code,
            amount=tx.amount,
            memo=tx.memo,
            created_at=tx.created_at,
            reverses=reverses,
        ).decode()
    return document


class DailyMovement(NamedTuple):
    """One day's movements of one type in one currency (the console's chart and "today" figures)."""

    day: date
    currency_id: int
    type: str
    transaction_count: int
    amount: Decimal


def movements_by_day(*, since: datetime, until: datetime | None = None) -> list[DailyMovement]:
    """Per day (``TIME_ZONE``), currency and type in ``[since, until)``: how many and how much.

    A range of ``tx_created_at``, an index that carries the grouped and summed columns.
    """
    qs = Transaction.objects.filter(created_at__gte=since)
    if until is not None:
        qs = qs.filter(created_at__lt=until)
    rows = (
        qs.annotate(day=TruncDate("created_at"))
        .values_list("day", "currency_id", "type")
        .annotate(count=Count("id"), total=MoneySum("amount"))
        .order_by("day", "currency_id", "type")
    )
    return [
        DailyMovement(day, currency_id, kind, count, total or Decimal(0))
        for day, currency_id, kind, count, total in rows
    ]


class MovementTotal(NamedTuple):
    currency_id: int
    type: str
    transaction_count: int
    amount: Decimal


def movements_since(*, since: datetime, types: Sequence[str] | None = None) -> list[MovementTotal]:
    """Per currency and type, the movements created at or after ``since`` (a rolling window)."""
    qs = Transaction.objects.filter(created_at__gte=since)
    if types is not None:
        qs = qs.filter(type__in=types)
    rows = qs.values_list("currency_id", "type").annotate(count=Count("id"), total=MoneySum("amount")).order_by()
    return [MovementTotal(currency_id, kind, count, total or Decimal(0)) for currency_id, kind, count, total in rows]
