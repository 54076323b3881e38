"""The embedded default (`make run`): SQLite with BEGIN IMMEDIATE serializes concurrent transfers.

Runs in a subprocess against a throw-away SQLite file, because the rest of the suite is PostgreSQL.
"""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import threading
from decimal import Decimal
from django.db import connection
from accounts.services import user_create
from currencies.selectors import currency_get
from transactions.services import transfer_create
from wallet_project.core.errors import ApiError
from wallets.models import Wallet

assert connection.vendor == "sqlite"
a = user_create(username="alice", email="a@example.com", password="correct horse 1")
b = user_create(username="bob", email="b@example.com", password="correct horse 1")
usdt = currency_get(code="USDT")
errors = []

def worker(sender, recipient):
    try:
        for _ in range(25):
            try:
                transfer_create(sender_id=sender.pk, recipient_id=recipient.pk, currency=usdt, amount=Decimal("1.5"))
            except ApiError as exc:
                errors.append(exc.code)
    finally:
        connection.close()

threads = [threading.Thread(target=worker, args=pair) for pair in [(a, b), (b, a)] * 2]
[t.start() for t in threads]
[t.join() for t in threads]
balances = sorted(str(w.balance) for w in Wallet.objects.filter(currency=usdt))
journal = connection.cursor().execute("PRAGMA journal_mode").fetchone()[0]
print("BALANCES", balances, "ERRORS", errors, "JOURNAL", journal)

# History pages by chain position (the ORM branch of it on SQLite) equal counting and skipping.
from transactions.selectors import history_item, history_page, history_queryset
from wallet_project.core.pagination import paginate
for user in (a, b):
    for number in (1, 2, 15, 16):
        expected = paginate(history_queryset(user_id=user.pk), history_item, page=number, page_size=7)
        assert expected["pagination"]["total"] == 101, expected["pagination"]
        assert history_page(user_id=user.pk, page=number, page_size=7) == expected, (user.username, number)
print("HISTORY OK")
"""


def run(args, env):
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180
    )


def test_sqlite_default_serializes_concurrent_transfers_and_reconciles(tmp_path):
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'local.sqlite3'}",
        "DJANGO_SETTINGS_MODULE": "wallet_project.settings.base",
        # What `make run` chooses; the sign-up grant is local mode's default.
        "DJANGO_ENV": "local",
        "LOG_LEVEL": "WARNING",
    }
    assert run(["migrate", "--noinput", "-v0"], env).returncode == 0
    shell = run(["shell", "-c", SCRIPT], env)
    assert shell.returncode == 0, shell.stderr
    line = next(row for row in shell.stdout.splitlines() if row.startswith("BALANCES"))
    # 50 transfers each way of 1.5: both end where they started, nothing lost, no "database is locked".
    assert line == "BALANCES ['1000.00000000', '1000.00000000'] ERRORS [] JOURNAL wal"
    assert "HISTORY OK" in shell.stdout
    audit = run(["reconcile", "--verify-receipts"], env)
    assert audit.returncode == 0, audit.stdout + audit.stderr
    assert "ledger reconciles" in audit.stdout
