#!/usr/bin/env python
"""The benchmark: the API against the database's own ceiling, in one command.

    .venv/bin/python bench/run.py                      # every scenario, 15 s each
    .venv/bin/python bench/run.py -s uniform,hot -d 30 # a subset, longer
    .venv/bin/python bench/run.py --ceiling-only 3     # just the yardstick, to see the machine drift

Needs PostgreSQL on 127.0.0.1:5432 (user postgres, trust), ``wrk`` and ``pgbench``
(``apt-get update && apt-get install -y wrk postgresql-client``). Uses only databases named
``bench_*``. Each API run is followed at once by the yardstick (``pgbench -n -c 16 -j 1 -T 15``
with ``reference_transfer.sql``), and the ratio of the two is the figure that survives the drift of
a shared machine. Results go to ``bench/results/latest.json``; logs and raw outputs to
``bench/results/raw/<timestamp>/`` (git-ignored). See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import datetime as dt
import hashlib
import json
import math
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pgproxy import CountingProxy, normalize  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
LUA = BENCH / "lua"
RESULTS = BENCH / "results"
PY = Path(sys.executable)
PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"
DB_API, DB_API_TEMPLATE, DB_READS, DB_CEILING = "bench_api", "bench_api_template", "bench_reads", "bench_ceiling"
SCENARIOS = ["uniform", "hot", "history_page1", "history_deep", "reconcile"]
ALIASES = {"reads": ["history_page1", "history_deep"], "transfers": ["uniform", "hot"], "all": SCENARIOS}
CLK_TCK = os.sysconf("SC_CLK_TCK")
# Goals from the issue: ratio to the ceiling, latency, errors.
GOALS = {
    "uniform": {"ratio": 0.35, "p99_ms": 60, "errors": 0},
    "hot": {"ratio": 0.55, "errors": 0, "deadlocks": 0},
    "history_page1": {"p99_ms": 20, "errors": 0},
    "history_deep": {"p99_ms": 20, "errors": 0},
    "reconcile": {"seconds": 60},
}
# Fixed so the cached 1,000,000-transaction dataset's receipts keep verifying across runs.
RECEIPT_KEY = hashlib.sha256(b"wallet-api benchmark receipts (not a production key)").hexdigest()
SECRET_KEY = secrets.token_urlsafe(48)
JWT_SECRET = secrets.token_urlsafe(36)


def log(message: str) -> None:
    print(f"[{dt.datetime.now():%H:%M:%S}] {message}", flush=True)


# --- PostgreSQL administration (bench_* databases only) -------------------------------------------


def admin(dbname: str = "postgres") -> psycopg.Connection:
    return psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=dbname, autocommit=True)


def _guard(name: str) -> None:
    if not name.startswith("bench_"):
        raise SystemExit(f"refusing to touch database {name!r}: the bench only uses bench_* databases")


def db_exists(name: str) -> bool:
    with admin() as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is not None


def db_drop(name: str) -> None:
    _guard(name)
    with admin() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def db_create(name: str, template: str | None = None) -> None:
    _guard(name)
    db_drop(name)
    with admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))


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


# --- Processes and CPU ---------------------------------------------------------------------------


def proc_cpu(pid: int, *, user_only: bool = False) -> float | None:
    """utime + stime (or utime alone) of one process, in seconds."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + (0 if user_only else int(fields[12]))) / CLK_TCK


def cpu_of(pids: list[int]) -> dict[int, float]:
    return {pid: cpu for pid in pids if (cpu := proc_cpu(pid)) is not None}


def cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    # A process that appeared during the run counts from zero; one that vanished is lost (reported).
    return sum(after[p] - before.get(p, 0.0) for p in after)


def machine_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    total = sum(values[:8])
    return total - idle, total


def run_measured(
    cmd: list[str], *, env: dict | None, out: Path, cwd: Path = ROOT, err: Path | None = None
) -> tuple[int, float, float, int]:
    """Run ``cmd`` with output to ``out``; return (exit code, wall s, CPU s, peak RSS KiB) of that child alone."""
    started = time.perf_counter()
    with out.open("wb") as stream, (err or out).open("ab") as err_stream:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=stream, stderr=err_stream if err else subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, time.perf_counter() - started, usage.ru_utime + usage.ru_stime, usage.ru_maxrss


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- The application under test ------------------------------------------------------------------


def bench_env(database: str, **extra: str) -> dict[str, str]:
    """Production settings (DEBUG off, real secrets), minus what a load test must switch off."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABASE_", "DB_", "KAFKA_", "REDIS_", "RATELIMIT_", "DJANGO_", "SIGNUP_"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="wallet_project.settings.base",
        DEBUG="false",
        SECRET_KEY=SECRET_KEY,
        JWT_SECRET=JWT_SECRET,
        RECEIPT_SIGNING_KEY=RECEIPT_KEY,
        SECURE_SSL_REDIRECT="false",
        ALLOWED_HOSTS="127.0.0.1",
        DATABASE_URL=f"postgres://{PG_USER}@{PG_HOST}:{PG_PORT}/{database}",
        DB_CONN_MAX_AGE="600",
        RATELIMIT_ENABLE="false",
        LOG_LEVEL="WARNING",
        KAFKA_BOOTSTRAP_SERVERS="",
        SIGNUP_GRANT="",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def django(args: list[str], *, database: str, logfile: Path, capture: bool = False) -> str:
    """Run ``manage.py``/``bench/tasks.py`` with the bench environment; fail loudly with the log tail."""
    with logfile.open("a") as stream:
        stream.write(f"$ {' '.join(args)}\n")
        stream.flush()
        proc = subprocess.run(
            [str(PY), *args],
            cwd=ROOT,
            env=bench_env(database),
            stdout=subprocess.PIPE if capture else stream,
            stderr=stream,
            text=True,
            check=False,
        )
    if proc.returncode != 0:
        tail = "".join(logfile.read_text().splitlines(keepends=True)[-30:])
        raise SystemExit(f"failed: {' '.join(args)} (exit {proc.returncode})\n{tail}")
    return proc.stdout if capture else ""


class Server:
    """gunicorn with the repository's gunicorn.conf.py, as production runs it."""

    def __init__(self, *, database: str, logfile: Path, **extra_env: str) -> None:
        self.port = free_port()
        self.env = bench_env(database, GUNICORN_BIND=f"127.0.0.1:{self.port}", **extra_env)
        self.logfile = logfile
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Server:
        self._log = self.logfile.open("ab")
        gunicorn = PY.parent / "gunicorn"
        self.proc = subprocess.Popen(
            [str(gunicorn), "-c", "gunicorn.conf.py"],
            cwd=ROOT,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"gunicorn exited ({self.proc.returncode}); see {self.logfile}")
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:  # noqa: S310 - loopback
                    if response.status == 200 and len(self.workers()) >= self.expected_workers():
                        return self
            time.sleep(0.3)
        self.__exit__()
        raise SystemExit(f"gunicorn did not become healthy; see {self.logfile}")

    def expected_workers(self) -> int:
        return int(self.env.get("GUNICORN_WORKERS", os.cpu_count() + 1))

    def workers(self) -> list[int]:
        try:
            text = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        except OSError:
            return []
        return [int(p) for p in text.split()]

    def __exit__(self, *exc) -> None:
        if self.proc is None:
            return
        workers = self.workers()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(40)
            except subprocess.TimeoutExpired:
                for pid in [self.proc.pid, *workers]:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                self.proc.wait(10)
        self._log.close()
        self.proc = None

    def log_count(self, needle: str) -> int:
        return sum(needle in line for line in self.logfile.read_text(errors="replace").splitlines())


