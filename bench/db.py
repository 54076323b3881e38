"""PostgreSQL administration (databases named ``BENCH_DB_PREFIX``*, ``bench_*`` by default, only) and
the cached datasets the scenarios run on."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from pathlib import Path

import psycopg

from bench.config import (
    ADMIN_URL,
    DB_API,
    DB_API_TEMPLATE,
    DB_PREFIX,
    DB_READS,
    PY,
    ROOT,
    Options,
    log,
)
from bench.cpu import BackendSampler, loadavg, run_child
from bench.server import bench_env, django
from devtools import liveserver


def admin(dbname: str = "postgres") -> psycopg.Connection:
    return liveserver.connect(ADMIN_URL, dbname)


def db_exists(name: str) -> bool:
    return liveserver.database_exists(ADMIN_URL, name)


def db_drop(name: str) -> None:
    liveserver.drop_database(ADMIN_URL, name, prefix=DB_PREFIX)


def db_create(name: str, template: str | None = None) -> None:
    db_drop(name)
    liveserver.create_database(ADMIN_URL, name, prefix=DB_PREFIX, template=template)


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


def query_pids(name: str) -> list[int]:
    """Backends working for clients of ``name``, parallel query workers included."""
    with admin() as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s "
            "AND backend_type IN ('client backend', 'parallel worker') AND pid <> pg_backend_pid()",
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
    """bench_reads: 1,000,000 transactions over a year, a valid ledger; generated once, reused while it matches."""
    wanted = json.dumps(
        {
            **fingerprint(logfile),
            "transactions": opts.reads_transactions,
            "hot": opts.reads_hot,
            "users": opts.users,
            "days": opts.reads_days,
        },
        sort_keys=True,
    )
    marker = None if regenerate else db_marker(DB_READS)
    if marker is not None and marker[0] == wanted:
        log(f"{DB_READS}: cached dataset matches (hot user {marker[1]})")
        opts.reads_checkpoint = ensure_checkpoint(opts, wanted)
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
            "--days",
            str(opts.reads_days),
            "--marker",
            wanted,
        ],
        database=DB_READS,
        logfile=logfile,
    )
    log(f"  generated in {time.perf_counter() - started:.0f}s")
    opts.reads_checkpoint = ensure_checkpoint(opts, wanted)
    return db_marker(DB_READS)[1]


# What decides whether a stored checkpoint still verifies and is trusted, beyond the ledger's own
# fingerprint (migrations, models, receipts): its payload format and signature check.
CHECKPOINT_INPUTS = ["audit/checkpoint.py"]


def checkpoint_fingerprint(ledger: str) -> str:
    digest = hashlib.sha256(ledger.encode() + b"\0")
    for name in CHECKPOINT_INPUTS:
        path = ROOT / name
        digest.update(name.encode() + b"\0" + (path.read_bytes() if path.exists() else b"") + b"\0")
    return digest.hexdigest()[:16]


def ensure_checkpoint(opts: Options, ledger: str) -> dict:
    """The dataset's checkpoints, as operators take them hourly: taken once and cached with the dataset.

    The routine ``reconcile`` verifies receipt signatures only after the newest validly signed
    checkpoint, so the scenario measures "reconcile shortly after a checkpoint". The first checkpoint of
    a ledger verifies every receipt once; its cost (and the next one's) is measured here and kept in
    ``bench_checkpoint``, so a cached run still reports it. A dataset cached without checkpoints (or
    with ones taken by other checkpoint code) gets fresh ones.
    """
    wanted = checkpoint_fingerprint(ledger)
    with admin(DB_READS) as conn:
        if conn.execute("SELECT to_regclass('bench_checkpoint')").fetchone()[0] is not None:
            row = conn.execute("SELECT fingerprint, measured FROM bench_checkpoint").fetchone()
            if row is not None and row[0] == wanted:
                measured = row[1]
                log(f"{DB_READS}: cached checkpoint (taken in {measured['seconds']} s at {measured['taken_at']})")
                return {**measured, "cached": True}
        stale = conn.execute("SELECT COUNT(*) FROM audit_checkpoint").fetchone()[0]
        if stale:
            # Rows from other checkpoint code may not verify any more (reconcile would flag them) or be
            # trusted by rules that changed: start the dataset's checkpoints over. Append-only
            # triggers guard the table; this is a bench_* database only.
            with conn.transaction():
                conn.execute("ALTER TABLE audit_checkpoint DISABLE TRIGGER USER")
                conn.execute("DELETE FROM audit_checkpoint")
                conn.execute("ALTER TABLE audit_checkpoint ENABLE TRIGGER USER")
        conn.execute("DROP TABLE IF EXISTS bench_checkpoint")
    log(f"{DB_READS}: manage.py checkpoint (the first one verifies every receipt once: minutes)")
    measured = _checkpoint(opts, "first")
    # The next one is what the hourly job costs on a ledger this size: it proves the previous
    # checkpoint's commitments and verifies only the receipts since (none here).
    log(f"{DB_READS}: manage.py checkpoint again (the hourly one, nothing new since)")
    measured["next"] = _checkpoint(opts, "next")
    measured["stale_checkpoints_removed"] = stale
    with admin(DB_READS) as conn:
        conn.execute("CREATE TABLE bench_checkpoint (fingerprint text NOT NULL, measured jsonb NOT NULL)")
        conn.execute("INSERT INTO bench_checkpoint VALUES (%s, %s)", [wanted, json.dumps(measured)])
    return {**measured, "cached": False}


def _checkpoint(opts: Options, label: str) -> dict:
    """``manage.py checkpoint --out FILE`` on the dataset: wall, CPU (its own and PostgreSQL's), peak RSS."""
    out, stdout, stderr = (opts.raw / f"checkpoint_reads_{label}{ext}" for ext in (".json", ".stdout.json", ".err"))
    before = loadavg()
    with BackendSampler(lambda: query_pids(DB_READS)) as backends:
        run = run_child(
            [str(PY), "manage.py", "checkpoint", "--out", str(out)], env=bench_env(DB_READS), out=stdout, err=stderr
        )
    if run.code != 0:
        tail = stderr.read_text(errors="replace")[-3000:]
        raise SystemExit(f"manage.py checkpoint on {DB_READS} failed (exit {run.code}):\n{tail}")
    measured = {
        "command": "manage.py checkpoint --out FILE",
        "taken_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "seconds": round(run.wall_s, 2),
        "cpu_s": round(run.user_s + run.sys_s, 2),
        "user_s": round(run.user_s, 2),
        "sys_s": round(run.sys_s, 2),
        "db_cpu_s": backends.cpu_s,
        "peak_rss_mb": round(run.rss_kib / 1024, 1),
        "loadavg_before": before,
        "loadavg_after": loadavg(),
        "checkpoint": json.loads(stdout.read_text()),
    }
    log(
        f"  checkpoint {measured['checkpoint']['checkpoint_id']} in {measured['seconds']} s "
        f"(CPU {measured['cpu_s']} s, PostgreSQL {measured['db_cpu_s']} s, load {before[0]})"
    )
    return measured


def mint(opts: Options, database: str, name: str, *args: str) -> Path:
    out = opts.raw / f"tokens_{name}.txt"
    django(["bench/tasks.py", "tokens", "--out", str(out), *args], database=database, logfile=opts.raw / "setup.log")
    return out
