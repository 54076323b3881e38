"""Signed ledger checkpoints: the chains' heads anchored outside the database.

A hash chain proves that nothing *inside* it was changed, but a database superuser can rewind a
wallet to its previous entry and delete the newest one (with its transaction, or the hold it
placed): what remains is a shorter, perfectly valid chain. A checkpoint commits, under the receipt
key, to every wallet's chain length and head, the last transaction id and the number of
transactions up to it, the last balance-history entry id, and the per-currency supply (balances
and ``held``; deposits and withdrawals up to the last transaction). Kept outside the database (the
``--out`` file, the published event), it lets ``reconcile --checkpoint FILE`` prove that everything
it covered is still there: every chain cut at the last entry id has the committed length and head.
Entries that change ``held`` alone have no transaction, which is why the cut is by entry id (payload
version 2); checkpoints of version 1 cut at the last transaction id and are still verified that way
(``audit.signed``).

The routine ``reconcile`` uses the newest validly signed checkpoint in the database to verify
receipt signatures only for the transactions after it (see ``audit.reconcile``).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import OperationalError, connection, transaction

from audit import receipts
from audit.models import Checkpoint
from audit.reconcile import MOVEMENT_TOTALS, Check, _check_receipts, supply_totals
from audit.signed import CHECKPOINT_VERSION, CheckpointError, HeadsDigest, Signed, canonical, heads_digest, newest_valid
from events.outbox import outbox_insert, publish_on_commit
from events.schemas import checkpoint_v1

logger = logging.getLogger(__name__)

# pg_advisory_lock key of the checkpoint command (any constant no other code uses).
ADVISORY_LOCK = int.from_bytes(hashlib.sha256(b"wallet:ledger-checkpoint").digest()[:7], "big")
DEADLOCK_DETECTED = "40P01"
SNAPSHOT_ATTEMPTS = 3


def _heads() -> list[tuple[int, int, str]]:
    """Every wallet with history: its chain length and the hash of the entry at that position."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT w.id, w.entries, w.audit_head, h.entry_hash FROM wallets_wallet w "
            "LEFT JOIN audit_balancehistory h ON h.wallet_id = w.id AND h.seq = w.entries "
            "WHERE w.entries > 0 ORDER BY w.id"
        )
        rows = cursor.fetchall()
    broken = [wallet_id for wallet_id, _, audit_head, entry in rows if entry is None or entry != audit_head]
    if broken:
        # Signing a state that does not add up would make it look vouched for.
        raise CheckpointError(f"wallet heads do not match their history (run reconcile): wallets {broken[:20]}")
    return [(wallet_id, entries, entry) for wallet_id, entries, _, entry in rows]


def _snapshot() -> tuple[dict[str, Any], list[tuple[int, int, str]]]:
    """The checkpoint's fields and heads, read in one snapshot with every write to the chains held back.

    On PostgreSQL the transaction and balance-history tables are locked in SHARE mode before the
    snapshot is taken: that waits for the writers in flight to commit (money movements, and changes
    of ``held`` alone, which write history but no transaction) and holds new ones back until this
    (short, read only) transaction ends. Without it a row with a smaller id could commit after the
    snapshot (ids are taken at insert, not at commit), and "everything up to the last id" would not
    be what the checkpoint saw.
    """
    outermost = not connection.in_atomic_block
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                if outermost:  # LOCK is not a query: the snapshot is taken after it, with the lock held
                    cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                # Movements lock both tables at once (one statement writes the transaction and its
                # legs), in this order; see ``_snapshot_retrying`` for the one writer that does not.
                cursor.execute("LOCK TABLE transactions_transaction, audit_balancehistory IN SHARE MODE")
        with connection.cursor() as cursor:
            cursor.execute("SELECT COUNT(*), COALESCE(MAX(id), 0) FROM transactions_transaction")
            count, last_id = cursor.fetchone()
            cursor.execute("SELECT COALESCE(MAX(id), 0) FROM audit_balancehistory")
            (last_entry_id,) = cursor.fetchone()
            cursor.execute("SELECT COUNT(*) FROM wallets_wallet")  # (SQL: audit reads no ledger model)
            (wallet_count,) = cursor.fetchone()
        heads = _heads()
        fields = {
            "v": CHECKPOINT_VERSION,
            "uid": str(uuid.uuid4()),
            "created_at": datetime.now(UTC).isoformat(),
            "last_transaction_id": int(last_id),
            "transaction_count": int(count),
            "last_entry_id": int(last_entry_id),
            "wallet_count": int(wallet_count),
            "heads_digest": heads_digest(heads),
            "wallets_with_history": len(heads),
            # Balances and held only: the movements up to the last id cannot change once the lock is
            # gone, so their totals (a scan of every transaction) are added after it is released.
            "supply": {
                code: {"balances": totals["balances"], "held": totals["held"]}
                for code, totals in supply_totals(0).items()
            },
        }
    return fields, heads


