"""PostgreSQL (the prepared statements of transactions.sql) and SQLite (the ORM) write the same rows.

The same movements (a transfer with a deferred account check, a deposit, a withdrawal, the sign-up
grant and a refusal recorded against an Idempotency-Key) run on both backends; the rows they leave
(transactions, balance history, wallets, outbox, idempotency keys) are compared with the ids, random
uuids and times replaced by what they stand for. The SQLite leg runs in a subprocess.
"""

import json
import os
import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from django.db import connection

from accounts.models import User
from accounts.services import user_create
from audit.models import BalanceHistory
from audit.reconcile import reconcile
from currencies.models import Currency
from events.models import OutboxEvent
from tests.ledger import flushable_append_only_tables
from transactions.models import IdempotencyKey, Transaction, TransferBatch
from transactions.services import (
    BatchTransfer,
    Idempotency,
    deposit_create,
    reversal_create,
    transfer_batch_create,
    transfer_create,
    withdrawal_create,
)
from wallet_project.core import errors
from wallet_project.core.principal import Principal
from wallets.models import Wallet

ROOT = Path(__file__).resolve().parents[2]
DUMP_TO = "LEDGER_ROWS_DUMP"
VOLATILE = {"uid", "event_id", "created_at", "updated_at", "occurred_at", "timestamp", "trace_id", "hash",
            "signature", "prev_hash", "entry_hash", "audit_head", "key", "fingerprint", "reverses"}  # fmt: skip

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@pytest.fixture(scope="module", autouse=True)
def _flushable():
    with flushable_append_only_tables():
        yield


def movements(settings) -> None:
    settings.SIGNUP_GRANT = "USDT:1000"
    usdt = Currency.objects.get(code="USDT")
    cashier = User.objects.create(username="cashier", is_staff=True)
    alice = user_create(username="alice", email="alice@example.com", password="a long passphrase 1")  # the grant
    bob = user_create(username="bob", email="bob@example.com", password="a long passphrase 2")
    principal = Principal(id=alice.pk, username="alice", token_version=alice.token_version)
    transfer = transfer_create(sender_id=alice.pk, recipient_id=bob.pk, currency=usdt, amount=Decimal("12.5"),
                               memo="rent", principal=principal)  # fmt: skip
    deposit = deposit_create(user_id=bob.pk, currency=usdt, amount=Decimal("0.000001"), created_by_id=cashier.pk)
    withdrawal = withdrawal_create(user_id=alice.pk, currency=usdt, amount=Decimal("87.5"), created_by_id=cashier.pk,
                                   idempotency=Idempotency(key="w-1", scope="withdrawal", fingerprint="f"))  # fmt: skip
    with pytest.raises(errors.InsufficientBalance):
        transfer_create(sender_id=bob.pk, recipient_id=alice.pk, currency=usdt, amount=Decimal("5000"),
                        idempotency=Idempotency(key="t-1", scope="transfer", fingerprint="f"))  # fmt: skip
    # A reversal of each kind (the partial one behind a key, replayed once).
    for _ in range(2):
        reversal_create(original=transfer, amount=Decimal("2.5"), memo="overpaid", created_by_id=cashier.pk,
                        idempotency=Idempotency(key="r-1", scope="reversal", fingerprint="f"))  # fmt: skip
    reversal_create(original=deposit, memo="bounced", created_by_id=cashier.pk)
    reversal_create(original=withdrawal, amount=Decimal("7.5"), memo="returned", created_by_id=cashier.pk)
    # A batch that takes Bob's wallet twice, behind a key, replayed once (its own lock statement).
    batch = [BatchTransfer(recipient_id=alice.pk, currency=usdt, amount=Decimal(1)),
             BatchTransfer(recipient_id=alice.pk, currency=usdt, amount=Decimal(2), memo="b")]  # fmt: skip
    for _ in range(2):
        transfer_batch_create(sender_id=bob.pk, transfers=batch,
                              idempotency=Idempotency(key="b-1", scope="transfer_batch", fingerprint="f"))  # fmt: skip


