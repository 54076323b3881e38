"""`manage.py expire_holds` as the long-running worker it is: child processes on the test database,
stopped by signals, two of them at once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import quote

import pytest
from django.db import connection
from django.utils import timezone

from audit.models import BalanceHistory
from audit.reconcile import reconcile
from currencies.models import Currency
from events.models import OutboxEvent
from holds.models import Hold
from holds.services import hold_create
from wallets.models import Wallet

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

ROOT = Path(__file__).resolve().parents[2]


class Worker:
    """``manage.py expire_holds`` in a child process on the test database; its log lines, read as they come."""

    def __init__(self, *args: str) -> None:
        db = connection.settings_dict
        auth = quote(db["USER"], safe="") + (f":{quote(db['PASSWORD'], safe='')}" if db["PASSWORD"] else "")
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "wallet_project.settings.test",
            "DATABASE_URL": f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
            "KAFKA_BOOTSTRAP_SERVERS": "",
            "LOG_LEVEL": "INFO",
        }
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "expire_holds", *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self.reader = threading.Thread(target=lambda: self.lines.extend(self.process.stderr), daemon=True)
        self.reader.start()

    def messages(self) -> list[str]:
        return [json.loads(line)["message"] for line in list(self.lines) if line.startswith("{")]

    def logs(self, message: str) -> list[dict]:
        entries = [json.loads(line) for line in list(self.lines) if line.startswith("{")]
        return [entry for entry in entries if entry["message"] == message]

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 10) -> float:
        """Signal the worker and wait for it to exit; returns how long that took."""
        signalled = time.monotonic()
        self.process.send_signal(signum)
        self.process.wait(timeout)
        self.reader.join(5)
        return time.monotonic() - signalled

    def released(self) -> int:
        [stopped] = self.logs("expiry stopped")
        return stopped["released"]

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def wait_until(predicate, *, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def place_holds(count: int, payers) -> list[Hold]:
    usdt = Currency.objects.get(code="USDT")
    return [
        hold_create(payer_id=payers[n % len(payers)].pk, currency=usdt, amount=Decimal("0.5")) for n in range(count)
    ]


def make_all_due() -> None:
    Hold.objects.filter(status="active").update(expires_at=timezone.now() - timedelta(seconds=1))


def assert_released_once(holds: list[Hold], released: int) -> None:
    """Every expired hold has one hold.expired event and one release entry; the active ones have neither."""
    expired = {hold.pk: hold for hold in Hold.objects.filter(pk__in=[h.pk for h in holds], status="expired")}
    assert released == len(expired)
    events = Counter(OutboxEvent.objects.filter(payload__event_type="hold.expired").values_list("key", flat=True))
    assert events == Counter({str(pk): 1 for pk in expired})
    releases = Counter(
        BalanceHistory.objects.filter(transaction=None, held_delta__lt=0).values_list("hold_uid", flat=True)
    )
    assert releases == Counter({hold.uid: 1 for hold in expired.values()})
    report = reconcile()
    assert report.ok, [check for check in report.checks if not check.ok]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signalled_worker_finishes_its_pass_and_exits_0(user_factory, signum):
    payers = [user_factory(balance=100) for _ in range(3)]
    holds = place_holds(60, payers)
    make_all_due()
    worker = Worker("--batch", "5", "--interval", "0.2")
    try:
        assert wait_until(lambda: Hold.objects.filter(status="expired").exists()), worker.lines
        took = worker.stop(signum)
    finally:
        worker.kill()
    assert worker.process.returncode == 0, worker.lines
    assert took < 5
    assert worker.logs("expiry stopping after the current pass")[0]["signal"] == signal.Signals(signum).name
    messages = worker.messages()
    after_the_signal = messages[messages.index("expiry stopping after the current pass") :]
    assert after_the_signal.count("expiry pass") <= 1  # the pass in progress, then no other
    assert after_the_signal[-1] == "expiry stopped"
    assert_released_once(holds, worker.released())


def test_an_idle_worker_stops_at_once(user_factory):
    worker = Worker("--interval", "30")
    try:
        assert wait_until(lambda: worker.logs("expiry started"), timeout=30), worker.lines
        took = worker.stop()
    finally:
        worker.kill()
    assert worker.process.returncode == 0, worker.lines
    assert took < 5  # not the 30 s interval
    assert worker.released() == 0


def test_two_workers_at_once_release_each_due_hold_exactly_once(user_factory):
    payers = [user_factory(balance=100) for _ in range(4)]
    holds = place_holds(200, payers)
    workers = [Worker("--batch", "10", "--interval", "0.05") for _ in range(2)]
    try:
        assert wait_until(lambda: all(w.logs("expiry started") for w in workers), timeout=30)
        make_all_due()  # both are polling: they race for the same holds
        assert wait_until(lambda: not Hold.objects.filter(status="active").exists())
        for worker in workers:
            worker.stop()
    finally:
        for worker in workers:
            worker.kill()
    assert [w.process.returncode for w in workers] == [0, 0], [w.lines for w in workers]
    released = [w.released() for w in workers]
    assert sum(released) == 200
    assert min(released) > 0, released  # both took part
    assert_released_once(holds, sum(released))
    assert set(Wallet.objects.filter(user__in=payers, currency__code="USDT").values_list("held", flat=True)) == {0}
