"""Django-side steps of the benchmark; ``bench/run.py`` runs them in a subprocess with the bench environment.

    python bench/tasks.py fingerprint
    python bench/tasks.py seed --users 1000 --balance 1000000
    python bench/tasks.py tokens --out FILE (--all | --user-id N [--user-id M]) [--per-user K]
    python bench/tasks.py ledger --transactions 1000000 --users 1000 --hot-transactions 100000 --days 365 --marker TEXT

The ledger generator writes a *valid* ledger straight into the tables with COPY: hashes, signatures
and per-wallet hash chains are computed with the application's own functions (``transaction_hash``,
``sign``, ``entry_hash``), so ``manage.py reconcile`` (and ``--verify-receipts``) pass on it.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import os
import random
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Files whose content decides what a generated ledger looks like: a change invalidates cached datasets.
LEDGER_INPUTS = [
    "bench/tasks.py",
    "audit/chain.py",
    "audit/models.py",
    "transactions/models.py",
    "wallets/models.py",
    "audit/receipts.py",
    "currencies/money.py",
]
BENCH_PASSWORD = "bench-password-" + "x" * 8  # noqa: S105 - a throwaway password for generated users


def setup_django() -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "wallet_project.settings.base")
    import django

    django.setup()


def fingerprint() -> str:
    """Migration leaves plus the content of the files a dataset depends on."""
    from django.db.migrations.loader import MigrationLoader

    leaves = sorted(
        f"{app}.{name}" for app, name in MigrationLoader(None, ignore_no_migrations=True).graph.leaf_nodes()
    )
    digest = hashlib.sha256()
    for name in LEDGER_INPUTS:
        path = ROOT / name
        digest.update(name.encode() + b"\0" + (path.read_bytes() if path.exists() else b"") + b"\0")
    return json.dumps({"migrations": leaves, "sources": digest.hexdigest()[:16]}, sort_keys=True)


def _create_users(count: int, prefix: str = "bench") -> list:
    """Users and their default-currency wallets, as ``user_create`` makes them, minus the per-user Argon2.

    One Argon2 hash is shared by every generated user: hashing 1,000 passwords would cost a minute.
    """
    from django.contrib.auth.hashers import make_password

    from accounts.models import User
    from currencies.models import Currency
    from wallets.models import Wallet

    password = make_password(BENCH_PASSWORD)
    users = User.objects.bulk_create(
        [
            User(username=f"{prefix}{i:05d}", email=f"{prefix}{i:05d}@bench.invalid", password=password)
            for i in range(1, count + 1)
        ]
    )
    currencies = list(Currency.objects.filter(is_active=True, is_default=True))
    Wallet.objects.bulk_create([Wallet(user=u, currency=c) for u in users for c in currencies])
    return users


def seed(*, users: int, balance: str, currency_code: str) -> None:
    """Users with wallets, each funded through the real deposit service (so the ledger reconciles)."""
    from currencies.models import Currency
    from transactions.services import deposit_create

    started = time.perf_counter()
    created = _create_users(users)
    currency = Currency.objects.get(code=currency_code)
    for user in created:
        deposit_create(user_id=user.pk, currency=currency, amount=Decimal(balance), memo="bench funding")
    print(f"seeded {len(created)} users with {balance} {currency_code} each in {time.perf_counter() - started:.1f}s")


def tokens(*, out: Path, user_ids: list[int] | None, per_user: int) -> None:
    """Access tokens exactly as ``POST /auth/login`` issues them, one line ``<user_id> <token>`` each."""
    from accounts.models import User
    from accounts.services import _issue_tokens  # the login path minus Argon2; a rename fails loudly here

    qs = User.objects.filter(username__startswith="bench").order_by("pk")
    if user_ids:
        qs = qs.filter(pk__in=user_ids)
    users = list(qs)
    if not users:
        raise SystemExit("no bench users found")
    lines = [f"{user.pk} {_issue_tokens(user).access}" for user in users for _ in range(per_user)]
    out.write_text("\n".join(lines) + "\n")
    print(f"minted {len(lines)} tokens for {len(users)} users -> {out}")


# --- The 1,000,000-transaction ledger --------------------------------------------------------------


def _copy_text(value) -> str:
    """A value in COPY text format (only defaults and free text need this; generated values are plain)."""
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict | list):
        value = json.dumps(value)
    text = str(value)
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


class _Table:
    """COPY rows for a model; columns come from the model, so a new field with a default still loads."""

    def __init__(self, model, generated: list[str]) -> None:
        fields = list(model._meta.concrete_fields)
        self.table = model._meta.db_table
        columns = ", ".join(f'"{f.column}"' for f in fields)
        self.sql = f'COPY "{self.table}" ({columns}) FROM STDIN'
        missing = {f.attname for f in fields} - set(generated)
        unknown = set(generated) - {f.attname for f in fields}
        if unknown:
            raise SystemExit(f"{self.table} has no column for {sorted(unknown)}: update bench/tasks.py")
        # Columns the generator does not fill take their model default (the same for every row).
        parts = [f"{{{generated.index(f.attname)}}}" if f.attname in generated else "" for f in fields]
        for i, f in enumerate(fields):
            if f.attname in missing:
                parts[i] = _copy_text(f.get_default()).replace("{", "{{").replace("}", "}}")
        self.format = ("\t".join(parts) + "\n").format


TX_COLUMNS = [
    "id", "uid", "type", "status", "from_user_id", "to_user_id", "from_wallet_id", "to_wallet_id",
    "currency_id", "amount", "memo", "hash", "signature", "created_by_id", "trace_id", "created_at",
]  # fmt: skip
HISTORY_COLUMNS = [
    "id", "wallet_id", "user_id", "transaction_id", "delta", "balance_before", "balance_after",
    "prev_hash", "entry_hash", "seq", "posting", "total_in_after", "total_out_after", "postings_after", "created_at",
]  # fmt: skip


def _drop_secondary(cursor, table: str) -> list:
    """Drop ``table``'s indexes, unique and foreign-key constraints (not its primary key); return their DDL.

    Bulk-load practice: maintaining ~20 indexes and checking 12M foreign keys row by row costs far
    more than building the indexes once and validating each foreign key with one join afterwards.
    """
    from psycopg import sql

    restore = []
    cursor.execute(
        "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index i "
        "WHERE i.indrelid = %s::regclass AND NOT i.indisprimary "
        "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid AND c.conrelid = i.indrelid)",
        [table],
    )
    for name, definition in cursor.fetchall():
        cursor.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(name)))
        restore.append(sql.SQL(definition))
    cursor.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = %s::regclass "
        "AND contype IN ('u', 'f') ORDER BY contype DESC",
        [table],
    )
    for name, definition in cursor.fetchall():  # "u" sorts before "f": unique constraints come back first
        cursor.execute(sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(sql.Identifier(table), sql.Identifier(name)))
        restore.append(
            sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} ").format(sql.Identifier(table), sql.Identifier(name))
            + sql.SQL(definition)
        )
    return restore


def _hash_and_sign(batch: list[tuple]) -> list[tuple[str, str]]:
    """Receipt hash and signature of each movement; runs in a pool worker (the expensive, parallel part)."""
    from audit.receipts import sign, transaction_hash

    out = []
    for uid, tx_type, from_user, to_user, code, amount, created_at in batch:
        tx_hash = transaction_hash(
            uid=uid,
            type=tx_type,
            from_user_id=from_user,
            to_user_id=to_user,
            currency=code,
            amount=amount,
            memo="",
            created_at=created_at,
        )
        out.append((tx_hash, sign(tx_hash)))
    return out


def ledger(
    *, transactions: int, users: int, hot_transactions: int, days: int, marker: str, seed_value: int = 20251125
) -> None:
    """Deposits for every user, then transfers; user #1 takes part in ``hot_transactions`` of them.

    The movements are spread evenly over the ``days`` before the day before generation (365: a month
    holds about 8,300 of the hot user's entries, a statement's realistic size for a busy account), and
    the users and wallets are dated just before the first of them, so a point-in-time read anywhere in
    the span finds the wallet existing; each wallet's ``updated_at`` is its newest entry's time, as the
    posting path keeps it.

    Three things run at once: a process pool hashes and signs receipts, this process chains the
    balance history and formats rows, and a thread streams the previous chunk to PostgreSQL by COPY.
    """
    import multiprocessing
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connection
    from psycopg import sql

    from audit.chain import GENESIS_HASH, entry_hash
    from audit.models import BalanceHistory
    from currencies.models import Currency
    from currencies.money import QUANT
    from transactions.models import Transaction
    from wallets.models import Wallet

    started = time.perf_counter()
    rng = random.Random(seed_value)
    created = _create_users(users)
    currency = Currency.objects.get(code="USDT")
    wallet_of = dict(Wallet.objects.filter(currency=currency).values_list("user_id", "id"))
    user_ids = [u.pk for u in created]
    hot, others = user_ids[0], user_ids[1:]
    n_transfers = transactions - users
    hot_positions = set(rng.sample(range(n_transfers), hot_transactions - 1))
    balance = {wallet_of[u]: Decimal(0) for u in user_ids}
    head = {wallet_of[u]: GENESIS_HASH for u in user_ids}
    entries = {wallet_of[u]: 0 for u in user_ids}
    total_in = {wallet_of[u]: Decimal(0) for u in user_ids}
    total_out = {wallet_of[u]: Decimal(0) for u in user_ids}
    funding = Decimal(1_000_000).quantize(QUANT)
    step_us = days * 86_400 * 1_000_000 // transactions
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=days + 1)
    newest = {wallet_of[u]: start for u in user_ids}
    tx_table, history_table = _Table(Transaction, TX_COLUMNS), _Table(BalanceHistory, HISTORY_COLUMNS)
    chunk = 10_000

    def movements(first: int, last: int) -> list[tuple]:
        batch = []
        for k in range(first, last):
            if k < users:
                tx_type, from_user, to_user, amount = "deposit", None, user_ids[k], funding
            else:
                amount = (Decimal(rng.randint(1, 1_000_000)) / 1_000_000).quantize(QUANT)  # up to 1 USDT, 6 places
                tx_type = "transfer"
                if k - users in hot_positions:
                    other = rng.choice(others)
                    from_user, to_user = (hot, other) if rng.random() < 0.5 else (other, hot)
                else:
                    from_user, to_user = rng.sample(others, 2)
            created_at = start + timedelta(microseconds=k * step_us + rng.randrange(step_us))
            uid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            batch.append((uid, tx_type, from_user, to_user, currency.code, amount, created_at))
        return batch

    def write(tx_lines: list[str], history_lines: list[str]) -> None:
        # One COPY per table per chunk, transactions first: the history rows reference them.
        with raw.cursor() as cursor:
            with cursor.copy(tx_table.sql) as copy:
                copy.write("".join(tx_lines))
            with cursor.copy(history_table.sql) as copy:
                copy.write("".join(history_lines))

    tx_id = history_id = 0
    pending = None
    in_flight: collections.deque = collections.deque()
    firsts = iter(range(0, transactions, chunk))
    context = multiprocessing.get_context("fork")  # workers inherit the configured Django settings
    workers = max(1, os.cpu_count() or 1)
    connection.close()  # fork with no database socket open: a child must never share the parent's
    with context.Pool(workers) as pool, ThreadPoolExecutor(1) as writer:
        connection.ensure_connection()
        raw = connection.connection  # the psycopg connection; COPY is not part of Django's API
        raw.autocommit = True
        with raw.cursor() as cursor:
            cursor.execute("SET statement_timeout = 0")  # the request-sized timeout would stop index builds
            cursor.execute("SET maintenance_work_mem = '256MB'")
            restore = _drop_secondary(cursor, history_table.table) + _drop_secondary(cursor, tx_table.table)
        while True:
            # Keep a few batches ahead in the pool; generating them here keeps the RNG sequence fixed.
            while len(in_flight) < 2 * workers and (first := next(firsts, None)) is not None:
                batch = movements(first, min(first + chunk, transactions))
                in_flight.append((batch, pool.apply_async(_hash_and_sign, (batch,))))
            if not in_flight:
                break
            batch, result = in_flight.popleft()
            signed = result.get()
            tx_lines, history_lines = [], []
            for (uid, tx_type, from_user, to_user, _code, amount, created_at), (tx_hash, signature) in zip(
                batch, signed, strict=True
            ):
                tx_id += 1
                at = created_at.isoformat()
                from_wallet = wallet_of[from_user] if from_user else None
                to_wallet = wallet_of[to_user] if to_user else None
                tx_lines.append(
                    tx_table.format(
                        tx_id,
                        uid,
                        tx_type,
                        "completed",
                        from_user or "\\N",
                        to_user or "\\N",
                        from_wallet or "\\N",
                        to_wallet or "\\N",
                        currency.pk,
                        amount,
                        "",
                        tx_hash,
                        signature,
                        "\\N",
                        "",
                        at,
                    )  # fmt: skip
                )
                for wallet, user, delta in ((from_wallet, from_user, -amount), (to_wallet, to_user, amount)):
                    if wallet is None:
                        continue
                    before = balance[wallet]
                    after = before + delta
                    if after < 0:
                        raise AssertionError("generator drove a balance negative")
                    link = entry_hash(
                        prev_hash=head[wallet],
                        wallet_id=wallet,
                        transaction_hash=tx_hash,
                        delta=delta,
                        balance_before=before,
                        balance_after=after,
                        created_at=created_at,
                    )
                    history_id += 1
                    entries[wallet] += 1
                    if delta > 0:
                        total_in[wallet] += delta
                    else:
                        total_out[wallet] -= delta
                    history_lines.append(
                        history_table.format(
                            history_id,
                            wallet,
                            user,
                            tx_id,
                            delta,
                            before,
                            after,
                            head[wallet],
                            link,
                            entries[wallet],
                            entries[wallet],  # every entry is a movement here: its posting is its seq
                            total_in[wallet],
                            total_out[wallet],
                            entries[wallet],
                            at,
                        )
                    )
                    balance[wallet], head[wallet], newest[wallet] = after, link, created_at
            if pending is not None:
                pending.result()
            pending = writer.submit(write, tx_lines, history_lines)
            if tx_id % 100_000 == 0 or tx_id == transactions:
                print(f"  {tx_id:>9,} transactions  {time.perf_counter() - started:6.1f}s", flush=True)
        pending.result()
    print(f"  restoring {len(restore)} indexes and constraints  {time.perf_counter() - started:6.1f}s", flush=True)
    with raw.cursor() as cursor:
        for statement in restore:  # per table: indexes, unique constraints, then foreign keys (validated)
            cursor.execute(statement)

    with raw.transaction(), raw.cursor() as cursor:
        cursor.executemany(
            "UPDATE wallets_wallet SET balance = %s, audit_head = %s, entries = %s, postings = %s, total_in = %s,"
            " total_out = %s, updated_at = %s WHERE id = %s",
            [(balance[w], head[w], entries[w], entries[w], total_in[w], total_out[w], newest[w], w) for w in balance],
        )
        # Accounts and wallets opened before their first movement (bulk_create stamped them now).
        opened = start - timedelta(minutes=1)
        cursor.execute("UPDATE accounts_user SET date_joined = %s WHERE id = ANY(%s)", [opened, user_ids])
        cursor.execute("UPDATE wallets_wallet SET created_at = %s WHERE user_id = ANY(%s)", [opened, user_ids])
        for table in (tx_table.table, history_table.table):
            cursor.execute(
                sql.SQL("SELECT setval(pg_get_serial_sequence({name}, 'id'), (SELECT max(id) FROM {table}))").format(
                    name=sql.Literal(table), table=sql.Identifier(table)
                )
            )
        cursor.execute("CREATE TABLE bench_marker (fingerprint text NOT NULL, hot_user_id bigint NOT NULL)")
        cursor.execute("INSERT INTO bench_marker VALUES (%s, %s)", [marker, hot])
    # A freshly loaded table has no visibility map: vacuum so reads see the steady state of a live system.
    with raw.cursor() as cursor:
        cursor.execute(f"VACUUM ANALYZE {tx_table.table}, {history_table.table}, wallets_wallet")
    print(
        f"ledger: {tx_id:,} transactions, {history_id:,} balance-history rows, hot user {hot} "
        f"in {time.perf_counter() - started:.1f}s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("fingerprint")
    p_seed = sub.add_parser("seed")
    p_seed.add_argument("--users", type=int, default=1000)
    p_seed.add_argument("--balance", default="1000000")
    p_seed.add_argument("--currency", default="USDT")
    p_tokens = sub.add_parser("tokens")
    p_tokens.add_argument("--out", type=Path, required=True)
    p_tokens.add_argument("--user-id", type=int, action="append")
    p_tokens.add_argument("--all", action="store_true")
    p_tokens.add_argument("--per-user", type=int, default=1)
    p_ledger = sub.add_parser("ledger")
    p_ledger.add_argument("--transactions", type=int, default=1_000_000)
    p_ledger.add_argument("--users", type=int, default=1000)
    p_ledger.add_argument("--hot-transactions", type=int, default=100_000)
    p_ledger.add_argument("--days", type=int, default=365, help="the span the movements are spread over")
    p_ledger.add_argument("--marker", required=True)
    args = parser.parse_args()

    setup_django()
    if args.command == "fingerprint":
        print(fingerprint())
    elif args.command == "seed":
        seed(users=args.users, balance=args.balance, currency_code=args.currency)
    elif args.command == "tokens":
        if not args.all and not args.user_id:
            parser.error("tokens needs --all or --user-id")
        tokens(out=args.out, user_ids=None if args.all else args.user_id, per_user=args.per_user)
    elif args.command == "ledger":
        ledger(
            transactions=args.transactions,
            users=args.users,
            hot_transactions=args.hot_transactions,
            days=args.days,
            marker=args.marker,
        )


if __name__ == "__main__":
    main()