def rows() -> dict:
    users = dict(User.objects.values_list("id", "username"))
    wallets = {w.pk: f"{users[w.user_id]}/{w.currency.code}" for w in Wallet.objects.select_related("currency")}
    txs = {pk: f"tx{n}" for n, pk in enumerate(Transaction.objects.order_by("id").values_list("id", flat=True))}
    batches = {
        pk: f"batch{n}" for n, pk in enumerate(TransferBatch.objects.order_by("id").values_list("id", flat=True))
    }
    # (The only keys with a resource here are the batch's.)
    names = {"user": users, "wallet": wallets, "transaction": txs, "created_by": users, "reverses": txs,
             "resource": batches}  # fmt: skip

    def plain(value, field=""):
        if isinstance(value, dict):
            return {k: plain(v, k) for k, v in value.items() if k not in VOLATILE}
        if isinstance(value, list):
            return [plain(v) for v in value]
        table = re.sub(r"^(from_|to_)|_id$", "", field)
        if value is not None and table in names and isinstance(value, int):
            return names[table].get(value, value)
        if field == "id":
            return None  # the row's own id: its place in the list says it
        return str(value) if isinstance(value, Decimal) else value

    def table(model, order):
        return [plain({f.attname: getattr(o, f.attname) for f in model._meta.concrete_fields}) for o in
                model.objects.order_by(*order)]  # fmt: skip

    dump = {
        "transactions": table(Transaction, ["id"]),
        "history": table(BalanceHistory, ["id"]),
        "wallets": table(Wallet, ["user__username", "currency_id"]),
        "keys": table(IdempotencyKey, ["key"]),
        "outbox": [],
    }
    for event in OutboxEvent.objects.order_by("id"):
        payload = dict(event.payload)
        payload["transaction"] = {**payload["transaction"], "id": txs[payload["transaction"]["id"]]}
        dump["outbox"].append({**table(OutboxEvent, ["id"])[0], "payload": plain(payload)} | {"topic": event.topic})
    return json.loads(json.dumps(dump, default=str))


def test_the_movements_leave_the_ledger_balanced(settings, tmp_path):
    """On either backend (the SQLite leg dumps what it wrote for the comparison below)."""
    movements(settings)
    dump = rows()
    balances = {w["user_id"]: Decimal(w["balance"]) for w in dump["wallets"] if w["currency_id"] == 1}
    assert balances == {"alice": Decimal("913"), "bob": Decimal("1007")}
    assert [k["error_code"] for k in dump["keys"]] == ["", "", "INSUFFICIENT_BALANCE", ""]  # b-1, r-1, t-1, w-1
    assert len(dump["outbox"]) == len(dump["transactions"]) == 10
    # The grants, then the three originals, the three reversals and the batch's two.
    assert [t["reverses_id"] for t in dump["transactions"]] == [None] * 5 + ["tx2", "tx3", "tx4", None, None]
    # reconcile's own paths on this backend (SQLite sums money in Python) agree.
    report = reconcile(verify_receipts=True)
    assert report.ok, [(c.name, c.examples) for c in report.checks if not c.ok]
    assert {c.name: c.checked for c in report.checks}["reversals"] == 3
    supply = report.supply["USDT"]
    assert (supply["deposits_reversed"], supply["withdrawals_reversed"]) == ("0.00000100", "7.50000000")
    assert supply["balances"] == supply["expected"] == "1920.00000000"
    if os.environ.get(DUMP_TO):
        Path(os.environ[DUMP_TO]).write_text(json.dumps(dump, indent=1, sort_keys=True))


def test_postgresql_and_sqlite_write_the_same_rows(settings, tmp_path):
    assert connection.vendor == "postgresql"
    movements(settings)
    on_postgresql = rows()
    dump = tmp_path / "sqlite.json"
    env = {**os.environ, "MONEY_SUITE_ON_SQLITE": "1", "DATABASE_URL": f"sqlite:///{tmp_path / 'ledger.sqlite3'}",
           DUMP_TO: str(dump)}  # fmt: skip
    run = subprocess.run(
        [sys.executable, "-m", "pytest", __file__, "-q", "-p", "no:randomly", "--create-db",
         "-k", "test_the_movements_leave_the_ledger_balanced"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    on_sqlite = json.loads(dump.read_text())
    for name in on_postgresql:
        assert on_sqlite[name] == on_postgresql[name], name
    assert on_sqlite == on_postgresql
