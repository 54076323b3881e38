"""A statement's hand-written SQL on PostgreSQL: its two ends in one statement, its pages in another.

Both are written out and prepared once per connection (``prepared_cursor``) rather than compiled by
the ORM on every request, as the transaction history's are (``transactions/sql.py``): compiling the
ORM's four statement queries was a third of a statement page's CPU (figures in docs/benchmarks.md).
SQLite (local runs) takes the ORM for the same rows: its money columns convert only there.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import NamedTuple

from wallet_project.core.db import int8, prepared_cursor
from wallets.models import Wallet

# -- The wallet --------------------------------------------------------------------------------------
# A user's wallet in one currency, every column, for the reads that start from it (a statement, a
# point in time, the wallet itself): the ORM's version compiled the query and joined the currency,
# which the caller already has from the process's currency cache.
# The column names come from the model, never from input.
_WALLET_FIELDS = [field.attname for field in Wallet._meta.concrete_fields]
_WALLET_COLUMNS = ", ".join(_WALLET_FIELDS)
WALLET_SQL = "SELECT " + _WALLET_COLUMNS + " FROM wallets_wallet WHERE user_id = %s AND currency_id = %s"  # noqa: S608  # nosec B608


def wallet_of(user_id: int, currency_id: int) -> Wallet | None:
    """The user's wallet in the currency, as the ORM would have loaded it (its currency not attached)."""
    with prepared_cursor() as cursor:
        cursor.execute(WALLET_SQL, [int8(user_id), int8(currency_id)])
        row = cursor.fetchone()
    return None if row is None else Wallet.from_db("default", _WALLET_FIELDS, row)


# -- The two ends ------------------------------------------------------------------------------------
# Where the wallet's chain stood before ``from`` and before ``to``: its newest entry stamped before
# each, ties to the later position, one backward probe of (wallet, created_at, seq) each. With each
# point its running totals: the statement's totals are the differences of the two (no scan of the
# stretch between them). A side with no entry before it returns no row.
_POINT = (
    "SELECT {side}, seq, balance_after, held_after, created_at, total_in_after, total_out_after, postings_after"
    " FROM audit_balancehistory WHERE wallet_id = %s AND created_at < %s ORDER BY created_at DESC, seq DESC LIMIT 1"
)
ENDS_SQL = f"({_POINT.format(side=0)}) UNION ALL ({_POINT.format(side=1)})"


class PointRow(NamedTuple):
    """One end as ``ENDS_SQL`` returns it (the totals are null only for a row written outside the ledger)."""

    seq: int
    balance: Decimal
    held: Decimal
    entry_at: datetime
    total_in: Decimal | None
    total_out: Decimal | None
    postings: int | None


def statement_ends(wallet_id: int, start: datetime, end: datetime) -> tuple[PointRow | None, PointRow | None]:
    """The wallet's newest entries stamped before ``start`` and before ``end`` (none: before its first)."""
    with prepared_cursor() as cursor:
        cursor.execute(ENDS_SQL, [int8(wallet_id), start, int8(wallet_id), end])
        rows = {side: PointRow(*rest) for side, *rest in cursor.fetchall()}
    return rows.get(0), rows.get(1)


# -- The legs ----------------------------------------------------------------------------------------
# A page of the movement legs in the stretch (opening, closing] of the chain, with their transactions
# (and, for a reversal, the hash it takes back): by chain position after a cursor (one range of the
# (wallet, seq) index), or by posting for a page number (one range of (wallet, posting)).
_LEGS = """
SELECT h.seq, h.delta, h.balance_after, h.held_after, h.transaction_id, t.hash, t.type, t.status, t.amount, t.memo,
       t.from_user_id, t.to_user_id, t.created_at, o.hash
FROM audit_balancehistory h
JOIN transactions_transaction t ON t.id = h.transaction_id
LEFT JOIN transactions_transaction o ON o.id = t.reverses_id
WHERE h.wallet_id = %s AND h.seq > %s AND h.seq <= %s AND h.transaction_id IS NOT NULL{range}
ORDER BY h.{order} LIMIT %s
"""
LEGS_AFTER_SQL = _LEGS.format(range="", order="seq")
LEGS_POSTED_SQL = _LEGS.format(range=" AND h.posting >= %s AND h.posting < %s", order="posting")


def legs_after(wallet_id: int, *, after_seq: int, last_seq: int, limit: int) -> list[tuple]:
    """Up to ``limit`` legs after chain position ``after_seq`` up to ``last_seq``, in chain order."""
    with prepared_cursor() as cursor:
        cursor.execute(LEGS_AFTER_SQL, [int8(wallet_id), int8(after_seq), int8(last_seq), int8(limit)])
        return cursor.fetchall()


def legs_posted(wallet_id: int, *, after_seq: int, last_seq: int, first_posting: int, limit: int) -> list[tuple]:
    """The legs posted ``first_posting`` .. ``first_posting + limit - 1`` within (after_seq, last_seq]."""
    with prepared_cursor() as cursor:
        cursor.execute(
            LEGS_POSTED_SQL,
            [
                int8(wallet_id),
                int8(after_seq),
                int8(last_seq),
                int8(first_posting),
                int8(first_posting + limit),
                int8(limit),
            ],
        )
        return cursor.fetchall()
