"""Bank conservation over real HTTP: gunicorn, 3 workers, 16 client threads, PostgreSQL, no shortcuts."""

from collections import Counter

from tests.live import live_api
from tests.security import bank

USERS = 50
TRANSFERS = 1000
THREADS = 16


def test_money_is_conserved_under_concurrent_http_transfers(live_template, rng):
    with live_api(live_template, "bank") as api:
        funds = bank.funding(rng, USERS)
        users = api.seed([f"bank{i:03d}" for i in range(USERS)], funds=funds)
        deadlocks_before = api.deadlocks()
        ops = bank.plan(rng, users, TRANSFERS)
        seconds = bank.run(api, ops, threads=THREADS)
        # Stopping the server ends its database sessions, which flushes their statistics (deadlocks).
        api.server.stop()
        deadlocks = api.deadlocks() - deadlocks_before
        reconcile = api.reconcile()
        done = bank.successes(ops)
        statuses = Counter(op.final.status for op in ops)
        kinds = Counter(op.kind for op in ops)
        print(
            f"seed={rng.seed_value} transfers={len(ops)} in {seconds:.1f}s ({len(ops) / seconds:.0f}/s) "
            f"statuses={dict(statuses)} kinds={dict(kinds)} succeeded={len(done)} deadlocks={deadlocks}"
        )

        assert bank.outcome_problems(ops) == [], f"seed={rng.seed_value}"
        assert sum(count for status, count in statuses.items() if status >= 500) == 0
        assert sum(count for kind, count in kinds.items() if kind != "valid") >= TRANSFERS * 0.10
        assert len(done) >= TRANSFERS * 0.5, "too few transfers succeeded to prove anything"
        assert bank.ledger_problems(api, users, funds, done) == [], f"seed={rng.seed_value}"
        assert reconcile.returncode == 0, reconcile.stdout + reconcile.stderr
        assert deadlocks == 0
