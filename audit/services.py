"""Reconcile runs as records: queued from the console, claimed by a worker, written by every run.

``reconcile`` itself (``audit.reconcile``) only reads; these functions write the ``ReconcileRun`` row
around it, each in a short transaction of its own, never inside the run's read-only snapshot.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from django.db import DatabaseError, transaction
from django.utils import timezone

from audit.models import ReconcileRun
from audit.reconcile import Report, reconcile

logger = logging.getLogger("wallet.audit.reconcile")


def _scope(*, verify_receipts: bool, checkpoint_file: str | None) -> dict[str, Any]:
    return {"verify_receipts": verify_receipts, "checkpoint_file": checkpoint_file}


def reconcile_run_queue(*, requested_by_id: int, verify_receipts: bool = False) -> ReconcileRun:
    """A run for the worker (``reconcile --queued``) to pick up; the console's button calls this."""
    with transaction.atomic(durable=True):
        return ReconcileRun.objects.create(
            state=ReconcileRun.State.QUEUED,
            trigger=ReconcileRun.Trigger.CONSOLE,
            requested_by_id=requested_by_id,
            scope=_scope(verify_receipts=verify_receipts, checkpoint_file=None),
            queued_at=timezone.now(),
        )


def reconcile_run_start(*, verify_receipts: bool, checkpoint_file: str | None) -> ReconcileRun:
    """The record of a run the command makes now (``state=running``)."""
    now = timezone.now()
    with transaction.atomic(durable=True):
        return ReconcileRun.objects.create(
            state=ReconcileRun.State.RUNNING,
            trigger=ReconcileRun.Trigger.COMMAND,
            scope=_scope(verify_receipts=verify_receipts, checkpoint_file=checkpoint_file),
            queued_at=now,
            started_at=now,
        )


def reconcile_run_claim() -> ReconcileRun | None:
    """The oldest queued run, now ``running`` and this caller's; None when nothing waits.

    ``SKIP LOCKED``: several workers never claim the same run, and none waits for another's claim.
    """
    with transaction.atomic(durable=True):
        run = (
            ReconcileRun.objects.select_for_update(skip_locked=True)
            .filter(state=ReconcileRun.State.QUEUED)
            .order_by("queued_at", "id")
            .first()
        )
        if run is None:
            return None
        run.state = ReconcileRun.State.RUNNING
        run.started_at = timezone.now()
        run.save(update_fields=["state", "started_at"])
        return run


def reconcile_run_execute(run: ReconcileRun) -> Report:
    """Run ``reconcile`` with the run's scope and record what it found (pass or fail), or the error.

    Re-raises what stopped the run (``audit.signed.CheckpointError``, a database error) once the run is
    recorded as ``error``, so a caller reports it as it did before runs were recorded.
    """
    started = time.perf_counter()
    scope = run.scope or {}
    try:
        report = reconcile(
            verify_receipts=bool(scope.get("verify_receipts")), checkpoint_file=scope.get("checkpoint_file")
        )
    except Exception as exc:
        _finish(run, outcome=ReconcileRun.Outcome.ERROR, seconds=time.perf_counter() - started, error=str(exc))
        raise
    summary = report.as_dict()
    run.checks = [
        {"name": check.name, "checked": check.checked, "mismatches": check.mismatches, "ok": check.ok}
        for check in report.checks
    ]
    run.mismatches = {check.name: check.examples for check in report.checks if not check.ok}
    run.mismatch_count = sum(check.mismatches for check in report.checks)
    run.supply = summary["supply"]
    run.checkpoints = summary["checkpoints"]
    outcome = ReconcileRun.Outcome.PASS if report.ok else ReconcileRun.Outcome.FAIL
    _finish(run, outcome=outcome, seconds=time.perf_counter() - started)
    return report


def _finish(run: ReconcileRun, *, outcome: str, seconds: float, error: str = "") -> None:
    run.state = ReconcileRun.State.DONE
    run.outcome = outcome
    run.finished_at = timezone.now()
    run.duration_seconds = round(seconds, 3)
    run.error = error[:4000]
    fields = ["state", "outcome", "finished_at", "duration_seconds", "error", "checks", "mismatches",
              "mismatch_count", "supply", "checkpoints"]  # fmt: skip
    try:
        with transaction.atomic(durable=True):
            run.save(update_fields=fields)
    except DatabaseError:
        # The run's own outcome (exit code, output) still reaches the caller; only the record is lost.
        logger.exception("could not record the reconcile run", extra={"run_id": run.pk})
