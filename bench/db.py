"""PostgreSQL administration (``bench_*`` databases only) and the cached datasets the scenarios run on."""

from __future__ import annotations

import json
import time
from pathlib import Path

import psycopg

from bench.config import (
    ADMIN_URL,
    DB_API,
    DB_API_TEMPLATE,
    DB_READS,
    Options,
    log,
)
from bench.server import django
from devtools import liveserver


def admin(dbname: str = "postgres") -> psycopg.Connection:
    return liveserver.connect(ADMIN_URL, dbname)


def db_exists(name: str) -> bool:
    return liveserver.database_exists(ADMIN_URL, name)


def db_drop(name: str) -> None:
    liveserver.drop_database(ADMIN_URL, name, prefix="bench_")


def db_create(name: str, template: str | None = None) -> None:
    db_drop(name)
    liveserver.create_database(ADMIN_URL, name, prefix="bench_", template=template)


def db_marker(name: str) -> tuple[str, int] | None:
    if not db_exists(name):
        return None
    with admin(name) as conn:
        if conn.execute("SELECT to_regclass('bench_marker')").fetchone()[0] is None:
            return None
        return conn.execute("SELECT fingerprint, hot_user_id FROM bench_marker").fetchone()


def db_stats(name: str) -> dict:
    with admin() as conn:
        row = conn.execute(
            "SELECT xact_commit, xact_rollback, deadlocks, tup_inserted, tup_updated, tup_fetched, blks_read, blks_hit "
            "FROM pg_stat_database WHERE datname = %s",
            [name],
        ).fetchone()
    keys = ["xact_commit", "xact_rollback", "deadlocks", "tup_inserted", "tup_updated", "tup_fetched"]
    return dict(zip(keys + ["blks_read", "blks_hit"], row, strict=True))


def backend_pids(name: str) -> list[int]:
    with admin() as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND backend_type = 'client backend' "
            "AND pid <> pg_backend_pid()",
            [name],
        ).fetchall()
    return [r[0] for r in rows]


def fingerprint(logfile: Path) -> dict:
    return json.loads(django(["bench/tasks.py", "fingerprint"], database="postgres", logfile=logfile, capture=True))


def prepare_api_db(opts: Options, logfile: Path) -> None:
    """bench_api = a fresh copy of a cached template: migrated schema, 1,000 funded users."""
    wanted = json.dumps({**fingerprint(logfile), "users": opts.users}, sort_keys=True)
    marker = db_marker(DB_API_TEMPLATE)
    if marker is None or marker[0] != wanted:
        log(f"building {DB_API_TEMPLATE}: migrate + {opts.users} funded users (cached for later runs)")
        db_create(DB_API_TEMPLATE)
        django(["manage.py", "migrate", "--noinput"], database=DB_API_TEMPLATE, logfile=logfile)
        django(["bench/tasks.py", "seed", "--users", str(opts.users)], database=DB_API_TEMPLATE, logfile=logfile)
        with admin(DB_API_TEMPLATE) as conn:
            conn.execute("CREATE TABLE bench_marker (fingerprint text NOT NULL, hot_user_id bigint NOT NULL)")
            conn.execute("INSERT INTO bench_marker VALUES (%s, 0)", [wanted])
            conn.execute("VACUUM ANALYZE")
    db_create(DB_API, template=DB_API_TEMPLATE)


def prepare_reads_db(opts: Options, logfile: Path, *, regenerate: bool) -> int:
    """bench_reads: 1,000,000 transactions forming a valid ledger; generated once, reused while it matches."""
    wanted = json.dumps(
        {**fingerprint(logfile), "transactions": opts.reads_transactions, "hot": opts.reads_hot, "users": opts.users},
        sort_keys=True,
    )
    marker = None if regenerate else db_marker(DB_READS)
    if marker is not None and marker[0] == wanted:
        log(f"{DB_READS}: cached dataset matches (hot user {marker[1]})")
        return marker[1]
    log(f"generating {DB_READS}: {opts.reads_transactions:,} transactions (one-off; cached afterwards)")
    started = time.perf_counter()
    db_create(DB_READS)
    django(["manage.py", "migrate", "--noinput"], database=DB_READS, logfile=logfile)
    django(
        [
            "bench/tasks.py",
            "ledger",
            "--transactions",
            str(opts.reads_transactions),
            "--users",
            str(opts.users),
            "--hot-transactions",
            str(opts.reads_hot),
            "--marker",
            wanted,
        ],
        database=DB_READS,
        logfile=logfile,
    )
    log(f"  generated in {time.perf_counter() - started:.0f}s")
    return db_marker(DB_READS)[1]


def mint(opts: Options, database: str, name: str, *args: str) -> Path:
    out = opts.raw / f"tokens_{name}.txt"
    django(["bench/tasks.py", "tokens", "--out", str(out), *args], database=database, logfile=opts.raw / "setup.log")
    return out
