"""Prove the ledger adds up, and keep the run as a record (``audit.models.ReconcileRun``).

``reconcile`` runs now and exits 0 (clean), 1 (mismatches) or 2 (a checkpoint file that cannot be
trusted). ``reconcile --queued`` is the worker for the runs the console queues: it claims them one at a
time (``SKIP LOCKED``: several copies never run the same one), records each, and exits when none is
left; with ``--interval N`` it keeps polling every N seconds until SIGTERM or SIGINT, letting the run
in progress finish.
"""

import json
import logging
import resource
import signal
import threading
import time

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, close_old_connections, connection

from audit.reconcile import Report
from audit.services import reconcile_run_claim, reconcile_run_execute, reconcile_run_start
from audit.signed import CheckpointError

logger = logging.getLogger("wallet.audit.reconcile")

DB_ERROR_PAUSE_S = 5.0


class Command(BaseCommand):
    help = (
        "Prove the ledger adds up: balances equal their history, every hash chain verifies, every "
        "transaction has its legs on its parties' wallets, per-currency supply equals deposits minus "
        "withdrawals, receipts since the newest signed checkpoint verify and what it committed to is "
        "still there, and every hold adds up with its wallet, its captures and its chain entries. Exits "
        "non-zero on any mismatch. Every run is recorded (the console's Reconcile runs); --queued runs "
        "the runs the console queued."
    )

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="print the report as JSON")
        parser.add_argument(
            "--verify-receipts",
            action="store_true",
            help="recompute every transaction hash and verify its signature, not only those after the newest "
            "checkpoint (slower)",
        )
        parser.add_argument(
            "--checkpoint",
            metavar="FILE",
            help="also prove that everything a signed checkpoint file (checkpoint --out) committed to is still there",
        )
        parser.add_argument(
            "--queued",
            action="store_true",
            help="run the runs queued from the console, one at a time, then exit (the worker)",
        )
        parser.add_argument(
            "--interval",
            type=float,
            help="with --queued: keep polling for queued runs every INTERVAL seconds until stopped",
        )

    def handle(self, *args, **options):
        if options["queued"]:
            if options["verify_receipts"] or options["checkpoint"]:
                raise CommandError("--queued runs each queued run with the scope it was queued with")
            if options["interval"] is not None and options["interval"] <= 0:
                raise CommandError("--interval must be more than 0 seconds")
            self._worker(interval=options["interval"])
            return
        if options["interval"] is not None:
            raise CommandError("--interval goes with --queued")
        run = reconcile_run_start(verify_receipts=options["verify_receipts"], checkpoint_file=options["checkpoint"])
        started = time.perf_counter()
        try:
            report = reconcile_run_execute(run)
        except CheckpointError as exc:
            raise CommandError(str(exc), returncode=2) from exc
        elapsed = time.perf_counter() - started
        self._print(report, run_id=run.pk, elapsed=elapsed, as_json=options["json"])
        if not report.ok:
            raise CommandError("reconciliation found mismatches", returncode=1)

    def _print(self, report: Report, *, run_id: int, elapsed: float, as_json: bool) -> None:
        # Peak resident memory of this process (Linux reports KiB); free to read, unlike tracemalloc.
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        if as_json:
            payload = {**report.as_dict(), "run_id": run_id, "seconds": round(elapsed, 3), "peak_rss_bytes": peak}
            self.stdout.write(json.dumps(payload, indent=2))
            return
        for check in report.checks:
            status = "OK      " if check.ok else "MISMATCH"
            self.stdout.write(f"{status} {check.name:<15} checked={check.checked} mismatches={check.mismatches}")
            for example in check.examples:
                self.stdout.write(f"           {json.dumps(example, default=str)}")
        for code, totals in report.supply.items():
            self.stdout.write(
                f"         supply {code:<5} balances={totals['balances']} held={totals['held']} "
                f"deposits={totals['deposits']} withdrawals={totals['withdrawals']} "
                f"deposits_reversed={totals['deposits_reversed']} "
                f"withdrawals_reversed={totals['withdrawals_reversed']}"
            )
        for source, described in report.checkpoints.items():
            self.stdout.write(f"         checkpoint {source}: {json.dumps(described, default=str)}")
        self.stdout.write(
            f"{'ledger reconciles' if report.ok else 'LEDGER DOES NOT RECONCILE'} "
            f"in {elapsed:.2f}s (peak RSS {peak / 1e6:.1f} MB), recorded as run {run_id}"
        )

    def _worker(self, *, interval: float | None) -> None:
        stop = threading.Event()
        previous = {}
        if interval is not None:  # a long-running worker: finish the run in progress on SIGTERM/SIGINT
            for signum in (signal.SIGTERM, signal.SIGINT):
                previous[signum] = signal.signal(signum, lambda *_: stop.set())
        try:
            while not stop.is_set():
                close_old_connections()
                try:
                    run = reconcile_run_claim()
                except DatabaseError as exc:
                    if interval is None:
                        raise CommandError(f"database error: {exc}") from exc
                    logger.error("reconcile worker database error; pausing", extra={"error": str(exc)})
                    connection.close()
                    stop.wait(DB_ERROR_PAUSE_S)
                    continue
                if run is None:
                    if interval is None:
                        return
                    stop.wait(interval)
                    continue
                try:
                    reconcile_run_execute(run)
                except (CheckpointError, DatabaseError):
                    logger.exception("queued reconcile run failed", extra={"run_id": run.pk})
                run.refresh_from_db()
                self.stdout.write(
                    json.dumps(
                        {
                            "run_id": run.pk,
                            "outcome": run.outcome,
                            "seconds": run.duration_seconds,
                            "mismatches": run.mismatch_count,
                        }
                    )  # fmt: skip
                )
        finally:
            connection.close()
            for signum, handler in previous.items():
                signal.signal(signum, handler)
