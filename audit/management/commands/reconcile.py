import json
import resource
import time

from django.core.management.base import BaseCommand, CommandError

from audit.reconcile import reconcile
from audit.signed import CheckpointError


class Command(BaseCommand):
    help = (
        "Prove the ledger adds up: balances equal their history, every hash chain verifies, every "
        "transaction has its legs on its parties' wallets, per-currency supply equals deposits minus "
        "withdrawals, receipts since the newest signed checkpoint verify and what it committed to is "
        "still there, and every hold adds up with its wallet, its captures and its chain entries. Exits "
        "non-zero on any mismatch."
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

    def handle(self, *args, **options):
        started = time.perf_counter()
        try:
            report = reconcile(verify_receipts=options["verify_receipts"], checkpoint_file=options["checkpoint"])
        except CheckpointError as exc:
            raise CommandError(str(exc), returncode=2) from exc
        elapsed = time.perf_counter() - started
        # Peak resident memory of this process (Linux reports KiB); free to read, unlike tracemalloc.
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        if options["json"]:
            payload = {**report.as_dict(), "seconds": round(elapsed, 3), "peak_rss_bytes": peak}
            self.stdout.write(json.dumps(payload, indent=2))
        else:
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
                f"in {elapsed:.2f}s (peak RSS {peak / 1e6:.1f} MB)"
            )
        if not report.ok:
            raise CommandError("reconciliation found mismatches", returncode=1)