def _snapshot_retrying() -> tuple[dict[str, Any], list[tuple[int, int, str]]]:
    """``_snapshot``, taken again when PostgreSQL chose it to break a deadlock.

    A spend that finds its money kept back by expired holds releases them first (balance history)
    and writes its transaction after: if the snapshot locked the transactions in between, each
    waits for the other. The snapshot writes nothing, so it can simply start over.
    """
    for attempt in range(1, SNAPSHOT_ATTEMPTS + 1):
        try:
            return _snapshot()
        except OperationalError as exc:
            retryable = getattr(exc.__cause__, "sqlstate", None) == DEADLOCK_DETECTED
            if not retryable or attempt == SNAPSHOT_ATTEMPTS or connection.in_atomic_block:
                raise
            logger.warning("checkpoint snapshot deadlocked with a writer; taking it again", extra={"attempt": attempt})
    raise AssertionError("unreachable")


_HEADS_AT_SQL = (
    "SELECT h.wallet_id, h.seq, h.entry_hash FROM audit_balancehistory h JOIN ("
    " SELECT wallet_id, MAX(seq) AS seq FROM audit_balancehistory WHERE {within} GROUP BY wallet_id"
    ") cut ON cut.wallet_id = h.wallet_id AND cut.seq = h.seq ORDER BY h.wallet_id"
)
_HEADS_AT_ENTRY_SQL = _HEADS_AT_SQL.format(within="id <= %s")
_HEADS_AT_TRANSACTION_SQL = _HEADS_AT_SQL.format(within="transaction_id <= %s")


def heads_at(signed: Signed) -> tuple[str, int]:
    """Digest and wallet count of every chain cut where ``signed`` cut it (its entries' stored hashes):
    at its last entry id, or for a version 1 checkpoint at its last transaction id.

    The hash at the cut commits to every entry before it as long as the chain links verify, which
    every ``reconcile`` proves.
    """
    if signed.last_entry_id is not None:
        sql, bound = _HEADS_AT_ENTRY_SQL, signed.last_entry_id
    else:
        sql, bound = _HEADS_AT_TRANSACTION_SQL, signed.last_transaction_id
    digest = HeadsDigest()
    with connection.cursor() as cursor:
        cursor.execute(sql, [bound])
        for wallet_id, seq, entry in cursor:
            digest.add(wallet_id, seq, entry)
    return digest.hexdigest(), digest.wallets


def _extends(previous: Signed | None, fields: dict[str, Any]) -> list[dict[str, Any]]:
    """What stops ``fields`` from being signed as a continuation of ``previous`` (empty: nothing).

    A checkpoint vouches for everything up to its last id, and the routine ``reconcile`` verifies
    signatures only after it. So before signing: everything the previous checkpoint committed to is
    still there, and every transaction since it carries a valid receipt signature. Otherwise a row
    forged between two checkpoints would be vouched for by the second one.
    """
    problems: list[dict[str, Any]] = []
    since = 0
    if previous is not None:
        committed = previous.fields
        since = previous.last_transaction_id
        with connection.cursor() as cursor:
            cursor.execute("SELECT COUNT(*) FROM transactions_transaction WHERE id <= %s", [since])
            count = cursor.fetchone()[0]
        if count != committed["transaction_count"]:
            problems.append({"problem": "transactions up to the previous checkpoint changed", "found": count})
        if heads_at(previous) != (committed["heads_digest"], committed["wallets_with_history"]):
            problems.append({"problem": "chain heads at the previous checkpoint changed"})
        then = supply_totals(since)
        for code, totals in committed["supply"].items():
            for key in (key for key in MOVEMENT_TOTALS if key in totals):  # (older checkpoints have fewer)
                if then.get(code, {}).get(key) != totals[key]:
                    problems.append({"problem": f"{key} up to the previous checkpoint changed", "currency": code})
    receipts_check = Check("receipts")
    _check_receipts(receipts_check, after_transaction_id=since, up_to_transaction_id=fields["last_transaction_id"])
    problems.extend({"problem": "receipt does not verify", **example} for example in receipts_check.examples)
    return problems


