"""Reconciliation: prove from the database alone that no money was created, lost or rewritten.

Checks, all read in one consistent snapshot (REPEATABLE READ on PostgreSQL):
1. ``balances``: every wallet's balance equals the sum of its balance-history deltas, equals the
   ``balance_after`` of its newest entry, its ``audit_head`` is that entry's hash, its
   ``entries`` is the number of entries, its ``postings`` the number of movement entries, and its
   ``total_in`` / ``total_out`` are the newest entry's running totals.
2. ``chains``: every wallet's history is an unbroken hash chain (each ``prev_hash`` is the previous
   ``entry_hash``, each ``entry_hash`` recomputes, each ``balance_before`` is the previous
   ``balance_after``, each ``seq`` is the entry's position, each movement's ``posting`` its position
   among the movements). An edited or deleted row breaks it. The running totals, which the hash does
   not cover (they are derived from the hashed deltas), are recomputed along the chain: every
   entry's ``total_in_after``, ``total_out_after`` and ``postings_after`` must be what the entries up
   to it add up to (``totals_ok``), or a statement read from them would be wrong.
3. ``legs``: every transaction has exactly its legs (a transfer: -amount on the sender's wallet and
   +amount on the recipient's; a deposit: one credit; a withdrawal: one debit; a reversal: those of
   the shape it has, two for a transfer's, one debit for a deposit's, one credit for a withdrawal's),
   no leg is orphaned, and every leg's wallet belongs to the transaction's party on that side, in the
   transaction's currency, and to the history row's user (a wallet handed to another user is caught here).
4. ``supply``: per currency, the sum of balances equals deposits minus withdrawals, minus the
   reversals of deposits (money leaving: a reversal without recipient) plus the reversals of
   withdrawals (money entering: one without sender); the sum of ``held`` is reported beside it.
5. ``receipts``: every transaction hash recomputes from its canonical encoding and its signature
   verifies, for the transactions after the newest validly signed checkpoint in the database (all
   of them with ``verify_receipts=True`` or when there is no checkpoint). A forged transfer cannot be
   signed without the receipt key, so it is caught by the routine run.
6. ``checkpoint``: that checkpoint's commitments still hold: as many transactions up to its last id
   (a deleted one, or a forged one slipped into an old id, changes the count), the same deposits,
   withdrawals and reversals of each up to it (the totals it signed: older checkpoints have no
   reversals), and every wallet's chain, cut at its last entry id (at its last transaction id for a
   checkpoint of version 1: ``Cut``), has the signed length and head.
   ``checkpoint_file`` does the same for a checkpoint kept outside the database
   (``reconcile --checkpoint FILE``), and names each wallet whose committed entries are gone.
7. ``reversals``: every reversal names a transaction that exists, is older and is no reversal; it is
   in that transaction's currency and between the same parties the other way round (its legs, by
   check 3, are on those parties' wallets); and the reversals of a transaction add up to no more
   than its amount.
8. ``holds``: every wallet's ``held`` is the sum of ``amount - captured`` of its holds whose stored
   status is ``active``; every hold is on its payer's wallet in its currency, has
   ``0 <= captured <= amount`` (all of it once ``captured``), a status that agrees with ``closed_at``,
   and ``captured`` equal to the sum of its captures; each capture's transaction moved that amount
   from the hold's payer and wallet in its currency, no later than the hold was closed, with a leg
   that releases it from the hold; and the hold's entries in the chain add up: +amount when placed,
   -each capture in the capture's leg, -what remained when voided or expired (zero once closed).
   Entries that name no hold are reported too.

Memory stays bounded: rows are streamed with server-side cursors, only per-wallet state is kept.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial
from typing import Any, NamedTuple

from django.conf import settings
from django.db import connection, transaction
from django.utils.dateparse import parse_datetime

from audit.chain import GENESIS_HASH
from audit.receipts import transaction_hash, verify
from audit.signed import HeadsDigest, Signed, load_file, newest_valid

MAX_EXAMPLES = 20
CHUNK = 10_000
BIGINT_MAX = 2**63 - 1


@dataclass
class Check:
    name: str
    checked: int = 0
    mismatches: int = 0
    examples: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.mismatches == 0

    def fail(self, **example: Any) -> None:
        self.mismatches += 1
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append({k: _fmt(v) if isinstance(v, Decimal) else v for k, v in example.items()})


@dataclass
class Report:
    checks: list[Check]
    supply: dict[str, dict[str, str]]
    checkpoints: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checks": [{**asdict(c), "ok": c.ok} for c in self.checks],
            "supply": self.supply,
            "checkpoints": self.checkpoints,
        }


def _stream(sql: str, params: list | None = None) -> Iterator[tuple[Any, ...]]:
    """Yield rows of ``sql`` through a server-side cursor (bounded memory on PostgreSQL)."""
    if connection.vendor == "postgresql":
        connection.ensure_connection()
        with connection.connection.cursor(name="reconcile") as cursor:
            cursor.itersize = CHUNK
            cursor.execute(sql, params or [])
            yield from cursor
    else:
        with connection.cursor() as cursor:
            cursor.execute(sql, params or [])
            while rows := cursor.fetchmany(CHUNK):
                yield from rows


def _dec(value: Any) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


def _fmt(value: Decimal) -> str:
    text = f"{value:f}"
    dot = text.find(".")
    if dot != -1 and len(text) - dot == 9:  # already 8 places, as numeric(20, 8) columns arrive
        return text
    return f"{value.quantize(Decimal('0.00000001')):f}"


def _aware(value: Any) -> datetime:
    if isinstance(value, str):  # SQLite hands back naive UTC text
        value = parse_datetime(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _iso(value: Any) -> str:
    return _aware(value).isoformat()


def _uuid_text(value: Any) -> str:
    text = str(value)  # SQLite hands back a UUIDField as 32 hex digits
    return text if len(text) == 36 else f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


# datetime.isoformat() of a UTC timestamp, written by PostgreSQL (parsing 2M timestamps in Python costs
# more than the rest of the chain check): microseconds only when non-zero, offset "+00:00".
_CREATED_AT_ISO = (
    "CASE WHEN mod(extract(microseconds FROM h.created_at)::bigint, 1000000) = 0 "
    "THEN to_char(h.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS') "
    "ELSE to_char(h.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US') END || '+00:00'"
)

_CHAIN_SQL = (
    "SELECT h.wallet_id, h.id, h.seq, h.delta, h.balance_before, h.balance_after, h.prev_hash, h.entry_hash, "
    "h.created_at, t.hash, h.transaction_id, h.held_before, h.held_delta, h.held_after, h.hold_uid, "
    "h.posting, h.total_in_after, h.total_out_after, h.postings_after "
    "FROM audit_balancehistory h LEFT JOIN transactions_transaction t ON t.id = h.transaction_id "
    "ORDER BY h.wallet_id, h.seq"
)
_CHAIN_SQL_PG = _CHAIN_SQL.replace("h.created_at,", _CREATED_AT_ISO + ",")


class Cut:
    """Every wallet's chain cut where a checkpoint cut it: the length and head it committed to.

    A checkpoint of version 2 cuts at its last balance-history entry id (an entry that changes
    ``held`` alone has no transaction); one of version 1, signed before holds existed, at its last
    transaction id. Within a wallet, ids grow with the position (entries are appended under the
    wallet's lock), so either cut is a prefix of every chain.
    """

    def __init__(self, signed: Signed, *, keep: bool = False) -> None:
        self.by_entry = signed.last_entry_id is not None
        self.bound = signed.last_entry_id if signed.last_entry_id is not None else signed.last_transaction_id
        self.digest = HeadsDigest()
        self.heads: dict[int, tuple[int, str]] | None = {} if keep else None

    def add(self, wallet_id: int, length: int, head: str) -> None:
        if length:
            self.digest.add(wallet_id, length, head)
            if self.heads is not None:
                self.heads[wallet_id] = (length, head)


def _check_chains_and_balances(balances: Check, chains: Check, cuts: Sequence[Cut] = ()) -> None:
    wallets = {
        wallet_id: (_dec(balance), audit_head, entries, _dec(held), postings, _dec(total_in), _dec(total_out))
        for wallet_id, balance, audit_head, entries, held, postings, total_in, total_out in _stream(
            "SELECT id, balance, audit_head, entries, held, postings, total_in, total_out FROM wallets_wallet"
        )
    }
    seen: set[int] = set()
    current: int | None = None
    prev_hash = GENESIS_HASH
    prev_after = Decimal(0)
    prev_held = Decimal(0)
    total = Decimal(0)
    position = 0
    # The running totals as recomputed: what came in, what went out, the movements so far.
    total_in, total_out, postings = Decimal(0), Decimal(0), 0
    # Per cut: position and hash of the wallet's last entry within the cut.
    cut_state: list[tuple[int, str]] = [(0, GENESIS_HASH)] * len(cuts)

    def close_wallet(wallet_id: int) -> None:
        for cut, (length, head) in zip(cuts, cut_state, strict=True):
            cut.add(wallet_id, length, head)
        stored = wallets.get(wallet_id)
        balances.checked += 1
        if stored is None:
            balances.fail(wallet_id=wallet_id, problem="history for a wallet that does not exist")
            return
        balance, head, entries, held, stored_postings, stored_in, stored_out = stored
        if (
            balance != total
            or balance != prev_after
            or head != prev_hash
            or entries != position
            or held != prev_held
            or stored_postings != postings
            or (stored_in, stored_out) != (total_in, total_out)
        ):
            balances.fail(
                wallet_id=wallet_id,
                balance=balance,
                history_sum=total,
                last_balance_after=prev_after,
                audit_head_matches=head == prev_hash,
                entries=entries,
                history_rows=position,
                held=held,
                last_held_after=prev_held,
                postings=stored_postings,
                history_movements=postings,
                totals_match=(stored_in, stored_out) == (total_in, total_out),
            )

    rows = _stream(_CHAIN_SQL_PG if connection.vendor == "postgresql" else _CHAIN_SQL)
    for (
        wallet_id, entry_id, seq, delta, before, after, prev, entry, created_at, tx_hash, tx_id,
        held_before, held_delta, held_after, hold_uid, posting, stored_in, stored_out, stored_postings,
    ) in rows:  # fmt: skip
        delta, before, after = _dec(delta), _dec(before), _dec(after)
        held_before, held_delta, held_after = _dec(held_before), _dec(held_delta), _dec(held_after)
        if wallet_id != current:
            if current is not None:
                close_wallet(current)
            current, prev_hash, prev_after, total, position = wallet_id, GENESIS_HASH, Decimal(0), Decimal(0), 0
            prev_held = Decimal(0)
            total_in, total_out, postings = Decimal(0), Decimal(0), 0
            cut_state = [(0, GENESIS_HASH)] * len(cuts)
            seen.add(wallet_id)
        chains.checked += 1
        position += 1
        created = created_at if isinstance(created_at, str) and "T" in created_at else _iso(created_at)
        parts = [prev, str(wallet_id), tx_hash or "", _fmt(delta), _fmt(before), _fmt(after), created]
        if held_before or held_delta or held_after or hold_uid:  # as audit.chain.entry_hash hashes them
            uid = _uuid_text(hold_uid) if hold_uid else ""
            parts += ["held", _fmt(held_before), _fmt(held_delta), _fmt(held_after), uid]
        recomputed = hashlib.sha256("|".join(parts).encode()).hexdigest()
        if delta > 0:
            total_in += delta
        else:
            total_out -= delta
        if tx_id is not None:
            postings += 1
        posting_ok = posting == (postings if tx_id is not None else None)
        # (None, a total missing, never equals a Decimal: reported like a wrong one)
        totals_ok = (
            stored_in is not None
            and stored_out is not None
            and (_dec(stored_in), _dec(stored_out), stored_postings) == (total_in, total_out, postings)
        )
        if (
            prev != prev_hash
            or before != prev_after
            or recomputed != entry
            or before + delta != after
            or seq != position
            or held_before != prev_held
            or held_before + held_delta != held_after
            or not posting_ok
            or not totals_ok
        ):
            chains.fail(
                wallet_id=wallet_id,
                entry_id=entry_id,
                link_ok=prev == prev_hash,
                hash_ok=recomputed == entry,
                continuity_ok=before == prev_after and held_before == prev_held,
                seq_ok=seq == position,
                posting_ok=posting_ok,
                totals_ok=totals_ok,
            )
        prev_hash, prev_after, prev_held, total = entry, after, held_after, total + delta
        for index, cut in enumerate(cuts):
            key = entry_id if cut.by_entry else tx_id
            if key is not None and key <= cut.bound:
                cut_state[index] = (position, entry)
    if current is not None:
        close_wallet(current)
    for wallet_id, (balance, head, entries, held, stored_postings, stored_in, stored_out) in wallets.items():
        if wallet_id not in seen:
            balances.checked += 1
            if (
                balance != 0
                or head != GENESIS_HASH
                or entries != 0
                or held != 0
                or stored_postings != 0
                or stored_in != 0
                or stored_out != 0
            ):
                balances.fail(wallet_id=wallet_id, balance=balance, history_sum=Decimal(0), problem="no history")


# One pass over every transaction with its legs and their wallets (the wallet table is small: a hash
# join). Besides the legs' number and amounts, whose wallet each leg is on and in which currency: the
# owner and currency are not in the hashed material, so only this catches a wallet that was handed to
# another user (or moved to another currency) together with its history.
_LEGS_SQL = """
SELECT id, type, amount, from_wallet_id, to_wallet_id, legs, debit_ok, credit_ok, bad_owner FROM (
    SELECT t.id, t.type, t.amount, t.from_wallet_id, t.to_wallet_id,
           COUNT(h.id) AS legs,
           COALESCE(SUM(CASE WHEN h.wallet_id = t.from_wallet_id AND h.delta = -t.amount THEN 1 ELSE 0 END), 0)
               AS debit_ok,
           COALESCE(SUM(CASE WHEN h.wallet_id = t.to_wallet_id AND h.delta = t.amount THEN 1 ELSE 0 END), 0)
               AS credit_ok,
           COALESCE(SUM(CASE WHEN h.id IS NOT NULL AND (
               (h.wallet_id IS DISTINCT FROM t.from_wallet_id AND h.wallet_id IS DISTINCT FROM t.to_wallet_id)
               OR w.currency_id <> t.currency_id OR h.user_id <> w.user_id
               OR (h.wallet_id = t.from_wallet_id AND w.user_id IS DISTINCT FROM t.from_user_id)
               OR (h.wallet_id = t.to_wallet_id AND w.user_id IS DISTINCT FROM t.to_user_id)) THEN 1 ELSE 0 END), 0)
               AS bad_owner
    FROM transactions_transaction t LEFT JOIN audit_balancehistory h ON h.transaction_id = t.id
    LEFT JOIN wallets_wallet w ON w.id = h.wallet_id
    GROUP BY t.id, t.type, t.amount, t.from_wallet_id, t.to_wallet_id
) per_transaction
WHERE legs <> (CASE WHEN type = 'transfer' THEN 2
                    WHEN type = 'reversal' THEN (CASE WHEN from_wallet_id IS NULL THEN 0 ELSE 1 END)
                                                + (CASE WHEN to_wallet_id IS NULL THEN 0 ELSE 1 END)
                    ELSE 1 END)
    OR debit_ok <> (CASE WHEN from_wallet_id IS NULL THEN 0 ELSE 1 END)
    OR credit_ok <> (CASE WHEN to_wallet_id IS NULL THEN 0 ELSE 1 END)
    OR bad_owner > 0
"""

# The legs of one flagged transaction, to say what is wrong with each (run for the examples only).
_LEG_OWNERS_SQL = """
SELECT h.id, h.wallet_id,
       CASE WHEN h.wallet_id = t.from_wallet_id THEN 'sender'
            WHEN h.wallet_id = t.to_wallet_id THEN 'recipient' END,
       w.user_id, h.user_id,
       CASE WHEN h.wallet_id = t.from_wallet_id THEN t.from_user_id
            WHEN h.wallet_id = t.to_wallet_id THEN t.to_user_id END,
       w.currency_id = t.currency_id
FROM audit_balancehistory h
JOIN transactions_transaction t ON t.id = h.transaction_id
JOIN wallets_wallet w ON w.id = h.wallet_id
WHERE h.transaction_id = %s ORDER BY h.id
"""


def _check_legs(legs: Check) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM transactions_transaction")
        legs.checked = cursor.fetchone()[0]
        # SQLite keeps money as fixed-width text (currencies/money_field.py): negate by spelling.
        cursor.execute(
            _LEGS_SQL if connection.vendor == "postgresql" else _LEGS_SQL.replace("-t.amount", "'-' || t.amount")
        )
        flagged = cursor.fetchall()
        for tx_id, tx_type, amount, from_wallet, to_wallet, count, debit_ok, credit_ok, bad_owner in flagged:
            debits, credits = (0 if from_wallet is None else 1), (0 if to_wallet is None else 1)
            expected = {"transfer": 2, "reversal": debits + credits}.get(tx_type, 1)
            if count != expected or debit_ok != debits or credit_ok != credits:
                legs.fail(
                    transaction_id=tx_id,
                    from_wallet_id=from_wallet,
                    to_wallet_id=to_wallet,
                    type=tx_type,
                    amount=_dec(amount),
                    legs=count,
                    debit_ok=bool(debit_ok),
                    credit_ok=bool(credit_ok),
                )
            if not bad_owner:
                continue
            if len(legs.examples) >= MAX_EXAMPLES:
                legs.mismatches += bad_owner
                continue
            cursor.execute(_LEG_OWNERS_SQL, [tx_id])
            for entry_id, wallet_id, party, owner, history_user, party_user, currency_ok in cursor.fetchall():
                if party is None:
                    problem = "leg on a wallet that is not a party"
                elif not currency_ok:
                    problem = "leg on a wallet in another currency than the transaction"
                elif owner != party_user:
                    problem = f"leg's wallet does not belong to the transaction's {party}"
                elif history_user != owner:
                    problem = "history row's user is not the wallet's owner"
                else:
                    continue
                legs.fail(
                    entry_id=entry_id,
                    transaction_id=tx_id,
                    wallet_id=wallet_id,
                    wallet_owner=owner,
                    party_user_id=party_user,
                    history_user_id=history_user,
                    problem=problem,
                )


# Every reversal with its original, grouped by original. A LEFT JOIN: the foreign key is a trigger,
# which a superuser can switch off. ``reverses_id`` is set on reversals and only on them (a CHECK
# constraint, which no session setting lifts), so its index finds them without a scan of the table.
_REVERSALS_SQL = """
SELECT r.id, r.reverses_id, r.amount, r.currency_id, r.from_user_id, r.to_user_id, r.from_wallet_id, r.to_wallet_id,
       o.id, o.type, o.amount, o.currency_id, o.from_user_id, o.to_user_id, o.from_wallet_id, o.to_wallet_id
FROM transactions_transaction r LEFT JOIN transactions_transaction o ON o.id = r.reverses_id
WHERE r.reverses_id IS NOT NULL
ORDER BY r.reverses_id, r.id
"""


def _check_reversals(reversals: Check) -> None:
    """Each reversal against its original (check 7), and the reversals of each original against its amount."""
    current: int | None = None
    limit: Decimal | None = None  # the current original's amount (None: no such transaction)
    taken = Decimal(0)

    def close_original() -> None:
        if current is not None and limit is not None and taken > limit:
            reversals.fail(
                original_id=current, original_amount=limit, reversed=taken, problem="reversals exceed the original"
            )

    for (
        tx_id, original_id, amount, currency_id, from_user, to_user, from_wallet, to_wallet,
        found_id, original_type, original_amount, original_currency, original_from_user, original_to_user,
        original_from_wallet, original_to_wallet,
    ) in _stream(_REVERSALS_SQL):  # fmt: skip
        reversals.checked += 1
        if original_id != current:
            close_original()
            current, taken = original_id, Decimal(0)
            limit = None if found_id is None else _dec(original_amount)
        taken += _dec(amount)
        if found_id is None:
            problem = "reversal of a transaction that does not exist"
        elif original_type == "reversal":
            problem = "reversal of a reversal"
        elif found_id >= tx_id:
            problem = "reversal older than its original"
        elif currency_id != original_currency:
            problem = "reversal in another currency than its original"
        elif (from_user, to_user, from_wallet, to_wallet) != (
            original_to_user, original_from_user, original_to_wallet, original_from_wallet
        ):  # fmt: skip
            problem = "reversal does not move money between its original's parties the other way round"
        else:
            continue
        reversals.fail(reversal_id=tx_id, original_id=original_id, problem=problem)
    close_original()


class SupplyRow(NamedTuple):
    """One currency's supply: its wallets' balances and the movements that brought money in or out."""

    code: str
    balances: Decimal
    held: Decimal  # reported beside the supply, not part of it (held money is still in the balances)
    deposits: Decimal
    withdrawals: Decimal
    deposits_reversed: Decimal  # reversals without recipient: a deposit's, money leaving
    withdrawals_reversed: Decimal  # reversals without sender: a withdrawal's, money entering

    @property
    def expected(self) -> Decimal:
        return self.deposits - self.withdrawals - self.deposits_reversed + self.withdrawals_reversed


# The movement totals a checkpoint commits to, up to its last id. Checkpoints signed before reversals
# existed carry only the first two: each is checked against the totals it has.
MOVEMENT_TOTALS = ("deposits", "withdrawals", "deposits_reversed", "withdrawals_reversed")


def _supply_rows(up_to_transaction_id: int | None = None) -> list[SupplyRow]:
    """Per currency: sum of balances, of ``held`` and of each kind of movement (up to a transaction id, if given).

    A reversal counts by its shape, which is what moves money in or out: without recipient it takes a
    deposit back, without sender a withdrawal (a transfer's has both and changes no supply). That the
    shape is its original's, mirrored, is the ``reversals`` check's.
    """
    cut = BIGINT_MAX if up_to_transaction_id is None else up_to_transaction_id
    if connection.vendor != "postgresql":
        # SQLite sums NUMERIC columns as floats; add exactly in Python instead (local databases are small).
        # Plain SQL like the rest of reconcile: the auditor reads the tables, not the ledger's models.
        balances: dict[int, Decimal] = {}
        held: dict[int, Decimal] = {}
        totals: dict[tuple[int, str], Decimal] = {}
        for currency_id, balance, wallet_held in _stream("SELECT currency_id, balance, held FROM wallets_wallet"):
            balances[currency_id] = balances.get(currency_id, Decimal(0)) + _dec(balance)
            held[currency_id] = held.get(currency_id, Decimal(0)) + _dec(wallet_held)
        for currency_id, tx_type, amount, from_wallet, to_wallet in _stream(
            "SELECT currency_id, type, amount, from_wallet_id, to_wallet_id FROM transactions_transaction "
            "WHERE type IN ('deposit', 'withdrawal', 'reversal') AND id <= %s",
            [cut],
        ):
            if tx_type == "reversal":
                if from_wallet is not None and to_wallet is not None:
                    continue
                tx_type = "deposits_reversed" if to_wallet is None else "withdrawals_reversed"
            else:
                tx_type += "s"
            totals[currency_id, tx_type] = totals.get((currency_id, tx_type), Decimal(0)) + _dec(amount)
        return [
            SupplyRow(
                code,
                balances.get(cid, Decimal(0)),
                held.get(cid, Decimal(0)),
                *(totals.get((cid, key), Decimal(0)) for key in MOVEMENT_TOTALS),
            )
            for cid, code in _stream("SELECT id, code FROM currencies_currency ORDER BY id")
        ]
    with connection.cursor() as cursor:
        # One scan of the transactions for every currency and every kind of movement (a subquery per
        # currency and type read the table eight times).
        cursor.execute(
            """
            SELECT c.code, COALESCE(w.total, 0), COALESCE(w.held, 0), COALESCE(t.deposits, 0),
                   COALESCE(t.withdrawals, 0), COALESCE(t.deposits_reversed, 0), COALESCE(t.withdrawals_reversed, 0)
            FROM currencies_currency c
            LEFT JOIN (
                SELECT currency_id, SUM(balance) AS total, SUM(held) AS held FROM wallets_wallet GROUP BY currency_id
            ) w ON w.currency_id = c.id
            LEFT JOIN (
                SELECT currency_id,
                       SUM(amount) FILTER (WHERE type = 'deposit') AS deposits,
                       SUM(amount) FILTER (WHERE type = 'withdrawal') AS withdrawals,
                       SUM(amount) FILTER (WHERE type = 'reversal' AND to_wallet_id IS NULL) AS deposits_reversed,
                       SUM(amount) FILTER (WHERE type = 'reversal' AND from_wallet_id IS NULL) AS withdrawals_reversed
                FROM transactions_transaction
                WHERE type IN ('deposit', 'withdrawal', 'reversal') AND id <= %s
                GROUP BY currency_id
            ) t ON t.currency_id = c.id
            ORDER BY c.id
            """,
            [cut],
        )
        return [SupplyRow(*row) for row in cursor.fetchall()]


def supply_totals(up_to_transaction_id: int | None = None) -> dict[str, dict[str, str]]:
    """Per currency code: balances, held and the movement totals (``MOVEMENT_TOTALS``) as 8-place strings."""
    return {
        row.code: {
            "balances": _fmt(_dec(row.balances)),
            "held": _fmt(_dec(row.held)),
            **{key: _fmt(_dec(getattr(row, key))) for key in MOVEMENT_TOTALS},
        }
        for row in _supply_rows(up_to_transaction_id)
    }


def _check_supply(supply: Check) -> dict[str, dict[str, str]]:
    result = {}
    for raw in _supply_rows():
        row = SupplyRow(raw.code, *(_dec(value) for value in raw[1:]))
        supply.checked += 1
        result[row.code] = {
            "balances": _fmt(row.balances),
            "held": _fmt(row.held),
            **{key: _fmt(getattr(row, key)) for key in MOVEMENT_TOTALS},
            "expected": _fmt(row.expected),
        }
        if row.balances != row.expected:
            supply.fail(currency=row.code, balances=row.balances, expected=row.expected)
    return result


# -- holds --------------------------------------------------------------------------------------------
# The holds app's tables, read by SQL like the rest: audit sits below holds and imports none of its
# models. Money is summed by the database (SUM on PostgreSQL; money_sum on SQLite, which adds the
# fixed-width texts as Decimals: currencies/money_field.py) and compared in Python, where both
# backends' values are Decimals. ``held_delta < 0`` is exact on SQLite too: a negative spelling
# starts with "-", which sorts below every digit.

_HELD_BY_WALLET_SQL = """
SELECT w.id, w.held, COALESCE(a.holds, 0), a.amount, a.captured
FROM wallets_wallet w
LEFT JOIN (
    SELECT wallet_id, COUNT(*) AS holds, SUM(amount) AS amount, SUM(captured) AS captured
    FROM holds_hold WHERE status = 'active' GROUP BY wallet_id
) a ON a.wallet_id = w.id
ORDER BY w.id
"""

# One row per hold with its captures and its entries in the chain (reservation, release, capture legs),
# then one per hold uid that entries name and no hold has.
_HOLDS_SQL = """
WITH entries AS (
    SELECT hold_uid,
           COUNT(CASE WHEN transaction_id IS NULL AND NOT held_delta < 0 THEN 1 END) AS reservations,
           SUM(CASE WHEN transaction_id IS NULL AND NOT held_delta < 0 THEN held_delta END) AS reserved,
           COUNT(CASE WHEN transaction_id IS NULL AND held_delta < 0 THEN 1 END) AS releases,
           SUM(CASE WHEN transaction_id IS NULL AND held_delta < 0 THEN held_delta END) AS released,
           COUNT(transaction_id) AS legs,
           SUM(CASE WHEN transaction_id IS NOT NULL THEN held_delta END) AS by_legs,
           MIN(wallet_id) AS wallet_low, MAX(wallet_id) AS wallet_high
    FROM audit_balancehistory WHERE hold_uid IS NOT NULL GROUP BY hold_uid
), captures AS (
    SELECT hold_id, COUNT(*) AS captures, SUM(amount) AS total FROM holds_holdcapture GROUP BY hold_id
)
SELECT h.id, h.uid, h.status, h.wallet_id, w.user_id = h.payer_id AND w.currency_id = h.currency_id,
       h.amount, h.captured, h.closed_at, COALESCE(c.captures, 0), c.total,
       COALESCE(e.reservations, 0), e.reserved, COALESCE(e.releases, 0), e.released, COALESCE(e.legs, 0), e.by_legs,
       e.wallet_low, e.wallet_high
FROM holds_hold h
LEFT JOIN wallets_wallet w ON w.id = h.wallet_id
LEFT JOIN captures c ON c.hold_id = h.id
LEFT JOIN entries e ON e.hold_uid = h.uid
UNION ALL
SELECT NULL, e.hold_uid, NULL, NULL, NULL, NULL, NULL, NULL, 0, NULL,
       e.reservations, e.reserved, e.releases, e.released, e.legs, e.by_legs, e.wallet_low, e.wallet_high
FROM entries e WHERE NOT EXISTS (SELECT 1 FROM holds_hold h WHERE h.uid = e.hold_uid)
ORDER BY 1
"""

# Every capture with its transaction and the transaction's leg on the hold's wallet.
_CAPTURES_SQL = """
SELECT hc.id, hc.hold_id, hc.amount, hc.transaction_id, t.id, t.amount, t.from_wallet_id, t.from_user_id,
       t.currency_id, t.created_at, h.uid, h.wallet_id, h.payer_id, h.currency_id, h.closed_at,
       leg.id, leg.hold_uid, leg.held_delta
FROM holds_holdcapture hc
JOIN holds_hold h ON h.id = hc.hold_id
LEFT JOIN transactions_transaction t ON t.id = hc.transaction_id
LEFT JOIN audit_balancehistory leg ON leg.transaction_id = hc.transaction_id AND leg.wallet_id = h.wallet_id
ORDER BY hc.id
"""

HOLD_STATUSES = ("active", "captured", "voided", "expired")


def _money_sql(sql: str) -> str:
    return sql if connection.vendor == "postgresql" else sql.replace("SUM(", "money_sum(")


def _money_or_zero(value: Any) -> Decimal:
    return Decimal(0) if value is None else _dec(value)


def _check_holds(holds: Check) -> None:
    """What the wallets keep back is what their active holds keep back, and every hold adds up: its
    captures, their transactions and legs, and its entries in the chain (+amount when placed, -what
    remained when voided or expired, -each capture in the capture's leg)."""
    for wallet_id, held, count, amount, captured in _stream(_money_sql(_HELD_BY_WALLET_SQL)):
        holds.checked += 1
        held, remaining = _dec(held), _money_or_zero(amount) - _money_or_zero(captured)
        if held != remaining:
            holds.fail(
                wallet_id=wallet_id,
                problem="wallet's held is not what its active holds keep back",
                held=held,
                active_holds_remaining=remaining,
                active_holds=count,
            )
    for row in _stream(_money_sql(_HOLDS_SQL)):
        (hold_id, uid, status, wallet_id, wallet_ok, amount, captured, closed_at, captures, captures_total,
         reservations, reserved, releases, released, legs, by_legs, wallet_low, wallet_high) = row  # fmt: skip
        reserved, released, by_legs = _money_or_zero(reserved), _money_or_zero(released), _money_or_zero(by_legs)
        if hold_id is None:
            holds.fail(
                hold_uid=_uuid_text(uid),
                wallet_id=wallet_low,
                problem="chain entries name a hold that does not exist",
                held_in_chain=reserved + released + by_legs,
                entries=reservations + releases + legs,
            )
            continue
        holds.checked += 1
        amount, captured, captures_total = _dec(amount), _dec(captured), _money_or_zero(captures_total)
        fail = partial(holds.fail, hold_id=hold_id, status=status)
        if status not in HOLD_STATUSES:
            fail(problem="hold has an unknown status")
        if (status == "active") != (closed_at is None):
            fail(problem="hold's status and closed_at disagree", closed_at=closed_at and _iso(closed_at))
        if not wallet_ok:
            fail(problem="hold's wallet is not its payer's wallet in its currency", wallet_id=wallet_id)
        if not Decimal(0) <= captured <= amount:
            fail(problem="hold captured more than its amount (or less than nothing)", amount=amount, captured=captured)
        if status == "captured" and captured != amount:
            fail(problem="hold is captured but not in full", amount=amount, captured=captured)
        if captured != captures_total:
            fail(
                problem="hold's captured is not the sum of its captures",
                captured=captured,
                captures_total=captures_total,
                captures=captures,
            )
        if reservations != 1 or reserved != amount:
            fail(
                problem="the chain does not reserve the hold's amount once",
                amount=amount,
                reserved_in_chain=reserved,
                reservations=reservations,
            )
        if legs != captures or by_legs != -captured:
            fail(
                problem="the chain's capture legs do not release what the hold captured",
                captured=captured,
                released_by_legs=-by_legs,
                legs=legs,
                captures=captures,
            )
        # Once the hold is closed its entries cancel out; while it is active they keep back what remains.
        in_chain = reserved + released + by_legs
        expected = amount - captured if status == "active" else Decimal(0)
        if in_chain != expected or releases > (0 if status in ("active", "captured") else 1):
            fail(
                problem="the hold's entries in the chain do not add up to what it keeps back",
                held_in_chain=in_chain,
                expected=expected,
                released_in_chain=-released,
                releases=releases,
            )
        if legs + reservations + releases and (wallet_low != wallet_id or wallet_high != wallet_id):
            fail(problem="the hold's chain entries are on another wallet than the hold's", wallet_id=wallet_id)
    for row in _stream(_CAPTURES_SQL):
        (capture_id, hold_id, amount, tx_id, found_tx, tx_amount, from_wallet, from_user, tx_currency, tx_created,
         uid, wallet_id, payer_id, currency_id, closed_at, leg_id, leg_hold_uid, leg_held_delta) = row  # fmt: skip
        holds.checked += 1
        amount = _dec(amount)
        problems = []
        if found_tx is None:
            problems.append("capture's transaction does not exist")
        else:
            if _dec(tx_amount) != amount:
                problems.append("capture's transaction moved another amount")
            if from_wallet != wallet_id or from_user != payer_id:
                problems.append("capture's transaction is not from the hold's payer and wallet")
            if tx_currency != currency_id:
                problems.append("capture's transaction is in another currency than the hold")
            if closed_at is not None and _aware(tx_created) > _aware(closed_at):
                problems.append("capture's transaction is later than the hold was closed")
        if leg_id is None or leg_hold_uid is None or _uuid_text(leg_hold_uid) != _uuid_text(uid):
            problems.append("capture's transaction has no leg on the hold's wallet that names the hold")
        elif _dec(leg_held_delta) != -amount:
            problems.append("capture's leg does not release the captured amount from held")
        for problem in problems:
            holds.fail(capture_id=capture_id, hold_id=hold_id, transaction_id=tx_id, problem=problem, amount=amount)


def _check_receipts(receipts: Check, after_transaction_id: int = 0, up_to_transaction_id: int = BIGINT_MAX) -> None:
    # A reversal's hash covers its original's (the subquery runs for reversals only: CASE short-circuits).
    rows = _stream(
        "SELECT t.id, t.uid, t.type, t.from_user_id, t.to_user_id, c.code, t.amount, t.memo, t.created_at, "
        "t.hash, t.signature, CASE WHEN t.reverses_id IS NULL THEN NULL ELSE "
        "(SELECT o.hash FROM transactions_transaction o WHERE o.id = t.reverses_id) END "
        "FROM transactions_transaction t JOIN currencies_currency c ON c.id = t.currency_id "
        "WHERE t.id > %s AND t.id <= %s ORDER BY t.id",
        [after_transaction_id, up_to_transaction_id],
    )
    for tx_id, uid, tx_type, from_user, to_user, code, amount, memo, created_at, tx_hash, signature, reverses in rows:
        receipts.checked += 1
        created_at = _aware(created_at)
        uid_text = str(uid) if len(str(uid)) == 36 else f"{uid[:8]}-{uid[8:12]}-{uid[12:16]}-{uid[16:20]}-{uid[20:]}"
        recomputed = transaction_hash(
            uid=uid_text,
            type=tx_type,
            from_user_id=from_user,
            to_user_id=to_user,
            currency=code,
            amount=_dec(amount),
            memo=memo,
            created_at=created_at,
            reverses=reverses,
        )
        if recomputed != tx_hash or not verify(tx_hash, signature):
            receipts.fail(transaction_id=tx_id, hash_ok=recomputed == tx_hash)


def _check_checkpoint(check: Check, signed: Signed, cut: Cut, file_heads: list[tuple[int, int, str]] | None) -> None:
    """Prove that what ``signed`` committed to is still in the database (``cut`` streamed the chains)."""
    fields = signed.fields
    last_id = signed.last_transaction_id
    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM transactions_transaction WHERE id <= %s", [last_id])
        count = cursor.fetchone()[0]
        cursor.execute("SELECT COUNT(*) FROM wallets_wallet")
        wallets = cursor.fetchone()[0]
    check.checked += 1
    if count != fields["transaction_count"]:
        check.fail(
            problem="transactions up to the checkpoint's last id were deleted or inserted",
            last_transaction_id=last_id,
            committed=fields["transaction_count"],
            found=count,
        )
    check.checked += 1
    if wallets < fields["wallet_count"]:
        check.fail(problem="wallets were deleted", committed=fields["wallet_count"], found=wallets)
    now = supply_totals(last_id)
    for code, committed in fields["supply"].items():
        check.checked += 1
        found = now.get(code, {})
        for key in (key for key in MOVEMENT_TOTALS if key in committed):
            if found.get(key) != committed[key]:
                check.fail(
                    problem=f"{key} up to the checkpoint changed",
                    currency=code,
                    committed=committed[key],
                    found=found.get(key),
                )
    check.checked += 1
    if file_heads is not None:
        heads = cut.heads or {}
        for wallet_id, length, head in file_heads:
            check.checked += 1
            found_length, found_head = heads.get(wallet_id, (0, GENESIS_HASH))
            if (found_length, found_head) != (length, head):
                check.fail(
                    problem="entries the checkpoint committed to are missing or changed",
                    wallet_id=wallet_id,
                    committed_length=length,
                    found_length=found_length,
                    head_matches=found_head == head,
                )
    if cut.digest.hexdigest() != fields["heads_digest"] or cut.digest.wallets != fields["wallets_with_history"]:
        check.fail(
            problem="chain heads at the checkpoint differ (an entry it covered was deleted or rewritten)",
            committed_wallets=fields["wallets_with_history"],
            found_wallets=cut.digest.wallets,
        )


def _describe(signed: Signed) -> dict[str, Any]:
    fields = signed.fields
    return {
        "uid": fields["uid"],
        "version": signed.version,
        "created_at": fields["created_at"],
        "last_transaction_id": fields["last_transaction_id"],
        "last_entry_id": signed.last_entry_id,
        "transaction_count": fields["transaction_count"],
    }


def reconcile(*, verify_receipts: bool = False, checkpoint_file: str | None = None) -> Report:
    """Run every check in one snapshot; ``checkpoint_file`` adds the proof against a kept checkpoint.

    Raises ``audit.signed.CheckpointError`` when the file cannot be read or its signature fails.
    """
    file_signed, file_heads = load_file(checkpoint_file) if checkpoint_file else (None, None)
    balances, chains, legs, supply = Check("balances"), Check("chains"), Check("legs"), Check("supply")
    receipts, stored = Check("receipts"), Check("checkpoint")
    reversals, holds = Check("reversals"), Check("holds")
    checks = [balances, chains, legs, supply, receipts, stored, reversals, holds]
    checkpoints: dict[str, Any] = {}
    outermost = not connection.in_atomic_block
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                if outermost:  # one snapshot for every check, even while transfers go on
                    cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                # A full audit is a long read: lift the request-sized timeouts for this transaction only.
                cursor.execute("SET LOCAL statement_timeout = 0")
                cursor.execute("SET LOCAL idle_in_transaction_session_timeout = 0")
                # The chain stream sorts and the legs check aggregates millions of rows: in memory
                # rather than in temporary files (this transaction only; the server's memory, not ours).
                cursor.execute("SELECT set_config('work_mem', %s, true)", [settings.RECONCILE_WORK_MEM])
                # The chain stream is a server-side cursor, which PostgreSQL plans for its first 10 %
                # of rows: a nested loop in (wallet, seq) index order with a lookup per entry, twice
                # the server CPU of hashing and sorting at 2M entries. Every row is read: plan for all.
                cursor.execute("SET LOCAL cursor_tuple_fraction = 1")
        # After the snapshot is taken: a checkpoint written while this runs is not half-seen.
        db_signed, invalid = newest_valid()
        for pk in invalid:
            stored.fail(checkpoint_id=pk, problem="checkpoint row's signature does not verify")
        cuts: list[Cut] = []
        if db_signed is not None:
            db_cut = Cut(db_signed)
            cuts.append(db_cut)
            checkpoints["database"] = _describe(db_signed)
        if file_signed is not None:
            file_cut = Cut(file_signed, keep=True)
            cuts.append(file_cut)
            checkpoints["file"] = _describe(file_signed)
        _check_chains_and_balances(balances, chains, cuts)
        _check_legs(legs)
        _check_reversals(reversals)
        totals = _check_supply(supply)
        _check_holds(holds)
        if db_signed is not None:
            _check_checkpoint(stored, db_signed, db_cut, None)
        if file_signed is not None:
            from_file = Check("checkpoint_file")
            _check_checkpoint(from_file, file_signed, file_cut, file_heads)
            checks.append(from_file)
        # Signatures since the newest trusted checkpoint: everything before it is covered by the
        # checkpoint checks above (count, supply and chain heads up to its last id).
        trusted = [signed.last_transaction_id for signed in (db_signed, file_signed) if signed is not None]
        since = 0 if verify_receipts or not trusted else max(trusted)
        _check_receipts(receipts, after_transaction_id=since)
        checkpoints["receipts_verified_after_transaction_id"] = since
    return Report(checks=checks, supply=totals, checkpoints=checkpoints)
