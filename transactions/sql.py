"""The ledger's hand-written SQL: the statements on the hot path, and the only place they live.

What it gained (figures in docs/benchmarks.md): on PostgreSQL a transfer is two statements inside
its transaction, the wallet lock and one write of every row, both prepared once per connection
(``prepared_cursor``) instead of compiled by the ORM and planned by the server on every request;
the history page's two reads likewise. SQLite (local runs) takes the ORM for the same rows: its
money columns are fixed-width text that only the model field converts (no money arithmetic in SQL).

tests/transactions/test_sql.py checks every column list here against the models' ``_meta``, so a
field added to a model without a change here fails a test rather than a write.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, NamedTuple

from wallet_project.core.db import int8, prepared_cursor

# -- The lock ----------------------------------------------------------------------------------------
# The users' wallets in one currency, in ascending primary key (A->B and B->A can never deadlock), with
# the owner's token version: the account check of a transfer's sender rides on this statement, and
# the time of the wallet's newest entry (``updated_at``, which every write sets to it): a movement
# stamped before the lock is re-stamped no earlier than that, so entries never go back in time.
# One placeholder per user rather than an array parameter, whose binding costs more client CPU.
_LOCK = (
    "SELECT w.id, w.user_id, w.balance, w.held, w.audit_head, w.entries, w.postings, w.total_in, w.total_out,"
    " u.token_version, w.updated_at"
    " FROM wallets_wallet w JOIN accounts_user u ON u.id = w.user_id"
    " WHERE w.user_id IN ({users}) AND w.currency_id = %s{active} ORDER BY w.id FOR UPDATE OF w"
)


@functools.lru_cache(maxsize=8)
def lock_sql(users: int, *, active_only: bool) -> str:
    """The lock for ``users`` user ids; ``active_only``: a deactivated user neither sends nor receives."""
    return _LOCK.format(users=", ".join(["%s"] * users), active=" AND u.is_active" if active_only else "")


class LockedRow(NamedTuple):
    """One locked wallet as the lock statement returns it."""

    wallet_id: int
    user_id: int
    balance: Decimal
    held: Decimal
    audit_head: str
    entries: int
    postings: int
    total_in: Decimal
    total_out: Decimal
    token_version: int
    updated_at: datetime  # the newest entry's created_at (or the wallet's opening, before any)

    @property
    def available(self) -> Decimal:
        return self.balance - self.held


def lock_wallets(user_ids: Sequence[int], currency_id: int, *, active_only: bool) -> list[LockedRow]:
    with prepared_cursor() as cursor:
        cursor.execute(
            lock_sql(len(user_ids), active_only=active_only), [*(int8(u) for u in user_ids), int8(currency_id)]
        )
        return [LockedRow(*row) for row in cursor.fetchall()]


# -- The batch lock ----------------------------------------------------------------------------------
# A batch's wallets in every currency it moves, in one statement and in ascending primary key across
# all of them (as the lock above orders one currency's), so a batch, single transfers and other
# batches take their common wallets in one order and cannot deadlock. The same columns as the lock
# (its own select list and join, so that the two cannot drift apart), then the wallet's currency; the
# (user, currency) pairs come as two arrays: one prepared statement, whatever the batch's size.
_LOCK_SELECT, _, _LOCK_REST = _LOCK.partition(" FROM ")
BATCH_LOCK_SQL = (
    f"{_LOCK_SELECT}, w.currency_id FROM {_LOCK_REST.partition(' WHERE ')[0]}"
    " JOIN unnest(%s::bigint[], %s::bigint[]) AS p(user_id, currency_id)"
    " ON w.user_id = p.user_id AND w.currency_id = p.currency_id"
    " WHERE u.is_active ORDER BY w.id FOR UPDATE OF w"
)


def lock_wallet_pairs(pairs: Sequence[tuple[int, int]]) -> dict[tuple[int, int], LockedRow]:
    """Lock the active users' wallets of the (user id, currency id) ``pairs`` (distinct); by pair."""
    with prepared_cursor() as cursor:
        cursor.execute(BATCH_LOCK_SQL, [[int8(user) for user, _ in pairs], [int8(cur) for _, cur in pairs]])
        return {(row[1], row[-1]): LockedRow(*row[:-1]) for row in cursor.fetchall()}