def take() -> tuple[Checkpoint, list[tuple[int, int, str]]]:
    """Write a checkpoint of the ledger as it is now and enqueue its event; refuse a ledger that was tampered with.

    The snapshot is read under the lock (``_snapshot``); checking it against the previous
    checkpoint, which verifies signatures and may take a while, runs after the lock is released.
    """
    with _one_at_a_time():
        return _take()


@contextlib.contextmanager
def _one_at_a_time() -> Iterator[None]:
    """Serialise checkpoint commands: one that took its snapshot first must also sign first, or the
    later one would look like it covers transactions that are missing."""
    if connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s)", [ADVISORY_LOCK])
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [ADVISORY_LOCK])


def _take() -> tuple[Checkpoint, list[tuple[int, int, str]]]:
    fields, heads = _snapshot_retrying()
    outermost = not connection.in_atomic_block
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                if outermost:
                    cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                # The first checkpoint verifies every receipt while its cursor stays open (minutes at
                # 1,000,000): lift the request-sized timeouts for this transaction only, as reconcile does.
                cursor.execute("SET LOCAL statement_timeout = 0")
                cursor.execute("SET LOCAL idle_in_transaction_session_timeout = 0")
        previous, _ = newest_valid()
        if previous is not None and previous.last_transaction_id > fields["last_transaction_id"]:
            raise CheckpointError("the newest checkpoint covers transactions that are gone (run reconcile)")
        if previous is not None and (previous.last_entry_id or 0) > fields["last_entry_id"]:
            raise CheckpointError("the newest checkpoint covers balance-history entries that are gone (run reconcile)")
        for code, totals in supply_totals(fields["last_transaction_id"]).items():
            fields["supply"][code].update({key: totals[key] for key in MOVEMENT_TOTALS})
        problems = _extends(previous, fields)
        if problems:
            raise CheckpointError(f"the ledger changed behind the checkpoints (run reconcile): {problems[:5]}")
        payload = canonical(fields)
        checkpoint = Checkpoint.objects.create(
            created_at=datetime.fromisoformat(fields["created_at"]),
            last_transaction_id=fields["last_transaction_id"],
            transaction_count=fields["transaction_count"],
            wallet_count=fields["wallet_count"],
            heads_digest=fields["heads_digest"],
            supply=fields["supply"],
            payload=payload,
            signature=receipts.sign_message(payload.encode()),
            key_id=receipts.public_key_hex(),
        )
        _enqueue_event(checkpoint)
    return checkpoint, heads


def _enqueue_event(checkpoint: Checkpoint) -> None:
    event_id = uuid.uuid4()
    event = checkpoint_v1(
        event_id=event_id,
        occurred_at=checkpoint.created_at.isoformat().replace("+00:00", "Z"),
        checkpoint_id=checkpoint.pk,
        payload=checkpoint.payload,
        signature=checkpoint.signature,
        key_id=checkpoint.key_id,
    )
    row = outbox_insert(
        key=f"checkpoint:{checkpoint.pk}",
        event_id=event_id,
        payload=event,
        headers={"event_id": str(event_id), "trace_id": ""},
        topic=settings.KAFKA_CHECKPOINT_TOPIC,
    )
    publish_on_commit(row)


def export(checkpoint: Checkpoint, heads: list[tuple[int, int, str]]) -> dict[str, Any]:
    """The file operators keep: the signed payload plus every head it digests."""
    return {
        "format": "wallet-ledger-checkpoint",
        "payload": checkpoint.payload,
        "signature": checkpoint.signature,
        "key_id": checkpoint.key_id,
        "heads": [[wallet_id, length, head] for wallet_id, length, head in heads],
    }