def http(method: str, url: str, *, token: str | None = None, body: dict | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - loopback only
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def read_tokens(path: Path) -> list[tuple[int, str]]:
    return [(int(a), b) for a, b in (line.split() for line in path.read_text().splitlines() if line.strip())]


# --- Load generator and yardstick ----------------------------------------------------------------


@dataclass
class Options:
    duration: int
    warmup: int
    connections: int
    threads: int
    users: int
    raw: Path
    yardstick: Path
    idempotency: bool
    reads_transactions: int
    reads_hot: int
    page_size: int
    deep_page: int | None
    timeout: str = "10s"
    ceilings: list[dict] = field(default_factory=list)
    # scenario -> (database, wrk script, script environment), for --profile
    recipes: dict[str, tuple[str, str, dict[str, str]]] = field(default_factory=dict)


def wrk(
    opts: Options, *, name: str, url: str, script: str, env: dict[str, str], duration: int, connections: int = 0
) -> dict:
    env = {**os.environ, "BENCH_LUA_DIR": str(LUA), **env}
    cmd = [
        "wrk",
        f"-t{opts.threads}",
        f"-c{connections or opts.connections}",
        f"-d{duration}s",
        "--timeout",
        opts.timeout,
        "-s",
        str(LUA / script),
        url,
    ]
    out = opts.raw / f"wrk_{name}.txt"
    code, wall, cpu, _ = run_measured(cmd, env=env, out=out)
    text = out.read_text(errors="replace")
    match = re.search(r"^BENCH_JSON (.*)$", text, re.M)
    if code != 0 or not match:
        raise SystemExit(f"wrk failed for {name} (exit {code}):\n{text[-2000:]}")
    result = json.loads(match.group(1))
    result["wrk_cpu_s"] = round(cpu, 3)
    result["wall_s"] = round(wall, 3)
    return result


def ceiling(opts: Options, *, nwallets: int, label: str) -> dict:
    """The yardstick, measured now: reload the reference schema and run pgbench for ``duration`` seconds."""
    schema, transfer = opts.yardstick / "reference_schema.sql", opts.yardstick / "reference_transfer.sql"
    if not db_exists(DB_CEILING):
        db_create(DB_CEILING)
    conninfo = ["-h", PG_HOST, "-p", str(PG_PORT), "-U", PG_USER]
    subprocess.run(
        ["psql", *conninfo, "-q", "-v", "ON_ERROR_STOP=1", "-d", DB_CEILING, "-f", str(schema)],
        check=True,
        capture_output=True,
    )
    prefix = opts.raw / f"pgbench_{label}"
    cmd = [
        "pgbench",
        *conninfo,
        "-n",
        "-c",
        str(opts.connections),
        "-j",
        "1",
        "-T",
        str(opts.duration),
        "-D",
        f"nwallets={nwallets}",
        "-f",
        str(transfer),
        "-l",
        f"--log-prefix={prefix}",
        DB_CEILING,
    ]
    busy0, total0 = machine_cpu()
    code, wall, cpu, _ = run_measured(cmd, env=None, out=opts.raw / f"pgbench_{label}.txt", cwd=opts.raw)
    busy1, total1 = machine_cpu()
    text = (opts.raw / f"pgbench_{label}.txt").read_text()
    tps = re.search(r"tps = ([\d.]+) \(without initial connection time\)", text)
    if code != 0 or not tps:
        raise SystemExit(f"pgbench failed (exit {code}):\n{text[-2000:]}")
    latencies = []
    for path in opts.raw.glob(f"pgbench_{label}.*"):
        if path.suffix != ".txt":
            latencies += [int(line.split()[2]) for line in path.read_text().splitlines() if line.strip()]
            path.unlink()
    latencies.sort()
    failed = re.search(r"number of failed transactions: (\d+)", text)
    result = {
        "label": label,
        "nwallets": nwallets,
        "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "tps": round(float(tps.group(1)), 1),
        "transactions": len(latencies),
        "failed": int(failed.group(1)) if failed else 0,
        "p50_ms": _pct_ms(latencies, 50),
        "p95_ms": _pct_ms(latencies, 95),
        "p99_ms": _pct_ms(latencies, 99),
        "pgbench_cpu_s": round(cpu, 2),
        "machine_busy_pct": round(100 * (busy1 - busy0) / max(1, total1 - total0), 1),
    }
    opts.ceilings.append(result)
    log(f"  ceiling ({label}, nwallets={nwallets}): {result['tps']} tps, p99 {result['p99_ms']} ms")
    return result


def _pct_ms(sorted_us: list[int], pct: float) -> float | None:
    if not sorted_us:
        return None
    return round(sorted_us[min(len(sorted_us) - 1, math.ceil(pct / 100 * len(sorted_us)) - 1)] / 1000, 2)


# --- Datasets ------------------------------------------------------------------------------------


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


# --- Scenarios -----------------------------------------------------------------------------------


def measure(opts: Options, server: Server, *, name: str, database: str, script: str, env: dict[str, str]) -> dict:
    """Warm up, then one measured wrk run with CPU and database counters around it."""
    stats0 = db_stats(database)
    warm = {"requests": 0, "statuses": {}, "errors": {}}
    if opts.warmup > 0:
        warm = wrk(opts, name=f"{name}_warmup", url=server.url, script=script, env=env, duration=opts.warmup)
    workers, backends = server.workers(), backend_pids(database)
    app0, db0, master0 = cpu_of(workers), cpu_of(backends), proc_cpu(server.proc.pid)
    app_user0 = {p: proc_cpu(p, user_only=True) or 0.0 for p in workers}
    busy0, total0 = machine_cpu()
    retries0 = server.log_count("retrying transaction")
    result = wrk(opts, name=name, url=server.url, script=script, env=env, duration=opts.duration)
    busy1, total1 = machine_cpu()
    app1, db1 = cpu_of(server.workers()), cpu_of(backend_pids(database))
    app_user1 = {p: proc_cpu(p, user_only=True) or 0.0 for p in app1}
    master1 = proc_cpu(server.proc.pid)
    n = max(1, result["requests"])
    seconds = result["duration_us"] / 1e6
    statuses = result["statuses"]
    ok = sum(v for k, v in statuses.items() if k.startswith("2"))
    socket_errors = sum(result["errors"][k] for k in ("connect", "read", "write", "timeout"))
    app_cpu, db_cpu = cpu_delta(app0, app1), cpu_delta(db0, db1)
    machine_busy = (busy1 - busy0) / CLK_TCK
    ours = app_cpu + db_cpu + (master1 - master0) + result["wrk_cpu_s"]
    lat = result["latency_us"]
    return {
        "scenario": name,
        "requests": result["requests"],
        "seconds": round(seconds, 2),
        "rps": round(result["requests"] / seconds, 1),
        "ok": ok,
        "p50_ms": lat["p50"] / 1000,
        "p90_ms": lat["p90"] / 1000,
        "p95_ms": lat["p95"] / 1000,
        "p99_ms": lat["p99"] / 1000,
        "p999_ms": lat["p999"] / 1000,
        "max_ms": lat["max"] / 1000,
        "mean_ms": round(lat["mean"] / 1000, 2),
        "statuses": statuses,
        "errors_non_2xx": result["requests"] - ok,
        "errors_socket": socket_errors,
        "errors_socket_detail": result["errors"],
        "errors": result["requests"] - ok + socket_errors,
        "app_cpu_ms_per_request": round(1000 * app_cpu / n, 3),
        "app_user_cpu_ms_per_request": round(1000 * cpu_delta(app_user0, app_user1) / n, 3),
        "db_cpu_ms_per_request": round(1000 * db_cpu / n, 3),
        "app_workers": len(workers),
        "workers_restarted": sorted(set(workers) ^ set(server.workers())),
        "db_backends": len(backends),
        "wrk_cpu_s": result["wrk_cpu_s"],
        "machine_busy_pct": round(100 * (busy1 - busy0) / max(1, total1 - total0), 1),
        "other_cpu_s": round(machine_busy - ours, 2),
        "retries_logged": server.log_count("retrying transaction") - retries0,
        "warmup_requests": warm["requests"],
        "warmup_ok": sum(v for k, v in warm["statuses"].items() if k.startswith("2")),
        "warmup_socket_errors": sum(warm["errors"].get(k, 0) for k in ("connect", "read", "write", "timeout")),
        "_stats_before": stats0,
    }


def finish(opts: Options, row: dict, *, database: str, nwallets: int) -> dict:
    """The ceiling right after the API run, the ratio, and the database counters (flushed by then)."""
    ceil = ceiling(opts, nwallets=nwallets, label=row["scenario"])
    stats0, stats1 = row.pop("_stats_before"), db_stats(database)
    total = max(1, row["requests"] + row["warmup_requests"])
    row.update(
        ceiling_tps=ceil["tps"],
        ceiling_p99_ms=ceil["p99_ms"],
        ceiling_nwallets=nwallets,
        ratio=round(row["rps"] / ceil["tps"], 3),
        db_xacts_per_request=round(
            (stats1["xact_commit"] - stats0["xact_commit"] + stats1["xact_rollback"] - stats0["xact_rollback"]) / total,
            2,
        ),
        db_rollbacks=stats1["xact_rollback"] - stats0["xact_rollback"],
        deadlocks=stats1["deadlocks"] - stats0["deadlocks"],
    )
    goals = GOALS.get(row["scenario"], {})
    verdicts = {}
    if "ratio" in goals:
        verdicts["ratio"] = row["ratio"] >= goals["ratio"]
    if "p99_ms" in goals:
        verdicts["p99_ms"] = row["p99_ms"] <= goals["p99_ms"]
    if "errors" in goals:
        verdicts["errors"] = row["errors"] <= goals["errors"]
    if "deadlocks" in goals:
        verdicts["deadlocks"] = row["deadlocks"] <= goals["deadlocks"]
    row["goals"] = {"targets": goals, "met": verdicts, "all_met": all(verdicts.values())}
    log(
        f"  {row['scenario']}: {row['rps']} req/s, p50/p95/p99 {row['p50_ms']}/{row['p95_ms']}/{row['p99_ms']} ms, "
        f"errors {row['errors']}, ratio {row['ratio']}"
    )
    return row


def probe(url: str, token: str, *, method: str = "GET", body: dict | None = None) -> dict:
    status, payload = http(method, url, token=token, body=body)
    if status != 200:
        raise SystemExit(f"probe {method} {url} answered {status}: {payload}")
    return payload


def transfer_scenarios(opts: Options, names: list[str], results: dict) -> dict:
    uniform_tokens = mint(opts, DB_API, "uniform", "--all")
    users = sorted({uid for uid, _ in read_tokens(uniform_tokens)})
    hot_tokens = mint(opts, DB_API, "hot", "--user-id", str(users[0]), "--user-id", str(users[1]), "--per-user", "8")
    amount = "0.000001"
    acknowledged = unanswered = 0
    with Server(database=DB_API, logfile=opts.raw / "gunicorn_api.log") as server:
        uid, token = read_tokens(uniform_tokens)[0]
        probe(
            f"{server.url}/wallet/transfer",
            token,
            method="POST",
            body={"to_user_id": users[1], "currency": "USDT", "amount": amount},
        )
        acknowledged += 1
        for name in names:
            tokens = uniform_tokens if name == "uniform" else hot_tokens
            env = {
                "BENCH_TOKENS": str(tokens),
                "BENCH_AMOUNT": amount,
                "BENCH_IDEMPOTENCY": "1" if opts.idempotency else "0",
            }
            log(f"scenario {name}: {opts.connections} connections, {opts.duration}s after {opts.warmup}s warm-up")
            opts.recipes[name] = (DB_API, "transfer.lua", env)
            row = measure(opts, server, name=name, database=DB_API, script="transfer.lua", env=env)
            acknowledged += row["ok"] + row["warmup_ok"]
            # wrk stops with up to one request in flight per connection, and a timed-out request may
            # still commit: those transfers are recorded without a 2xx having been seen.
            unanswered += (
                row["errors_socket"] + row["warmup_socket_errors"] + opts.connections * (2 if opts.warmup else 1)
            )
            results[name] = finish(opts, row, database=DB_API, nwallets=1000 if name == "uniform" else 2)
    return {"acknowledged_transfers": acknowledged, "unanswered_bound": unanswered, "users": users}


def history_scenarios(opts: Options, names: list[str], results: dict, hot_user: int) -> None:
    tokens = mint(opts, DB_READS, "history", "--user-id", str(hot_user), "--per-user", str(opts.connections))
    last_page = math.ceil(opts.reads_hot / opts.page_size)
    pages = {"history_page1": 1, "history_deep": opts.deep_page or last_page}
    with Server(database=DB_READS, logfile=opts.raw / "gunicorn_reads.log") as server:
        for name in names:
            path = f"/transactions/{hot_user}?page={pages[name]}&page_size={opts.page_size}"
            body = probe(server.url + path, read_tokens(tokens)[0][1])
            if not body.get("data"):
                raise SystemExit(f"{path} returned no rows: {body.get('pagination')}")
            log(f"scenario {name}: GET {path} (total {body['pagination']['total']:,})")
            opts.recipes[name] = (DB_READS, "get.lua", {"BENCH_TOKENS": str(tokens), "BENCH_PATH": path})
            row = measure(
                opts,
                server,
                name=name,
                database=DB_READS,
                script="get.lua",
                env={"BENCH_TOKENS": str(tokens), "BENCH_PATH": path},
            )
            row.update(path=path, page=pages[name], history_total=body["pagination"]["total"])
            results[name] = finish(opts, row, database=DB_READS, nwallets=1000)
            # With 16 connections latency is mostly queueing (p50 ~ 16 / throughput); one connection shows
            # the service time of the request itself.
            env = opts.recipes[name][2]
            one = wrk(
                opts,
                name=f"{name}_1conn",
                url=server.url,
                script="get.lua",
                env=env,
                duration=opts.duration,
                connections=1,
            )
            lat = one["latency_us"]
            results[name]["single_connection"] = {
                "rps": round(one["requests"] / (one["duration_us"] / 1e6), 1),
                "p50_ms": lat["p50"] / 1000,
                "p95_ms": lat["p95"] / 1000,
                "p99_ms": lat["p99"] / 1000,
                "errors": one["requests"]
                - sum(v for k, v in one["statuses"].items() if k.startswith("2"))
                + sum(one["errors"].values()),
            }
            log(f"  {name} with one connection: p50/p99 {lat['p50'] / 1000}/{lat['p99'] / 1000} ms")


def run_reconcile(opts: Options, database: str, label: str) -> dict:
    out = opts.raw / f"reconcile_{label}.json"
    cmd = [str(PY), "manage.py", "reconcile", "--json"]
    code, wall, cpu, rss_kib = run_measured(
        cmd, env=bench_env(database), out=out, err=opts.raw / f"reconcile_{label}.stderr.txt"
    )
    text = out.read_text(errors="replace")
    try:
        report = json.loads(text)
    except json.JSONDecodeError:
        report = {}
    with admin(database) as conn:
        transactions = conn.execute("SELECT COUNT(*) FROM transactions_transaction").fetchone()[0]
        history = conn.execute("SELECT COUNT(*) FROM audit_balancehistory").fetchone()[0]
    return {
        "database": database,
        "exit_code": code,
        "ok": code == 0 and report.get("ok") is True,
        "seconds": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "peak_rss_mb": round(rss_kib / 1024, 1),
        "reported_seconds": report.get("seconds"),
        "transactions": transactions,
        "balance_history_rows": history,
        "checks": {
            c["name"]: {"checked": c["checked"], "mismatches": c["mismatches"]} for c in report.get("checks", [])
        },
    }


def reconcile_scenario(opts: Options, results: dict) -> None:
    log(f"scenario reconcile: manage.py reconcile --json over {DB_READS}")
    row = run_reconcile(opts, DB_READS, "reads")
    ceil = ceiling(opts, nwallets=1000, label="reconcile")
    row.update(
        scenario="reconcile",
        ceiling_tps=ceil["tps"],
        ceiling_nwallets=1000,
        goals={
            "targets": GOALS["reconcile"],
            "met": {"seconds": row["seconds"] <= GOALS["reconcile"]["seconds"], "ok": row["ok"]},
        },
    )
    row["goals"]["all_met"] = all(row["goals"]["met"].values())
    results["reconcile"] = row
    log(f"  reconcile: {row['seconds']} s, peak RSS {row['peak_rss_mb']} MB, ok={row['ok']}")


# --- Round trips: a short, sequential run through the counting proxy ------------------------------


def count_round_trips(opts: Options, database: str, requests: list[tuple[str, str, str, dict | None]]) -> dict:
    """Send ``requests`` one at a time to a 1-worker gunicorn whose database is behind the proxy."""
    with CountingProxy(upstream_host=PG_HOST, upstream_port=PG_PORT) as proxy:
        url_env = {"DATABASE_URL": f"postgres://{PG_USER}@127.0.0.1:{proxy.port}/{database}?sslmode=disable"}
        with Server(
            database=database, logfile=opts.raw / f"gunicorn_roundtrips_{database}.log", GUNICORN_WORKERS="1", **url_env
        ) as server:
            per_request, statements = [], collections.Counter()
            example: list[str] = []
            (worker,) = server.workers()
            cpu0 = user0 = None
            for i, (method, path, token, body) in enumerate(requests):
                if i == 3:  # the first requests open the connection and warm caches
                    cpu0, user0 = proc_cpu(worker), proc_cpu(worker, user_only=True)
                proxy.counter.reset()
                status, _ = http(method, server.url + path, token=token, body=body)
                if status != 200:
                    raise SystemExit(f"round-trip probe {method} {path} answered {status}")
                time.sleep(0.05)  # let the proxy thread drain what the worker sent
                trips = proxy.counter.take()
                if i < 3:
                    continue
                per_request.append(len(trips))
                for trip in trips:
                    statements[" ; ".join(normalize(s)[:160] for s in trip.statements)] += 1
                if not example:
                    example = [" ; ".join(normalize(s)[:200] for s in trip.statements) for trip in trips]
            cpu1, user1 = proc_cpu(worker), proc_cpu(worker, user_only=True)
    n = len(per_request)
    return {
        "method": "wire count: PostgreSQL protocol proxy, Query + Sync messages per request, 1 gunicorn worker",
        "requests_counted": n,
        "round_trips_per_request": round(sum(per_request) / n, 2),
        # One request at a time: CPU per request without queueing behind 15 others (50 ms sleeps excluded:
        # the worker is idle then). Includes user and kernel time of the worker.
        "app_cpu_ms_sequential": round(1000 * (cpu1 - cpu0) / n, 2),
        "app_user_cpu_ms_sequential": round(1000 * (user1 - user0) / n, 2),
        "min": min(per_request),
        "max": max(per_request),
        "statements_per_request": {k: round(v / n, 2) for k, v in statements.most_common()},
        "example_request": example,
    }


def round_trip_section(opts: Options, names: list[str], api_users: list[int] | None, hot_user: int | None) -> dict:
    out = {}
    if api_users:
        tokens = dict(read_tokens(opts.raw / "tokens_uniform.txt"))
        reqs = []
        for i in range(53):
            sender, recipient = api_users[(2 * i) % len(api_users)], api_users[(2 * i + 1) % len(api_users)]
            body = {"to_user_id": recipient, "currency": "USDT", "amount": "0.000001"}
            reqs.append(("POST", "/wallet/transfer", tokens[sender], body))
        log("round trips: transfer")
        out["transfer"] = count_round_trips(opts, DB_API, reqs)
        # The floor: gunicorn + the middleware stack + a view that touches nothing.
        out["health"] = count_round_trips(opts, DB_API, [("GET", "/health", "", None)] * 53)
    if hot_user and any(n.startswith("history") for n in names):
        token = read_tokens(opts.raw / "tokens_history.txt")[0][1]
        last_page = opts.deep_page or math.ceil(opts.reads_hot / opts.page_size)
        for name, page in (("history_page1", 1), ("history_deep", last_page)):
            if name in names:
                log(f"round trips: {name}")
                path = f"/transactions/{hot_user}?page={page}&page_size={opts.page_size}"
                out[name] = count_round_trips(opts, DB_READS, [("GET", path, token, None)] * 33)
    return out


# --- Profile (optional): py-spy on the workers during an extra, unmeasured run --------------------


def profile(opts: Options, name: str) -> tuple[dict, int]:
    """py-spy on every worker during an extra, unmeasured run of scenario ``name`` (same load)."""
    spy = shutil.which("py-spy") or str(PY.parent / "py-spy")
    if not Path(spy).exists():
        raise SystemExit("--profile needs py-spy: .venv/bin/pip install -r requirements-dev.txt")
    database, script, env = opts.recipes[name]
    out = opts.raw / f"profile_{name}.txt"
    with Server(database=database, logfile=opts.raw / f"gunicorn_profile_{name}.log") as server:
        warm = wrk(opts, name=f"profile_{name}_warmup", url=server.url, script=script, env=env, duration=2)
        # --gil: only samples where a worker holds the GIL, i.e. runs Python; waits on PostgreSQL or on the
        # client's socket release the GIL and are left out, so the shares are shares of application CPU.
        spy_proc = subprocess.Popen(
            [spy, "record", "--pid", str(server.proc.pid), "--subprocesses", "--nonblocking", "--gil",
             "--rate", "250", "--format", "raw", "--duration", str(opts.duration), "--output", str(out)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(1)
        run = wrk(opts, name=f"profile_{name}", url=server.url, script=script, env=env, duration=opts.duration)
        spy_proc.wait(60)
    ok = sum(v for r in (warm, run) for k, v in r["statuses"].items() if k.startswith("2"))
    return summarize_profile(out), ok


# Frames that name a cost on the request path; inclusive share of worker on-CPU samples.
PROFILE_BUCKETS = [
    ("gunicorn: accept, parse, write, close", "handle (gunicorn/workers/sync.py"),
    ("Django request (WSGIHandler.__call__)", "__call__ (django/core/handlers/wsgi.py"),
    ("  middleware before/after the view", "MiddlewareMixin.__call__ (django/utils/deprecation.py"),
    ("  DRF dispatch (APIView.dispatch)", "dispatch (rest_framework/views.py"),
    ("    authentication (any class, via Request._authenticate)", "_authenticate (rest_framework/request.py"),
    ("      token decode/verify (PyJWT)", "decode (jwt/api_jwt.py"),
    ("      user lookup (get_user)", "get_user (wallet_project/core/authentication.py"),
    ("    view: currency lookup (currency_get)", "currency_get (currencies/selectors.py"),
    ("    throttling / rate limit", "check_throttles (rest_framework/views.py"),
    ("    transfer view (TransferViewSet.create)", "create (transactions/api/views.py"),
    ("      input serializer (is_valid)", "is_valid (rest_framework/serializers.py"),
    ("      transfer_create", "transfer_create (transactions/services.py"),
    ("        receipt hash (transaction_hash)", "transaction_hash (wallet_project/core/receipts.py"),
    ("        Ed25519 sign", "sign (wallet_project/core/receipts.py"),
    ("        audit chain (entry_hash)", "entry_hash (audit/chain.py"),
    ("        commit (Atomic.__exit__)", "__exit__ (django/db/transaction.py"),
    ("    history view (HistoryViewSet.list)", "list (transactions/api/views.py"),
    ("      paginate (count + page)", "paginate (wallet_project/core/pagination.py"),
    ("      history_item (per row)", "history_item (transactions/selectors.py"),
    ("    response finalize (render)", "finalize_response (rest_framework/views.py"),
    ("ORM: SQL compilation (as_sql)", "as_sql (django/db/models/sql/compiler.py"),
    ("ORM: model instances (from_db)", "from_db (django/db/models/base.py"),
    ("psycopg: execute (client side)", "execute (psycopg/cursor.py"),
    ("Django DB connection checks (ensure/close_old)", "close_old_connections (django/db/__init__.py"),
    ("logging", "(logging/__init__.py"),
]


def summarize_profile(path: Path) -> dict:
    samples, inclusive, self_time = 0, collections.Counter(), collections.Counter()
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        if "gunicorn" not in stack or "process " not in frames[0]:
            continue
        n = int(count)
        samples += n
        seen = set()
        for frame in frames[1:]:
            key = re.sub(r":\d+\)$", ")", frame)
            if key not in seen:
                inclusive[key] += n
                seen.add(key)
        self_time[re.sub(r":\d+\)$", ")", frames[-1])] += n
    buckets = {}
    for label, needle in PROFILE_BUCKETS:
        hits = sum(n for k, n in inclusive.items() if needle in k)
        buckets[label] = round(100 * hits / max(1, samples), 1)

    def short(frame: str) -> str:
        return re.sub(r"\(/[^)]*?/(site-packages|lib/python3\.\d+|main)/", "(", frame)

    return {
        "file": str(path.relative_to(ROOT)),
        "worker_samples": samples,
        "buckets_pct": buckets,
        "top_inclusive_pct": {short(k): round(100 * n / samples, 1) for k, n in inclusive.most_common(45)},
        "top_self_pct": {short(k): round(100 * n / samples, 1) for k, n in self_time.most_common(25)},
    }


# --- Reporting -----------------------------------------------------------------------------------


def machine() -> dict:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"^model name\s*:\s*(.*)$", cpuinfo, re.M)
    mhz = re.search(r"^cpu MHz\s*:\s*(.*)$", cpuinfo, re.M)
    mem = re.search(r"^MemTotal:\s*(\d+) kB", Path("/proc/meminfo").read_text(), re.M)
    with admin() as conn:
        pg_version = conn.execute("SHOW server_version").fetchone()[0]
        pg_settings = dict(
            conn.execute(
                "SELECT name, setting FROM pg_settings WHERE name IN ('shared_buffers', 'synchronous_commit', "
                "'fsync', 'max_connections', 'wal_level', 'work_mem')"
            ).fetchall()
        )

    def version(cmd: list[str]) -> str:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        return (proc.stdout or proc.stderr).strip().splitlines()[0] if (proc.stdout or proc.stderr) else "?"

    return {
        "nproc": os.cpu_count(),
        "memory_gb": round(int(mem.group(1)) / 1024 / 1024, 1) if mem else None,
        "cpu_model": model.group(1).strip() if model else platform.processor(),
        "cpu_mhz": mhz.group(1).strip() if mhz else None,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "postgresql": pg_version,
        "postgresql_settings": pg_settings,
        "wrk": version(["wrk", "--version"]),
        "pgbench": version(["pgbench", "--version"]),
        "loadavg_at_start": Path("/proc/loadavg").read_text().split()[:3],
    }


def git_state() -> dict:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False).stdout.strip()

    return {
        "commit": git("rev-parse", "--short", "HEAD"),
        "dirty_files": len(git("status", "--porcelain").splitlines()),
    }


def print_table(results: dict, round_trips: dict, final: dict | None) -> None:
    header = (
        f"{'scenario':<14}{'req/s':>8}{'p50':>7}{'p95':>7}{'p99':>7}{'err':>6}{'ceiling':>9}{'ratio':>7}"
        f"{'RT/req':>7}{'xact':>6}{'appCPU':>8}{'dbCPU':>7}  goals"
    )
    print()
    print(header)
    print("-" * len(header))
    rt_key = {
        "uniform": "transfer",
        "hot": "transfer",
        "history_page1": "history_page1",
        "history_deep": "history_deep",
    }
    for name in SCENARIOS:
        row = results.get(name)
        if row is None:
            continue
        met = row["goals"]["met"]
        verdict = "ok" if row["goals"]["all_met"] else "MISSED " + ",".join(k for k, v in met.items() if not v)
        if name == "reconcile":
            print(
                f"{name:<14}{row['seconds']:>7.1f}s  peak RSS {row['peak_rss_mb']} MB, "
                f"{row['transactions']:,} transactions, ok={row['ok']}, ceiling {row['ceiling_tps']} tps  {verdict}"
            )
            continue
        rt = round_trips.get(rt_key[name], {}).get("round_trips_per_request", "")
        print(
            f"{name:<14}{row['rps']:>8.1f}{row['p50_ms']:>7.1f}{row['p95_ms']:>7.1f}{row['p99_ms']:>7.1f}"
            f"{row['errors']:>6}{row['ceiling_tps']:>9.1f}{row['ratio']:>7.3f}{rt!s:>7}{row['db_xacts_per_request']:>6}"
            f"{row['app_cpu_ms_per_request']:>8.2f}{row['db_cpu_ms_per_request']:>7.2f}  {verdict}"
        )
    for name in SCENARIOS:
        one = results.get(name, {}).get("single_connection")
        if one:
            print(
                f"{name:<14}one connection: {one['rps']} req/s, "
                f"p50/p95/p99 {one['p50_ms']}/{one['p95_ms']}/{one['p99_ms']} ms"
            )
    print("latency in ms; err = non-2xx + socket errors; ratio = req/s / ceiling tps measured right after;")
    print("RT/req = database round trips per request (wire count); xact = database transactions per request;")
    print("appCPU/dbCPU = gunicorn workers' / PostgreSQL backends' CPU ms per request.")
    if final:
        print(
            f"\nreconcile of {final['database']} after the load: ok={final['ok']} in {final['seconds']} s "
            f"({final['transactions']:,} transactions; {final.get('acknowledged_transfers', 0):,} transfers "
            f"acknowledged with 2xx, {final.get('recorded_transfers', 0):,} recorded)"
        )


def markdown(document: dict) -> str:
    """The figures as Markdown tables, for docs/benchmarks.md."""
    results, rts, m = document["scenarios"], document["round_trips"], document["machine"]
    rt_key = {"uniform": "transfer", "hot": "transfer"}
    lines = [
        f"Run {document['generated_at']} on commit `{document['git']['commit']}` "
        f"({document['git']['dirty_files']} uncommitted files in the tree), `{document['command']}`.",
        "",
        "| scenario | req/s | p50 ms | p95 ms | p99 ms | errors | ceiling tps (right after) | ratio | goal "
        "| round trips/req | DB xacts/req | app CPU ms/req | DB CPU ms/req | machine busy | others' CPU s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name in SCENARIOS:
        row = results.get(name)
        if row is None or name == "reconcile":
            continue
        goal = ", ".join(f"{k} {'ok' if v else '**missed**'}" for k, v in row["goals"]["met"].items())
        rt = rts.get(rt_key.get(name, name), {}).get("round_trips_per_request", "–")
        lines.append(
            f"| {name} | {row['rps']} | {row['p50_ms']} | {row['p95_ms']} | {row['p99_ms']} | {row['errors']} "
            f"| {row['ceiling_tps']} (n={row['ceiling_nwallets']}) | {row['ratio']} | {goal} | {rt} "
            f"| {row['db_xacts_per_request']} | {row['app_cpu_ms_per_request']} | {row['db_cpu_ms_per_request']} "
            f"| {row['machine_busy_pct']} % | {row['other_cpu_s']} |"
        )
    singles = [(n, results[n]["single_connection"]) for n in SCENARIOS if "single_connection" in results.get(n, {})]
    if singles:
        lines += [
            "",
            "| same request, one connection | req/s | p50 ms | p95 ms | p99 ms | errors |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        lines += [
            f"| {n} | {one['rps']} | {one['p50_ms']} | {one['p95_ms']} | {one['p99_ms']} | {one['errors']} |"
            for n, one in singles
        ]
    if "reconcile" in results:
        r = results["reconcile"]
        lines += [
            "",
            "| reconcile | transactions | history rows | wall s | CPU s | peak RSS MB "
            "| ok | goal ≤ 60 s | ceiling right after |",
            "|---|---:|---:|---:|---:|---:|---|---|---:|",
            f"| `manage.py reconcile --json` | {r['transactions']:,} | {r['balance_history_rows']:,} | {r['seconds']} "
            f"| {r['cpu_s']} | {r['peak_rss_mb']} | {r['ok']} "
            f"| {'ok' if r['goals']['met']['seconds'] else '**missed**'} | {r['ceiling_tps']} tps |",
        ]
    final = document.get("final_reconcile")
    if final:
        lines += [
            "",
            f"Final reconcile of `{final['database']}` after the load: ok={final['ok']} in {final['seconds']} s, "
            f"peak RSS {final['peak_rss_mb']} MB, {final['transactions']:,} transactions; "
            f"{final['acknowledged_transfers']:,} transfers answered 2xx, {final['recorded_transfers']:,} recorded "
            f"(at most {final['unanswered_bound']} may be recorded without an answer: requests in flight when wrk "
            f"stopped), consistent: {final['transfers_match']}.",
        ]
    if rts:
        lines += [
            "",
            "| request | round trips | app CPU ms, one request at a time | of which user |",
            "|---|---:|---:|---:|",
        ]
        for name, rt in rts.items():
            lines.append(
                f"| {name} | {rt['round_trips_per_request']} | {rt['app_cpu_ms_sequential']} "
                f"| {rt['app_user_cpu_ms_sequential']} |"
            )
        for name, rt in rts.items():
            if rt["example_request"]:
                lines += ["", f"Statements of one `{name}` request, in order:", ""]
                lines += [f"{i}. `{s[:150]}`" for i, s in enumerate(rt["example_request"], 1)]
    lines += ["", "Ceilings measured during the run (pgbench, each right after the API run it is named after):", ""]
    lines += ["| after | nwallets | tps | p50 ms | p99 ms | machine busy |", "|---|---:|---:|---:|---:|---:|"]
    lines += [
        f"| {c['label']} | {c['nwallets']} | {c['tps']} | {c['p50_ms']} | {c['p99_ms']} | {c['machine_busy_pct']} % |"
        for c in document["ceilings"]
    ]
    lines += [
        "",
        f"Machine: {m['nproc']} vCPU ({m['cpu_model']}), {m['memory_gb']} GB, PostgreSQL {m['postgresql']}, "
        f"Python {m['python']}, {m['wrk']}; load average at start {' '.join(m['loadavg_at_start'])}.",
    ]
    return "\n".join(lines) + "\n"


def parse_scenarios(text: str) -> list[str]:
    names: list[str] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        for name in ALIASES.get(part, [part]):
            if name not in SCENARIOS:
                raise SystemExit(f"unknown scenario {name!r}; choose from {', '.join(SCENARIOS + list(ALIASES))}")
            if name not in names:
                names.append(name)
    return [n for n in SCENARIOS if n in names]


def check_tools() -> None:
    missing = [tool for tool in ("wrk", "pgbench", "psql") if shutil.which(tool) is None]
    if missing:
        raise SystemExit(
            f"missing {', '.join(missing)}: apt-get update && apt-get install -y wrk postgresql-client "
            "(pgbench and psql come with postgresql-client)"
        )
    try:
        admin().close()
    except psycopg.OperationalError as exc:
        raise SystemExit(f"PostgreSQL is not reachable at {PG_HOST}:{PG_PORT} as {PG_USER}: {exc}") from exc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "-s", "--scenarios", default="all", help=f"comma list of {', '.join(SCENARIOS)}, reads, transfers, all"
    )
    parser.add_argument("-d", "--duration", type=int, default=15, help="seconds per measured run and per ceiling (15)")
    parser.add_argument("--warmup", type=int, default=3, help="unmeasured seconds before each API run (3)")
    parser.add_argument("-c", "--connections", type=int, default=16)
    parser.add_argument("-t", "--threads", type=int, default=1, help="wrk threads (1, like pgbench -j 1)")
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--reads-transactions", type=int, default=1_000_000)
    parser.add_argument("--reads-hot", type=int, default=100_000, help="transactions of the user whose history is read")
    parser.add_argument("--page-size", type=int, default=20)
    parser.add_argument("--deep-page", type=int, default=None, help="page for history_deep (default: the last page)")
    parser.add_argument("--idempotency-keys", action="store_true", help="send a unique Idempotency-Key per transfer")
    parser.add_argument("--regenerate", action="store_true", help="rebuild the cached 1,000,000-transaction dataset")
    parser.add_argument("--no-round-trips", action="store_true", help="skip the round-trip count through the proxy")
    parser.add_argument(
        "--profile",
        metavar="SCENARIOS",
        help="also py-spy the workers during an extra, unmeasured run of these (e.g. uniform,history_page1)",
    )
    parser.add_argument("--ceiling-only", type=int, metavar="N", help="only run the yardstick N times (drift)")
    parser.add_argument("--check-goals", action="store_true", help="exit 2 when a goal is missed")
    parser.add_argument("--yardstick", type=Path, default=None, help="directory of reference_*.sql")
    parser.add_argument("--output", type=Path, default=RESULTS / "latest.json")
    args = parser.parse_args()

    check_tools()
    yardstick = args.yardstick or next(
        (p for p in (ROOT.parent / "shared" / "bench", BENCH / "reference") if (p / "reference_transfer.sql").exists()),
        None,
    )
    if yardstick is None:
        raise SystemExit("reference_transfer.sql not found (../shared/bench or bench/reference)")
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    raw = RESULTS / "raw" / stamp
    raw.mkdir(parents=True, exist_ok=True)
    opts = Options(
        duration=args.duration,
        warmup=args.warmup,
        connections=args.connections,
        threads=args.threads,
        users=args.users,
        raw=raw,
        yardstick=yardstick,
        idempotency=args.idempotency_keys,
        reads_transactions=args.reads_transactions,
        reads_hot=args.reads_hot,
        page_size=args.page_size,
        deep_page=args.deep_page,
    )
    log(f"raw outputs in {raw.relative_to(ROOT)}")
    started = time.perf_counter()

    if args.ceiling_only:
        for i in range(args.ceiling_only):
            for nwallets in (1000, 2):
                ceiling(opts, nwallets=nwallets, label=f"alone{i + 1}_n{nwallets}")
        (raw / "ceilings.json").write_text(json.dumps({"machine": machine(), "ceilings": opts.ceilings}, indent=2))
        for c in opts.ceilings:
            print(
                f"{c['at']}  nwallets={c['nwallets']:<5} {c['tps']:>8.1f} tps  p99 {c['p99_ms']} ms  "
                f"busy {c['machine_busy_pct']}%"
            )
        return 0

    names = parse_scenarios(args.scenarios)
    setup_log = raw / "setup.log"
    results: dict[str, dict] = {}
    transfers = hot_user = None
    if any(n in names for n in ("uniform", "hot")):
        prepare_api_db(opts, setup_log)
        transfers = transfer_scenarios(opts, [n for n in names if n in ("uniform", "hot")], results)
    if any(n.startswith("history") or n == "reconcile" for n in names):
        hot_user = prepare_reads_db(opts, setup_log, regenerate=args.regenerate)
    if any(n.startswith("history") for n in names):
        history_scenarios(opts, [n for n in names if n.startswith("history")], results, hot_user)
    if "reconcile" in names:
        reconcile_scenario(opts, results)
    round_trips = {}
    if not args.no_round_trips:
        round_trips = round_trip_section(opts, names, transfers["users"] if transfers else None, hot_user)
        if transfers:
            transfers["acknowledged_transfers"] += round_trips["transfer"]["requests_counted"] + 3
        for name, row in results.items():
            key = "transfer" if name in ("uniform", "hot") else name
            if key in round_trips:
                row["db_round_trips_per_request"] = round_trips[key]["round_trips_per_request"]
    profiles = {}
    for name in parse_scenarios(args.profile) if args.profile else []:
        if name not in opts.recipes:
            continue
        log(f"profiling the workers with py-spy during an extra (unmeasured) {name} run")
        profiles[name], answered = profile(opts, name)
        if name in ("uniform", "hot"):
            transfers["acknowledged_transfers"] += answered
            transfers["unanswered_bound"] += 2 * opts.connections
    final = None
    if transfers:
        log(f"final reconcile of {DB_API}")
        final = run_reconcile(opts, DB_API, "api")
        with admin(DB_API) as conn:
            recorded = conn.execute("SELECT COUNT(*) FROM transactions_transaction WHERE type = 'transfer'").fetchone()[
                0
            ]
        final.update(
            acknowledged_transfers=transfers["acknowledged_transfers"],
            recorded_transfers=recorded,
            unanswered_bound=transfers["unanswered_bound"],
            # Every 2xx is recorded; extra rows can only be requests wrk stopped waiting for.
            transfers_match=0 <= recorded - transfers["acknowledged_transfers"] <= transfers["unanswered_bound"],
        )

    document = {
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": "python bench/run.py " + " ".join(sys.argv[1:]),
        "git": git_state(),
        "machine": machine(),
        "conditions": {
            "server": "gunicorn -c gunicorn.conf.py (sync workers, cpu_count + 1), full middleware stack",
            "settings": "DEBUG=false, production secrets, SECURE_SSL_REDIRECT=false, ALLOWED_HOSTS=127.0.0.1, "
            "DB_CONN_MAX_AGE=600 (persistent connections), RATELIMIT_ENABLE=false, LOG_LEVEL=WARNING, "
            "Kafka disabled (KAFKA_BOOTSTRAP_SERVERS empty: events stay in the outbox table), no Redis",
            "load": f"wrk -t{opts.threads} -c{opts.connections} -d{opts.duration}s --timeout {opts.timeout}, "
            f"{opts.warmup}s unmeasured warm-up; closed loop like pgbench",
            "ceiling": f"pgbench -n -c {opts.connections} -j 1 -T {opts.duration} -D nwallets=N -f "
            "reference_transfer.sql on a freshly loaded reference_schema.sql, right after each API run",
            "idempotency_keys": opts.idempotency,
            "yardstick_sha256": {
                p.name: hashlib.sha256(p.read_bytes()).hexdigest()[:16]
                for p in sorted(yardstick.glob("reference_*.sql"))
            },
            "shared_machine": "other helpers' test suites may run at the same time; see machine_busy_pct and "
            "other_cpu_s per scenario",
        },
        "scenarios": results,
        "round_trips": round_trips,
        "ceilings": opts.ceilings,
        "profile": profiles,
        "final_reconcile": final,
        "elapsed_s": round(time.perf_counter() - started, 1),
        "raw": str(raw.relative_to(ROOT)),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(document, indent=2) + "\n")
    (raw / "results.json").write_text(json.dumps(document, indent=2) + "\n")
    (raw / "summary.md").write_text(markdown(document))
    print_table(results, round_trips, final)
    print(f"\nresults: {args.output}  raw: {raw.relative_to(ROOT)}  ({document['elapsed_s']} s)")
    if final is not None and not (final["ok"] and final["transfers_match"]):
        print("FAILED: the API database does not reconcile after the load", file=sys.stderr)
        return 1
    if args.check_goals and not all(r["goals"]["all_met"] for r in results.values()):
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