# -- The write ---------------------------------------------------------------------------------------
# Every row of one movement in one statement: the transaction, the wallets' new balances and chain
# heads, one balance-history leg per wallet and the outbox event. The event's JSON is serialised
# before the lock in two halves around the transaction id, which only this insert assigns (ids taken
# at insert keep the order the audit checkpoint's table lock and chain cuts rely on): the statement
# joins them with the id, text to text.
TRANSACTION_COLUMNS = (
    "uid", "type", "status", "from_user_id", "to_user_id", "from_wallet_id", "to_wallet_id", "currency_id",
    "amount", "memo", "hash", "signature", "created_by_id", "trace_id", "reverses_id", "created_at",
)  # fmt: skip
WALLET_UPDATE_COLUMNS = ("balance", "held", "audit_head", "entries", "postings", "total_in", "total_out", "updated_at")
HISTORY_COLUMNS = (
    "wallet_id", "user_id", "transaction_id", "delta", "balance_before", "balance_after", "held_delta",
    "held_before", "held_after", "hold_uid", "prev_hash", "entry_hash", "seq", "posting", "total_in_after",
    "total_out_after", "postings_after", "created_at",
)  # fmt: skip
OUTBOX_COLUMNS = (
    "event_id", "topic", "key", "payload", "headers", "state", "attempts", "last_error", "available_at",
    "created_at", "published_at", "webhooks_pending",
)  # fmt: skip

WRITE_SQL = """
WITH tx AS (
    INSERT INTO transactions_transaction (uid, type, status, from_user_id, to_user_id, from_wallet_id, to_wallet_id,
        currency_id, amount, memo, hash, signature, created_by_id, trace_id, reverses_id, created_at)
    VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
    RETURNING id
), legs (wallet_id, user_id, delta, balance_before, balance_after, held_delta, held_before, held_after, hold_uid,
         prev_hash, entry_hash, seq, posting, total_in_after, total_out_after, postings_after) AS (
    VALUES {legs}
), moved AS (
    UPDATE wallets_wallet AS w
    SET balance = legs.balance_after, held = legs.held_after, audit_head = legs.entry_hash, entries = legs.seq,
        postings = legs.posting, total_in = legs.total_in_after, total_out = legs.total_out_after, updated_at = %s
    FROM legs WHERE w.id = legs.wallet_id
), history AS (
    INSERT INTO audit_balancehistory (wallet_id, user_id, transaction_id, delta, balance_before, balance_after,
        held_delta, held_before, held_after, hold_uid, prev_hash, entry_hash, seq, posting, total_in_after,
        total_out_after, postings_after, created_at)
    SELECT legs.wallet_id, legs.user_id, tx.id, legs.delta, legs.balance_before, legs.balance_after,
        legs.held_delta, legs.held_before, legs.held_after, legs.hold_uid, legs.prev_hash, legs.entry_hash,
        legs.seq, legs.posting, legs.total_in_after, legs.total_out_after, legs.postings_after, %s
    FROM tx, legs
), event AS (
    INSERT INTO core_outboxevent (event_id, topic, key, payload, headers, state, attempts, last_error, available_at,
        created_at, published_at, webhooks_pending)
    SELECT %s, %s, %s, (%s || tx.id::text || %s)::jsonb, %s::jsonb, 'pending', 0, '', NULL, %s, NULL, TRUE
    FROM tx
    RETURNING id
)
SELECT tx.id, event.id FROM tx, event
"""
_LEG = (
    "(%s::bigint, %s::bigint, %s::numeric, %s::numeric, %s::numeric, %s::numeric, %s::numeric, %s::numeric,"
    " %s::uuid, %s::varchar, %s::varchar, %s::bigint, %s::bigint, %s::numeric, %s::numeric, %s::bigint)"
)


class TransactionValues(NamedTuple):
    uid: Any
    type: str
    status: str
    from_user_id: int | None
    to_user_id: int | None
    from_wallet_id: int | None
    to_wallet_id: int | None
    currency_id: int
    amount: Decimal
    memo: str
    hash: str
    signature: str
    created_by_id: int | None
    trace_id: str
    reverses_id: int | None
    created_at: datetime


