"""Test helpers for everything money touches: snapshots, chain checks and real threads."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

from django.db import connections
from django.db.backends.postgresql.operations import DatabaseOperations
from rest_framework.test import APIClient

from audit.chain import GENESIS_HASH, entry_hash
from audit.models import BalanceHistory
from events.models import OutboxEvent
from transactions.models import IdempotencyKey, Transaction
from wallets.models import Wallet


def balance(user, code: str = "USDT") -> Decimal:
    return Wallet.objects.get(user=user, currency__code=code).balance


def ledger_state() -> dict[str, Any]:
    """Every table a money movement writes to; equal snapshots mean nothing was (half-)written."""
    return {
        "wallets": sorted(Wallet.objects.values_list("id", "balance", "audit_head")),
        "transactions": Transaction.objects.count(),
        "history": BalanceHistory.objects.count(),
        "outbox": OutboxEvent.objects.count(),
    }


def ledger_state_with_keys() -> dict[str, Any]:
    return {**ledger_state(), "idempotency_keys": IdempotencyKey.objects.count()}


def chain_problems(wallet: Wallet) -> list[str]:
    """Everything wrong with one wallet's hash chain and its agreement with the balance (empty = sound)."""
    problems = []
    previous_hash, previous_after, total, previous_held = GENESIS_HASH, Decimal(0), Decimal(0), Decimal(0)
    for entry in BalanceHistory.objects.filter(wallet=wallet).select_related("transaction").order_by("id"):
        if entry.held_before != previous_held:
            problems.append(f"entry {entry.pk}: held_before {entry.held_before} != {previous_held}")
        if entry.prev_hash != previous_hash:
            problems.append(f"entry {entry.pk}: prev_hash does not link to the previous entry")
        if entry.balance_before != previous_after:
            problems.append(f"entry {entry.pk}: balance_before {entry.balance_before} != {previous_after}")
        recomputed = entry_hash(
            prev_hash=entry.prev_hash,
            wallet_id=entry.wallet_id,
            transaction_hash=entry.transaction.hash if entry.transaction else "",
            delta=entry.delta,
            balance_before=entry.balance_before,
            balance_after=entry.balance_after,
            created_at=entry.created_at,
            held_before=entry.held_before,
            held_delta=entry.held_delta,
            held_after=entry.held_after,
            hold_uid=str(entry.hold_uid) if entry.hold_uid else "",
        )
        if recomputed != entry.entry_hash:
            problems.append(f"entry {entry.pk}: entry_hash does not recompute")
        previous_hash, previous_after, previous_held = entry.entry_hash, entry.balance_after, entry.held_after
        total += entry.delta
    wallet.refresh_from_db()
    if total != wallet.balance:
        problems.append(f"wallet {wallet.pk}: history sums to {total}, balance is {wallet.balance}")
    if previous_held != wallet.held:
        problems.append(f"wallet {wallet.pk}: last held_after is {previous_held}, held is {wallet.held}")
    if wallet.audit_head != previous_hash:
        problems.append(f"wallet {wallet.pk}: audit_head is not the last entry_hash")
    return problems


def run_in_threads(tasks: list[Callable[[], Any]], *, threads: int, timeout: float = 60) -> list[Any]:
    """Run ``tasks`` on ``threads`` real threads that start together; returns results (or exceptions) in order.

    Each thread closes its own database connections when it is done.
    """
    # Load the middleware chain (and whatever it registers once per process) before the threads race to.
    APIClient().get("/health")
    threads = min(threads, len(tasks))
    pending = list(enumerate(tasks))
    results: list[Any] = [None] * len(tasks)
    lock = threading.Lock()
    start = threading.Barrier(threads)

    def worker() -> None:
        try:
            start.wait()
            while True:
                with lock:
                    if not pending:
                        return
                    index, task = pending.pop(0)
                try:
                    results[index] = task()
                except Exception as exc:  # noqa: BLE001 - surfaced to the test as a result
                    results[index] = exc
        finally:
            connections.close_all()

    workers = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(timeout)
    assert not any(thread.is_alive() for thread in workers), "a worker thread hung (deadlock?)"
    return results


@contextlib.contextmanager
def flushable_append_only_tables() -> Iterator[None]:
    """Let the test runner's flush (TRUNCATE) empty the append-only tables after a transactional test.

    The triggers reject TRUNCATE, as they must in production; the flush runs with triggers off
    (``session_replication_role = replica``, reverted when its transaction ends).
    """
    original = DatabaseOperations.execute_sql_flush

    def execute_sql_flush(self, sql_list):
        return original(self, ["SET LOCAL session_replication_role = replica", *sql_list])

    DatabaseOperations.execute_sql_flush = execute_sql_flush
    try:
        yield
    finally:
        DatabaseOperations.execute_sql_flush = original