class LegValues(NamedTuple):
    wallet_id: int
    user_id: int
    delta: Decimal
    balance_before: Decimal
    balance_after: Decimal
    held_delta: Decimal
    held_before: Decimal
    held_after: Decimal
    hold_uid: Any  # uuid.UUID | None
    prev_hash: str
    entry_hash: str
    seq: int
    posting: int
    total_in_after: Decimal
    total_out_after: Decimal
    postings_after: int


class EventValues(NamedTuple):
    event_id: Any
    topic: str
    key: str
    payload_head: str  # the JSON text before the transaction id
    payload_tail: str  # and after it
    headers_json: str


def write_movement(tx: TransactionValues, legs: Sequence[LegValues], event: EventValues) -> tuple[int, int]:
    """Write one movement's rows; returns (transaction id, outbox event id)."""
    ids = {
        "from_user_id",
        "to_user_id",
        "from_wallet_id",
        "to_wallet_id",
        "currency_id",
        "created_by_id",
        "reverses_id",
    }
    params: list[Any] = [int8(v) if name in ids else v for name, v in zip(tx._fields, tx, strict=True)]
    for leg in legs:
        params += [int8(leg.wallet_id), int8(leg.user_id), *leg[2:11], int8(leg.seq), int8(leg.posting)]
        params += [leg.total_in_after, leg.total_out_after, int8(leg.postings_after)]
    params += [tx.created_at, tx.created_at]
    params += [event.event_id, event.topic, event.key, event.payload_head, event.payload_tail, event.headers_json]
    params.append(tx.created_at)
    with prepared_cursor() as cursor:
        cursor.execute(WRITE_SQL.format(legs=", ".join([_LEG] * len(legs))), params)
        tx_id, event_id = cursor.fetchone()
    return tx_id, event_id


# -- The history page --------------------------------------------------------------------------------
# The two statements of an unfiltered page, written out rather than compiled by the ORM on every
# request (that compilation, and a model instance per joined row, were much of a page's CPU: figures in
# docs/benchmarks.md). The
# wallet is the user's, so the page query needs no user filter (with one, the planner intersected the
# range with the user's whole history): it is one backward range of the (wallet, seq) index.
USER_CHAINS_SQL = "SELECT id, postings FROM wallets_wallet WHERE user_id = %s AND postings > 0"
USER_CURRENCY_CHAIN_SQL = USER_CHAINS_SQL + " AND currency_id = %s"
# A reversal's row also carries the hash of what it takes back (``o``: none for the other types, whose
# null ``reverses_id`` joins nothing).
POSITION_PAGE_SQL = """
SELECT t.id, t.hash, t.signature, t.status, t.type, t.from_user_id, t.to_user_id, t.currency_id, t.amount,
       t.memo, t.created_at, c.code, h.delta, o.hash
FROM audit_balancehistory h
JOIN transactions_transaction t ON t.id = h.transaction_id
JOIN currencies_currency c ON c.id = t.currency_id
LEFT JOIN transactions_transaction o ON o.id = t.reverses_id
WHERE h.wallet_id = %s AND h.posting <= %s AND h.posting > %s
ORDER BY h.posting DESC
"""


def user_chains(user_id: int, *, currency_id: int | None = None) -> list[tuple[int, int]]:
    """(wallet id, postings) of the user's wallets that have a history (in one currency, if given)."""
    with prepared_cursor() as cursor:
        if currency_id is None:
            cursor.execute(USER_CHAINS_SQL, [int8(user_id)])
        else:
            cursor.execute(USER_CURRENCY_CHAIN_SQL, [int8(user_id), int8(currency_id)])
        return cursor.fetchall()


def position_rows(wallet_id: int, *, newest: int, limit: int) -> list[tuple]:
    """The page's rows: the transaction's columns, the currency code, the leg's delta, the reversed hash."""
    with prepared_cursor() as cursor:
        cursor.execute(POSITION_PAGE_SQL, [int8(wallet_id), int8(newest), int8(newest - limit)])
        return cursor.fetchall()
